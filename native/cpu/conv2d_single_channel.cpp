// Direct convolution for the first layer of an image network: one input channel, unit stride, no
// padding, filters at most kMaxKw wide (MNIST's 1->20 5x5 of LeNet, the tutorial's 1->20 3x3).
// Lowered to GEMM, such a layer has a shared dimension of only kh * kw (9 or 25): the packing of
// the operands costs more than the multiply-adds. Here vectors run along an output row instead,
// so every load feeds several filters (forward) or several taps (backward weight), and nothing
// is packed but the input image, copied once with zero padding so that whole vectors can be read.
//
//   forward          y[k, oy, ox:ox+W] = bias[k] + sum_(ki,kj) w[k, ki, kj] * x[oy+ki, ox+kj : ox+kj+W]
//                    register tile: kKt filters x kCh vectors of one output row
//   backward weight  dw[k, ki, kj] = sum_(n, oy, ox) dy[n, k, oy, ox] * x[n, oy+ki, ox+kj]
//                    register tile: kKt filters x kTj taps of one kernel row, each a vector of
//                    partial sums over ox, added across lanes at the end
//
// Backward data needs no fast path: its GEMM has k = K (the filters) and runs at GEMM speed, and
// a first layer's input needs no gradient anyway.
//
// Three builds of the same templates, chosen by cpu_isa(): AVX-512 (16 lanes, 32 registers), AVX2
// (8 lanes, 16 registers) and SSE (4 lanes). Results do not depend on the thread count: the
// backward-weight sums are split over fixed chunks of samples, combined in chunk order.
#include <algorithm>
#include <cstring>
#include <vector>

#include "conv2d_single_channel.h"
#include "isa.h"
#include "parallel.h"
#include "scratch.h"
#include "simd.h"

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

// Rows r0 .. r1 - 1 of one image into `dst`, each `stride` floats long with zeros after the w
// real ones, followed by one zero row: every vector the kernels read lies inside.
void stage_rows(const ConvShape& s, const float* image, int64_t r0, int64_t r1, int64_t stride, float* dst) {
  for (int64_t r = r0; r < r1; ++r) {
    float* d = dst + (r - r0) * stride;
    std::memcpy(d, image + r * s.w, size_t(s.w) * sizeof(float));
    std::fill(d + s.w, d + stride, 0.0f);
  }
  std::fill(dst + (r1 - r0) * stride, dst + (r1 - r0 + 1) * stride, 0.0f);
}

// ---------------------------------------------------------------- forward

// Output rows per task: enough work per task, and tasks for every thread even at batch 1.
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

