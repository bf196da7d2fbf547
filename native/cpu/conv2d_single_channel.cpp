// Direct convolution for the first layer of an image network: one input channel, unit stride, no
// padding, filters at most kMaxKw wide (MNIST's 1->20 5x5 of LeNet, the tutorial's 1->20 3x3).
// Lowered to GEMM, such a layer has a shared dimension of only kh * kw (9 or 25): the packing of
// the operands costs more than the multiply-adds. Here vectors run along the output plane instead,
// so every load feeds several filters (forward) or several taps (backward weight), and nothing is
// packed but the input image, copied kw times, shifted (stage_shifted below):
//
//   copy kj, row r, column c:  xs[kj][r * ow + c] = x[r, c + kj]
//   so for output position f = oy * ow + ox and tap (ki, kj):  x[oy + ki, ox + kj] = xs[kj][f + ki * ow]
//
// Every tap reads the plane's output positions as one contiguous run: whole vectors with no
// ragged row ends (ow = 26 or 24 in 16-lane vectors wasted a fifth to a third of the work).
//
//   forward          y[k, f:f+W] = bias[k] + sum_(ki,kj) w[k, ki, kj] * xs[kj][f + ki*ow : ... + W]
//                    register tile: kKt filters x kCh vectors of the plane
//   backward weight  dw[k, ki, kj] = sum_(n, f) dy[n, k, f] * xs[kj][f + ki*ow]
//                    register tile: kKt filters x kTj taps, each a vector of partial sums over f,
//                    added across lanes at the end
//
// Backward data needs no fast path: its GEMM has k = K (the filters) and runs at GEMM speed, and
// a first layer's input needs no gradient anyway.
//
// Three builds of the same templates, chosen by cpu_isa(): AVX-512 (16 lanes, 32 registers), AVX2
// (8 lanes, 16 registers) and SSE (4 lanes). Results do not depend on the thread count: the
// backward-weight sums are split over fixed chunks of samples, combined in chunk order. The
// forward adds each output's terms in tap order after the bias, the same in every build.
#include <algorithm>
#include <cstring>
#include <vector>

#include "conv2d_single_channel.h"
#include "isa.h"
#include "parallel.h"
#include "scratch.h"

#if defined(__STRICT_ANSI__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif
#pragma GCC diagnostic ignored "-Wpsabi"

