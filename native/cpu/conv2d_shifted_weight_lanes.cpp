// The filter gradient of a shifted-path convolution with at most 16 filters (conv2d_shifted.h):
//
//   dw[k, tap] = sum over samples and wide columns q' of  dyw[k, q'] * xp[tap's offset + q']
//
// with xp the prepared sample (ShiftedInput) and dyw its output gradient laid out over the wide
// columns (zeros in the dropped ones). Vectors run along q', so both operands are contiguous
// loads; a register tile of KT filters x TT taps keeps one vector of partial sums per pair, whose
// lanes are added once per group of samples. The dropped columns' lanes of x are masked to zero
// as well: 0 * inf would otherwise put a NaN that no tap reaches into the gradient.
//
// With so few filters, the GEMM of conv2d_shifted_weight.cpp has one micro-panel of them: each
// broadcast of the input feeds one FMA, and its loads bound it (a CIFAR ResNet's 16-filter
// layer: 7.8 ms against 3.5 here).
//
// Determinism: samples are summed in fixed chunks, each into its own partial gradient, and the
// chunks are added in order; a sample's sums depend on the vector width, so AVX2 and AVX-512 may
// differ in the last bits (as the one-channel kernel's, conv2d_single_channel.cpp).
#include <algorithm>
#include <cstring>
#include <vector>

#include "conv2d_bias.h"
#include "conv2d_shifted.h"
#include "host_allocator.h"
#include "isa.h"
#include "parallel.h"
#include "scratch.h"
#include "simd.h"

namespace kg::cpu {
namespace {

// The vectors of the three builds (v8f and v4f are simd.h's), and their lanes as bits for the mask.
typedef float v16f __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef int32_t v4i __attribute__((vector_size(16)));

// Samples per partial gradient, and a bound on the partials' memory.
constexpr int64_t kSamplesPerChunk = 8;
constexpr int64_t kMaxPartialFloats = int64_t(1) << 23;
// Floats of padded samples and their gradients that one kernel call sweeps per tile.
constexpr int64_t kGroupFloats = int64_t(1) << 17;

// One call's geometry: the prepared samples' layout, the taps, the wide columns rounded up to
// whole 16-float vectors (span: the length of a row of dyw and of the mask).
struct Geometry {
  ShiftedInput in;
  int64_t CKK, span;
  explicit Geometry(const ConvShape& s) : in(s, ShiftedLayout::ByPhase), CKK(s.c * s.kh * s.kw), span(ceil_div(in.wide, 16) * 16) {}
};

// The kernel for `count` samples: partial[k * CKK + t] += their sums, for every filter k and tap t.
// x: the prepared samples (ShiftedInput), g.in.floats apart; dyw: their gradients over wide columns (K rows of
// span floats each, K * span apart); mask: -1 where a wide column is kept, 0 elsewhere (span
// entries). Each tile's lanes are added once for all the samples, which on small planes (an 8x8
// image: 5 vectors a row of the tile) would otherwise cost more than the multiply-adds.
template <class V, class VI, int KT, int TT>
inline __attribute__((always_inline)) void sample_tiles(const ConvShape& s, const Geometry& g, int64_t count,
                                                        const float* x, const float* dyw, const int32_t* mask,
                                                        float* partial) {
  constexpr int L = int(sizeof(V) / sizeof(float));
  for (int64_t k0 = 0; k0 < s.k; k0 += KT) {
    const int kt = int(std::min<int64_t>(KT, s.k - k0));
    for (int64_t t0 = 0; t0 < g.CKK; t0 += TT) {
      const int tt = int(std::min<int64_t>(TT, g.CKK - t0));
      V acc[KT][TT] = {};
      for (int64_t i = 0; i < count; ++i) {
        const float* xr[TT];
        const float* dr[KT];
#pragma GCC unroll 8
        for (int t = 0; t < TT; ++t) xr[t] = x + i * g.in.floats + g.in.tap[size_t(t0 + std::min(t, tt - 1))];
#pragma GCC unroll 8
        for (int k = 0; k < KT; ++k) dr[k] = dyw + (i * s.k + k0 + std::min(k, kt - 1)) * g.span;
        for (int64_t q = 0; q < g.span; q += L) {
          VI m;
          std::memcpy(&m, mask + q, sizeof m);
          V dv[KT];
#pragma GCC unroll 8
          for (int k = 0; k < KT; ++k) std::memcpy(&dv[k], dr[k] + q, sizeof(V));
          // Each tap's vector loaded, masked and used by every filter before the next is loaded:
          // with all TT of them loaded first, AVX2's 2 x 5 tile needed 18 registers of its 16 and
          // kept a sum on the stack, whose store and reload then set the loop's pace.
#pragma GCC unroll 8
          for (int t = 0; t < TT; ++t) {
            VI bits;
            std::memcpy(&bits, xr[t] + q, sizeof bits);
            bits &= m;
            V xv;
            std::memcpy(&xv, &bits, sizeof bits);
#pragma GCC unroll 8
            for (int k = 0; k < KT; ++k) acc[k][t] += dv[k] * xv;
          }
        }
      }
      for (int k = 0; k < kt; ++k) {
        for (int t = 0; t < tt; ++t) {
          // The lanes added in a fixed tree: halves, then halves of those.
          float lanes[L];
          std::memcpy(lanes, &acc[k][t], sizeof lanes);
          for (int w = L / 2; w >= 1; w /= 2)
            for (int j = 0; j < w; ++j) lanes[j] += lanes[j + w];
          partial[(k0 + k) * g.CKK + t0 + t] += lanes[0];
        }
      }
    }
  }
}

// One plane of dy over the wide columns: dst[r * pitch + j] = src[r * ow + j] for j < ow, zeros in
// the dropped columns and from rows * pitch to span (multiversioned, simd.h: plain loops, each
// element written once, where a fill of the whole plane and a copy per row wrote the rows twice).
KG_MULTIVERSION void spread_rows(const float* __restrict src, int64_t rows, int64_t ow, int64_t pitch, int64_t span,
                                 float* __restrict dst) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < ow; ++j) dst[r * pitch + j] = src[r * ow + j];
    for (int64_t j = ow; j < pitch; ++j) dst[r * pitch + j] = 0.0f;
  }
  for (int64_t q = rows * pitch; q < span; ++q) dst[q] = 0.0f;
}