// Output rows oy0 .. oy1 - 1 of sample n.
template <class V>
inline __attribute__((always_inline)) void forward_rows(const Plan& p, int64_t n, int64_t oy0, int64_t oy1) {
  constexpr int W = Tile<V>::W, KT = Tile<V>::kFwdK, CH = Tile<V>::kFwdCh;
  const ConvShape& s = p.s;
  const int64_t K = s.k, T = s.kh * s.kw, P = s.oh * s.ow, kpad = ceil_to(K, KT);
  const int64_t span = ceil_to(s.ow, CH * W);  // output columns computed per row (>= ow)
  const int64_t stride = span + kMaxKw;         // staged input row
  float* xs = scratch(Scratch::Columns, size_t((oy1 - oy0 + s.kh) * stride));
  stage_rows(s, p.x + n * s.h * s.w, oy0, oy1 + s.kh - 1, stride, xs);
  alignas(64) float tail[CH * W];
  for (int64_t oy = oy0; oy < oy1; ++oy) {
    for (int64_t c0 = 0; c0 < span; c0 += CH * W) {
      for (int64_t k0 = 0; k0 < kpad; k0 += KT) {
        V acc[KT][CH];
#pragma GCC unroll 16
        for (int kk = 0; kk < KT; ++kk) {
#pragma GCC unroll 4
          for (int c = 0; c < CH; ++c) acc[kk][c] = V{} + p.bias[k0 + kk];
        }
        const float* wk = p.w + k0 * T;
        for (int64_t ki = 0; ki < s.kh; ++ki) {
          const float* row = xs + (oy - oy0 + ki) * stride + c0;
          for (int64_t kj = 0; kj < s.kw; ++kj) {
            V xv[CH];
#pragma GCC unroll 4
            for (int c = 0; c < CH; ++c) xv[c] = load<V>(row + kj + c * W);
            const int64_t t = ki * s.kw + kj;
#pragma GCC unroll 16
            for (int kk = 0; kk < KT; ++kk) {
              const float wv = wk[kk * T + t];
#pragma GCC unroll 4
              for (int c = 0; c < CH; ++c) acc[kk][c] += wv * xv[c];
            }
          }
        }
        const int64_t cols = std::min<int64_t>(CH * W, s.ow - c0);
        for (int kk = 0; kk < KT && k0 + kk < K; ++kk) {
          float* out = p.out + (n * K + k0 + kk) * P + oy * s.ow + c0;
          // Whole vectors straight out; a row's ragged end through `tail` with a few vector
          // moves (a memcpy call per row and filter cost as much as the arithmetic at ow = 26).
#pragma GCC unroll 4
          for (int c = 0; c < CH; ++c) {
            if ((c + 1) * W <= cols) {
              store(out + c * W, acc[kk][c]);
            } else if (c * W < cols) {
              store(tail, acc[kk][c]);
              copy_short(out + c * W, tail, cols - c * W);
            }
          }
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
  const int64_t chunks = ceil_div(s.ow, int64_t(W));  // vectors per output row
  const int64_t kwpad = ceil_to(s.kw, TJ), kpad = ceil_to(K, KT);
  const int64_t stride = chunks * W + kwpad;  // staged input row
  // The last vector of a row holds ow - (chunks - 1) * W real lanes; the others are cleared.
  I keep;
  for (int l = 0; l < W; ++l) keep[l] = (chunks - 1) * W + l < s.ow ? -1 : 0;
  const bool ragged = s.ow % W != 0;
  // Per tile (k0, ki): KT x kwpad vectors of partial sums.
  const int64_t tiles = (kpad / KT) * s.kh, tile_floats = KT * kwpad * W;
  float* xs = scratch(Scratch::Columns, size_t((s.h + 1) * stride));
  float* sums = scratch(Scratch::PackA, size_t(tiles * tile_floats));
  std::fill(sums, sums + tiles * tile_floats, 0.0f);
  alignas(64) float last[W];  // the final vector of dy, which a full load would read past
  for (int64_t n = n0; n < n1; ++n) {
    stage_rows(s, p.x + n * s.h * s.w, 0, s.h, stride, xs);
    const float* dyn = p.dy + n * K * P;
    const bool final_sample = n == s.n - 1;
    for (int64_t tile = 0; tile < tiles; ++tile) {
      const int64_t k0 = tile / s.kh * KT, ki = tile % s.kh;
      const int kt = int(std::min<int64_t>(KT, K - k0));
      float* tsum = sums + tile * tile_floats;
      for (int64_t j0 = 0; j0 < kwpad; j0 += TJ) {
        V acc[KT][TJ];
#pragma GCC unroll 16
        for (int kk = 0; kk < KT; ++kk) {
#pragma GCC unroll 8
          for (int j = 0; j < TJ; ++j) acc[kk][j] = load<V>(tsum + (kk * kwpad + j0 + j) * W);
        }
        for (int64_t oy = 0; oy < s.oh; ++oy) {
          const float* xrow = xs + (oy + ki) * stride + j0;
          for (int64_t c = 0; c < chunks; ++c) {
            const bool edge = ragged && c == chunks - 1;
            V d[KT];
#pragma GCC unroll 8
            for (int kk = 0; kk < KT; ++kk) {
              // Filters past K repeat the last real one; their sums are never stored.
              const int64_t k = k0 + std::min(kk, kt - 1);
              const float* src = dyn + k * P + oy * s.ow + c * W;
              if (edge && final_sample && k == K - 1 && oy == s.oh - 1) {
                std::fill(last, last + W, 0.0f);
                std::memcpy(last, src, size_t(s.ow - c * W) * sizeof(float));
                src = last;
              }
              d[kk] = load<V>(src);
              if (edge) d[kk] = keep_lanes(d[kk], keep);
            }
#pragma GCC unroll 8
            for (int j = 0; j < TJ; ++j) {
              V xv = load<V>(xrow + c * W + j);
              if (edge) xv = keep_lanes(xv, keep);
#pragma GCC unroll 8
              for (int kk = 0; kk < KT; ++kk) acc[kk][j] += d[kk] * xv;
            }
          }
        }
#pragma GCC unroll 16
        for (int kk = 0; kk < KT; ++kk) {
#pragma GCC unroll 8
          for (int j = 0; j < TJ; ++j) store(tsum + (kk * kwpad + j0 + j) * W, acc[kk][j]);
        }
      }
    }
  }
  // Lanes added in a fixed order: the chunk's dw.
  for (int64_t tile = 0; tile < tiles; ++tile) {
    const int64_t k0 = tile / s.kh * KT, ki = tile % s.kh;
    for (int kk = 0; kk < KT; ++kk)
      for (int64_t kj = 0; kj < s.kw; ++kj) {
        const float* v = sums + tile * tile_floats + (kk * kwpad + kj) * W;
        float total = 0.0f;
        for (int l = 0; l < W; ++l) total += v[l];
        p.out[(k0 + kk) * T + ki * s.kw + kj] = total;
      }
  }
}

// ---------------------------------------------------------------- one build per ISA
// The task functions carry the target attribute themselves (isa.h's KG_AVX512, KG_AVX2).

struct Kernels {
  void (*forward_rows)(const Plan&, int64_t, int64_t, int64_t);
  void (*weight_chunk)(const Plan&, int64_t, int64_t);
  int fwd_k, bwd_k;  // filters per register tile
};

KG_AVX512 void forward_rows_avx512(const Plan& p, int64_t n, int64_t a, int64_t b) { forward_rows<v16f>(p, n, a, b); }
KG_AVX2 void forward_rows_avx2(const Plan& p, int64_t n, int64_t a, int64_t b) { forward_rows<v8f>(p, n, a, b); }
void forward_rows_baseline(const Plan& p, int64_t n, int64_t a, int64_t b) { forward_rows<v4f>(p, n, a, b); }
KG_AVX512 void weight_chunk_avx512(const Plan& p, int64_t n0, int64_t n1) { weight_chunk<v16f>(p, n0, n1); }
KG_AVX2 void weight_chunk_avx2(const Plan& p, int64_t n0, int64_t n1) { weight_chunk<v8f>(p, n0, n1); }
void weight_chunk_baseline(const Plan& p, int64_t n0, int64_t n1) { weight_chunk<v4f>(p, n0, n1); }

template <class V>
constexpr Kernels kernels_for(void (*f)(const Plan&, int64_t, int64_t, int64_t), void (*g)(const Plan&, int64_t, int64_t)) {
  return {f, g, Tile<V>::kFwdK, Tile<V>::kBwdK};
}

const Kernels& kernels() {
  static const Kernels k = [] {
    switch (cpu_isa()) {
      case Isa::Avx512: return kernels_for<v16f>(forward_rows_avx512, weight_chunk_avx512);
      case Isa::Avx2: return kernels_for<v8f>(forward_rows_avx2, weight_chunk_avx2);
      default: return kernels_for<v4f>(forward_rows_baseline, weight_chunk_baseline);
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
  const int64_t blocks = ceil_div(s.oh, kRowsPerTask);
  parallel_for_dynamic(s.n * blocks, s.n * K * s.oh * s.ow >= kParallelElements, [&](int64_t task) {
    const int64_t n = task / blocks, oy0 = task % blocks * kRowsPerTask;
    kern.forward_rows(p, n, oy0, std::min(s.oh, oy0 + kRowsPerTask));
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