namespace kg::cpu {

bool single_channel_conv(const ConvShape& s) {
  return s.c == 1 && s.sh == 1 && s.sw == 1 && s.ph == 0 && s.pw == 0 && s.kw <= kMaxKw && s.n > 0 && s.k > 0 &&
         s.oh > 0 && s.ow > 0;
}

namespace {

typedef float v16f __attribute__((vector_size(64)));
typedef float v8f __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v16i __attribute__((vector_size(64)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef int32_t v4i __attribute__((vector_size(16)));

// The register tiles of each build: accumulators + operands fit the register file.
template <class V>
struct Tile;
template <>
struct Tile<v16f> {  // 32 zmm
  using I = v16i;
  static constexpr int W = 16, kFwdK = 10, kFwdCh = 2, kBwdK = 4, kBwdTj = 5;
};
template <>
struct Tile<v8f> {  // 16 ymm
  using I = v8i;
  static constexpr int W = 8, kFwdK = 4, kFwdCh = 3, kBwdK = 2, kBwdTj = 5;
};
template <>
struct Tile<v4f> {  // 16 xmm
  using I = v4i;
  static constexpr int W = 4, kFwdK = 4, kFwdCh = 3, kBwdK = 2, kBwdTj = 5;
};

template <class V>
inline __attribute__((always_inline)) V load(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class V>
inline __attribute__((always_inline)) void store(float* p, const V& v) {
  std::memcpy(p, &v, sizeof v);
}
// The first n lanes of v (n below the vector's width) to p, in pieces of 8, 4, 2 and 1 lanes taken
// from the register. Storing the whole vector to a buffer and copying from there at another offset
// stalls on store forwarding: that took half the forward's time at ow = 26.
typedef float v2f __attribute__((vector_size(8)));
inline __attribute__((always_inline)) void store_first(float* p, const v4f& v, int64_t n) {
  v4f rest = v;
  if (n & 2) {
    const v2f low = __builtin_shufflevector(v, v, 0, 1);
    std::memcpy(p, &low, sizeof low);
    p += 2;
    rest = __builtin_shufflevector(v, v, 2, 3, 2, 3);
  }
  if (n & 1) *p = rest[0];
}
inline __attribute__((always_inline)) void store_first(float* p, const v8f& v, int64_t n) {
  const v4f low = __builtin_shufflevector(v, v, 0, 1, 2, 3);
  if (n & 4) {
    store(p, low);
    store_first(p + 4, __builtin_shufflevector(v, v, 4, 5, 6, 7), n & 3);
  } else {
    store_first(p, low, n & 3);
  }
}
inline __attribute__((always_inline)) void store_first(float* p, const v16f& v, int64_t n) {
  const v8f low = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7);
  if (n & 8) {
    store(p, low);
    store_first(p + 8, __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15), n & 7);
  } else {
    store_first(p, low, n & 7);
  }
}

// Lanes where `keep` is 0 become +0.0 (not x * 0, which would keep a NaN or turn an inf into one).
template <class V>
inline __attribute__((always_inline)) V keep_lanes(const V& v, const typename Tile<V>::I& keep) {
  typename Tile<V>::I bits;
  std::memcpy(&bits, &v, sizeof v);
  bits &= keep;
  V out;
  std::memcpy(&out, &bits, sizeof out);
  return out;
}

int64_t ceil_to(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// Rows r0 .. r1 - 1 of one image as kw shifted copies (see the top of this file), each `len`
// floats long: (r1 - r0) * ow staged values, then zeros, so that whole vectors past a block's end
// read inside the buffer.
void stage_shifted(const ConvShape& s, const float* image, int64_t r0, int64_t r1, int64_t len, float* dst) {
  for (int64_t kj = 0; kj < s.kw; ++kj) {
    float* d = dst + kj * len;
    for (int64_t r = r0; r < r1; ++r) {
      const float* src = image + r * s.w + kj;
      float* row = d + (r - r0) * s.ow;
      for (int64_t c = 0; c < s.ow; ++c) row[c] = src[c];
    }
    std::fill(d + (r1 - r0) * s.ow, d + len, 0.0f);
  }
}

// ---------------------------------------------------------------- forward

// Output rows per task (rounded to whole register tiles of the plane): enough work per task, and
// tasks for every thread even at batch 1.
constexpr int64_t kRowsPerTask = 8;

// What both kernels share between the plain driver and the per-ISA task functions. The filters
// (and bias) come padded with zeros to whole register tiles of filters.
struct Plan {
  const ConvShape& s;
  const float* x;
  const float* w;     // kpad x (kh * kw)
  const float* bias;  // kpad
  const float* dy;
  float* out;  // y (forward), or the chunk's partial sums of dw, kpad x (kh * kw) (backward)
};

// Output positions f0 .. f1 - 1 of sample n's planes (f0 a multiple of the tile's width).
template <class V>
inline __attribute__((always_inline)) void forward_block(const Plan& p, int64_t n, int64_t f0, int64_t f1) {
  constexpr int W = Tile<V>::W, KT = Tile<V>::kFwdK, CH = Tile<V>::kFwdCh;
  const ConvShape& s = p.s;
  const int64_t K = s.k, T = s.kh * s.kw, P = s.oh * s.ow, kpad = ceil_to(K, KT);
  // The input rows the block reads, staged; a tile past f1 reads at most CH * W zeros more.
  const int64_t r0 = f0 / s.ow, r1 = (f1 - 1) / s.ow + s.kh;
  const int64_t len = (r1 - r0) * s.ow + CH * W;
  float* xs = scratch(Scratch::Columns, size_t(s.kw * len));
  stage_shifted(s, p.x + n * s.h * s.w, r0, r1, len, xs);
  const float* at = xs - r0 * s.ow;  // at + kj * len + f + ki * ow: tap (ki, kj) of position f
  for (int64_t f = f0; f < f1; f += CH * W) {
    const int64_t cols = std::min<int64_t>(CH * W, f1 - f);
    for (int64_t k0 = 0; k0 < kpad; k0 += KT) {
      V acc[KT][CH];
#pragma GCC unroll 16
      for (int kk = 0; kk < KT; ++kk) {
#pragma GCC unroll 4
        for (int c = 0; c < CH; ++c) acc[kk][c] = V{} + p.bias[k0 + kk];
      }
      const float* wk = p.w + k0 * T;
      for (int64_t ki = 0; ki < s.kh; ++ki) {
        for (int64_t kj = 0; kj < s.kw; ++kj) {
          const float* src = at + kj * len + f + ki * s.ow;
          V xv[CH];
#pragma GCC unroll 4
          for (int c = 0; c < CH; ++c) xv[c] = load<V>(src + c * W);
          const int64_t t = ki * s.kw + kj;
#pragma GCC unroll 16
          for (int kk = 0; kk < KT; ++kk) {
            const float wv = wk[kk * T + t];
#pragma GCC unroll 4
            for (int c = 0; c < CH; ++c) acc[kk][c] += wv * xv[c];
          }
        }
      }
      // Unrolled whole, with the padding filters skipped inside: a loop that can stop early keeps
      // acc in memory, and its stack slots, stored every group right before the next group's
      // loads, cost a fifth of the kernel's time (one core, 64x1x28x28 by 20 3x3 filters: AVX2 242
      // -> 192 us, AVX-512 172 -> 136 us).
#pragma GCC unroll 16
      for (int kk = 0; kk < KT; ++kk) {
        if (k0 + kk >= K) break;
        float* out = p.out + (n * K + k0 + kk) * P + f;
#pragma GCC unroll 4
        for (int c = 0; c < CH; ++c) {
          if ((c + 1) * W <= cols) store(out + c * W, acc[kk][c]);
          else if (c * W < cols) store_first(out + c * W, acc[kk][c], cols - c * W);
        }
      }
    }
  }
}

// ---------------------------------------------------------------- backward weight

// Samples per partial sum: a function of the shape only, so the sums do not depend on threads.
constexpr int64_t kSamplesPerChunk = 8;

// The partial sums of dw over samples n0 .. n1 - 1, into p.out.
template <class V>
inline __attribute__((always_inline)) void weight_chunk(const Plan& p, int64_t n0, int64_t n1) {
  constexpr int W = Tile<V>::W, KT = Tile<V>::kBwdK, TJ = Tile<V>::kBwdTj;
  using I = typename Tile<V>::I;
  const ConvShape& s = p.s;
  const int64_t K = s.k, T = s.kh * s.kw, P = s.oh * s.ow;
  const int64_t vectors = ceil_div(P, int64_t(W)), tpad = ceil_to(T, TJ), kpad = ceil_to(K, KT);
  // The last vector of a plane holds P - (vectors - 1) * W real lanes: the others are cleared in
  // both operands (a lane of the next plane times one of the padding could be inf * 0).
  I keep;
  for (int l = 0; l < W; ++l) keep[l] = (vectors - 1) * W + l < P ? -1 : 0;
  const bool ragged = P % W != 0;
  const int64_t len = s.h * s.ow + W;  // one staged copy: the whole plane, and a vector of zeros
  float* xs = scratch(Scratch::Columns, size_t(s.kw * len));
  // Where tap t reads in xs; taps past T (a tile's padding) read tap 0 and are never stored.
  std::vector<int64_t> tap_at(size_t(tpad), 0);
  for (int64_t t = 0; t < T; ++t) tap_at[size_t(t)] = (t % s.kw) * len + (t / s.kw) * s.ow;
  // One vector of partial sums per (filter, tap).
  float* sums = scratch(Scratch::PackA, size_t(kpad * tpad * W));
  std::fill(sums, sums + kpad * tpad * W, 0.0f);
  alignas(64) float last[W];  // the final vector of dy, which a full load would read past
  for (int64_t n = n0; n < n1; ++n) {
    stage_shifted(s, p.x + n * s.h * s.w, 0, s.h, len, xs);
    const float* dyn = p.dy + n * K * P;
    const bool final_sample = n == s.n - 1;
    for (int64_t k0 = 0; k0 < kpad; k0 += KT) {
      const int kt = int(std::min<int64_t>(KT, K - k0));
      for (int64_t t0 = 0; t0 < tpad; t0 += TJ) {
        V acc[KT][TJ];
        const float* x_at[TJ];
#pragma GCC unroll 8
        for (int j = 0; j < TJ; ++j) x_at[j] = xs + tap_at[size_t(t0 + j)];
#pragma GCC unroll 16
        for (int kk = 0; kk < KT; ++kk) {
#pragma GCC unroll 8
          for (int j = 0; j < TJ; ++j) acc[kk][j] = load<V>(sums + ((k0 + kk) * tpad + t0 + j) * W);
        }
        for (int64_t v = 0; v < vectors; ++v) {
          const int64_t f = v * W;
          const bool edge = ragged && v == vectors - 1;
          V d[KT];
#pragma GCC unroll 8
          for (int kk = 0; kk < KT; ++kk) {
            // Filters past K repeat the last real one; their sums are never stored.
            const int64_t k = k0 + std::min(kk, kt - 1);
            const float* src = dyn + k * P + f;
            if (edge && final_sample && k == K - 1) {
              std::fill(last, last + W, 0.0f);
              std::memcpy(last, src, size_t(P - f) * sizeof(float));
              src = last;
            }
            d[kk] = load<V>(src);
            if (edge) d[kk] = keep_lanes(d[kk], keep);
          }
#pragma GCC unroll 8
          for (int j = 0; j < TJ; ++j) {
            V xv = load<V>(x_at[j] + f);
            if (edge) xv = keep_lanes(xv, keep);
#pragma GCC unroll 8
            for (int kk = 0; kk < KT; ++kk) acc[kk][j] += d[kk] * xv;
          }
        }
#pragma GCC unroll 16
        for (int kk = 0; kk < KT; ++kk) {
#pragma GCC unroll 8
          for (int j = 0; j < TJ; ++j) store(sums + ((k0 + kk) * tpad + t0 + j) * W, acc[kk][j]);
        }
      }
    }
  }
  // Lanes added in a fixed order: the chunk's dw.
  for (int64_t k = 0; k < kpad; ++k) {
    for (int64_t t = 0; t < T; ++t) {
      const float* v = sums + (k * tpad + t) * W;
      float total = 0.0f;
      for (int l = 0; l < W; ++l) total += v[l];
      p.out[k * T + t] = total;
    }
  }
}

// ---------------------------------------------------------------- one build per ISA
// The task functions carry the target attribute themselves (isa.h's KG_AVX512, KG_AVX2).

struct Kernels {
  void (*forward_block)(const Plan&, int64_t, int64_t, int64_t);
  void (*weight_chunk)(const Plan&, int64_t, int64_t);
  int fwd_k, bwd_k;  // filters per register tile
  int fwd_span;      // plane positions per forward register tile
};

KG_AVX512 void forward_block_avx512(const Plan& p, int64_t n, int64_t a, int64_t b) { forward_block<v16f>(p, n, a, b); }
KG_AVX2 void forward_block_avx2(const Plan& p, int64_t n, int64_t a, int64_t b) { forward_block<v8f>(p, n, a, b); }
void forward_block_baseline(const Plan& p, int64_t n, int64_t a, int64_t b) { forward_block<v4f>(p, n, a, b); }
KG_AVX512 void weight_chunk_avx512(const Plan& p, int64_t n0, int64_t n1) { weight_chunk<v16f>(p, n0, n1); }
KG_AVX2 void weight_chunk_avx2(const Plan& p, int64_t n0, int64_t n1) { weight_chunk<v8f>(p, n0, n1); }
void weight_chunk_baseline(const Plan& p, int64_t n0, int64_t n1) { weight_chunk<v4f>(p, n0, n1); }

template <class V>
constexpr Kernels kernels_for(void (*f)(const Plan&, int64_t, int64_t, int64_t), void (*g)(const Plan&, int64_t, int64_t)) {
  return {f, g, Tile<V>::kFwdK, Tile<V>::kBwdK, Tile<V>::W * Tile<V>::kFwdCh};
}

const Kernels& kernels() {
  static const Kernels k = [] {
    switch (cpu_isa()) {
      case Isa::Avx512: return kernels_for<v16f>(forward_block_avx512, weight_chunk_avx512);
      case Isa::Avx2: return kernels_for<v8f>(forward_block_avx2, weight_chunk_avx2);
      default: return kernels_for<v4f>(forward_block_baseline, weight_chunk_baseline);
    }
  }();
  return k;
}

}  // namespace

void single_channel_conv_forward(const ConvShape& s, const float* x, const float* w, const float* bias, float* y) {
  const Kernels& kern = kernels();
  const int64_t K = s.k, T = s.kh * s.kw, kpad = ceil_to(K, kern.fwd_k);
  std::vector<float> wt(size_t(kpad * T), 0.0f), bt(size_t(kpad), 0.0f);
  std::copy(w, w + K * T, wt.begin());
  if (bias) std::copy(bias, bias + K, bt.begin());
  const Plan p{s, x, wt.data(), bt.data(), nullptr, y};
  const int64_t P = s.oh * s.ow, block = ceil_to(kRowsPerTask * s.ow, kern.fwd_span), blocks = ceil_div(P, block);
  parallel_for_dynamic(s.n * blocks, s.n * K * P >= kParallelElements, [&](int64_t task) {
    const int64_t n = task / blocks, f0 = task % blocks * block;
    kern.forward_block(p, n, f0, std::min(P, f0 + block));
  });
}

void single_channel_conv_backward_weight(const ConvShape& s, const float* x, const float* dy, float* dw) {
  const Kernels& kern = kernels();
  const int64_t K = s.k, T = s.kh * s.kw, kpad = ceil_to(K, kern.bwd_k);
  const int64_t nchunks = ceil_div(s.n, kSamplesPerChunk);
  std::vector<float> partial(size_t(nchunks * kpad * T));  // per chunk, (k, ki, kj)
  parallel_for_dynamic(nchunks, s.n * K * s.oh * s.ow >= kParallelElements, [&](int64_t chunk) {
    const Plan p{s, x, nullptr, nullptr, dy, partial.data() + chunk * kpad * T};
    kern.weight_chunk(p, chunk * kSamplesPerChunk, std::min(s.n, (chunk + 1) * kSamplesPerChunk));
  });
  for (int64_t i = 0; i < K * T; ++i) {
    float total = 0.0f;
    for (int64_t chunk = 0; chunk < nchunks; ++chunk) total += partial[size_t(chunk * kpad * T + i)];
    dw[i] = total;
  }
}

}  // namespace kg::cpu