using SampleKernel = void (*)(const ConvShape&, const Geometry&, int64_t, const float*, const float*, const int32_t*,
                              float*);

void sample_baseline(const ConvShape& s, const Geometry& g, int64_t count, const float* x, const float* dyw,
                     const int32_t* mask, float* partial) {
  sample_tiles<v4f, v4i, 2, 4>(s, g, count, x, dyw, mask, partial);
}
#if defined(KG_ISA_BUILDS)
// Register tiles, with one tap's vector live at a time (sample_tiles): AVX-512's 32 zmm hold 4 x 6
// sums, 4 + 1 operands and the mask; AVX2's 16 ymm 2 x 5 sums, 2 + 1 operands and the mask.
KG_AVX512 void sample_avx512(const ConvShape& s, const Geometry& g, int64_t count, const float* x, const float* dyw,
                             const int32_t* mask, float* partial) {
  sample_tiles<v16f, v16i, 4, 6>(s, g, count, x, dyw, mask, partial);
}
KG_AVX2 void sample_avx2(const ConvShape& s, const Geometry& g, int64_t count, const float* x, const float* dyw,
                         const int32_t* mask, float* partial) {
  sample_tiles<v8f, v8i, 2, 5>(s, g, count, x, dyw, mask, partial);
}
#endif

SampleKernel sample_kernel() {
#if defined(KG_ISA_BUILDS)
  switch (cpu_isa()) {
    case Isa::Avx512: return sample_avx512;
    case Isa::Avx2: return sample_avx2;
    default: break;
  }
#endif
  return sample_baseline;
}

}  // namespace

void shifted_conv_backward_weight_lanes(const ConvShape& s, const float* x, const float* dy, float* dw, float* db) {
  static const SampleKernel kernel = sample_kernel();
  const Geometry g(s);
  const int64_t K = s.k, P = s.oh * s.ow, weights = K * g.CKK;
  std::vector<int32_t> mask(size_t(g.span), 0);
  for (int64_t q = 0; q < g.in.wide; ++q) mask[size_t(q)] = q % g.in.pitch < s.ow ? -1 : 0;

  const int64_t most = std::max<int64_t>(1, kMaxPartialFloats / std::max<int64_t>(1, weights));
  const int64_t chunks = std::clamp<int64_t>(ceil_div(s.n, kSamplesPerChunk), 1, most);
  const int64_t per_chunk = ceil_div(s.n, chunks);
  HostBuffer partials(chunks * weights);
  BiasSums bias(s, db);
  // Samples in groups whose padded planes and gradients fit in about half an L2 (at least one).
  const int64_t per_sample = g.in.floats + K * g.span;
  const int64_t group = std::clamp<int64_t>(kGroupFloats / per_sample, 1, per_chunk);
  parallel_for_dynamic(chunks, chunks > 1, [&](int64_t chunk) {
    float* partial = partials.get() + chunk * weights;
    std::fill(partial, partial + weights, 0.0f);
    float* xp = scratch(Scratch::Columns, size_t(group * g.in.floats));
    float* dyw = scratch(Scratch::Block, size_t(group * K * g.span));
    const int64_t end = std::min(s.n, (chunk + 1) * per_chunk);
    for (int64_t n0 = chunk * per_chunk; n0 < end; n0 += group) {
      const int64_t count = std::min(group, end - n0);
      for (int64_t i = 0; i < count; ++i) {
        g.in.prepare(s, x, n0 + i, xp + i * g.in.floats);
        for (int64_t k = 0; k < K; ++k)
          spread_rows(dy + ((n0 + i) * K + k) * P, s.oh, s.ow, g.in.pitch, g.span, dyw + (i * K + k) * g.span);
        bias.sample(dy, n0 + i);
      }
      kernel(s, g, count, xp, dyw, mask.data(), partial);
    }
  });
  for (int64_t i = 0; i < weights; ++i) {
    float total = 0.0f;
    for (int64_t c = 0; c < chunks; ++c) total += partials.get()[c * weights + i];
    dw[i] = total;
  }
  bias.finish();
}

}  // namespace kg::cpu
