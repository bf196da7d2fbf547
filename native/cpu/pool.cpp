// Average pooling without padding; windows may overlap (stride < kernel) or leave gaps.
// Both directions work plane by plane (one (sample, channel) image), in parallel over planes.
#include <algorithm>

#include "isa.h"
#include "kg/ops.h"
#include "parallel.h"
#include "pool_plane.h"
#include "simd.h"
#if defined(KG_ISA_BUILDS)
#include <immintrin.h>
#endif

namespace kg::cpu {
namespace {

// Calls f(first_plane, last_plane) over the n * c image planes, in parallel chunks of planes.
template <class F>
void for_plane_chunks(const PoolShape& s, F&& f) {
  const int64_t plane = std::max<int64_t>(1, s.h * s.w);
  parallel_range(s.n * s.c, std::max<int64_t>(1, kElementwiseGrain / plane), f);
}

// One plane forward: window sums in row-major tap order, accumulated a whole output row at a time.
// (The shape is taken by value so that its fields live in registers, not behind a reference.)
void forward_plane(const PoolShape s, const float* in, float* out, float inv_area) {
  for (int64_t i = 0; i < s.oh; ++i) {
    float* o = out + i * s.ow;
    std::fill(o, o + s.ow, 0.0f);
    for (int64_t a = 0; a < s.kh; ++a) {
      const float* row = in + (i * s.sh + a) * s.w;
      for (int64_t b = 0; b < s.kw; ++b) {
        for (int64_t j = 0; j < s.ow; ++j) o[j] += row[j * s.sw + b];
      }
    }
    for (int64_t j = 0; j < s.ow; ++j) o[j] *= inv_area;
  }
}

bool is_2x2_stride_2(const PoolShape& s) { return s.kh == 2 && s.kw == 2 && s.sh == 2 && s.sw == 2; }

// The same for 2x2 windows at stride 2 (is_2x2_stride_2), the usual pool, with the same sums in the same order
// (0 + a + b + c + d, then the scale): the generic loop's strided accumulation does not
// vectorize, this one does (the even/odd columns become shuffles).
KG_MULTIVERSION void forward_plane_2x2(const PoolShape s, const float* in, float* out) {
  for (int64_t i = 0; i < s.oh; ++i) {
    const float* r0 = in + 2 * i * s.w;
    const float* r1 = r0 + s.w;
    float* o = out + i * s.ow;
    for (int64_t j = 0; j < s.ow; ++j) o[j] = ((((0.0f + r0[2 * j]) + r0[2 * j + 1]) + r1[2 * j]) + r1[2 * j + 1]) * 0.25f;
  }
}

#if defined(KG_ISA_BUILDS)
// forward_plane_2x2 with AVX-512: up to 16 outputs of a row at a time, the even and odd columns of
// each input row pair separated by two permutes (the tutorial's rows, 26 and 8 pixels, fit one
// step). The same sums in the same order, so the same bits; masked loads and stores never touch a
// float outside the plane.
KG_AVX512 void forward_plane_2x2_avx512(const PoolShape& s, const float* in, float* out) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  const __m512 zero = _mm512_setzero_ps(), quarter = _mm512_set1_ps(0.25f);
  for (int64_t i = 0; i < s.oh; ++i) {
    const float* r0 = in + 2 * i * s.w;
    const float* r1 = r0 + s.w;
    for (int64_t j = 0; j < s.ow; j += 16) {
      const int64_t n = std::min<int64_t>(16, s.ow - j);  // outputs; 2n inputs per row
      const __mmask16 lo = __mmask16((1u << std::min<int64_t>(16, 2 * n)) - 1u);
      const __mmask16 hi = __mmask16((1u << std::max<int64_t>(0, 2 * n - 16)) - 1u);
      const __m512 a0 = _mm512_maskz_loadu_ps(lo, r0 + 2 * j), a1 = _mm512_maskz_loadu_ps(hi, r0 + 2 * j + 16);
      const __m512 b0 = _mm512_maskz_loadu_ps(lo, r1 + 2 * j), b1 = _mm512_maskz_loadu_ps(hi, r1 + 2 * j + 16);
      __m512 sum = _mm512_add_ps(zero, _mm512_permutex2var_ps(a0, even, a1));
      sum = _mm512_add_ps(sum, _mm512_permutex2var_ps(a0, odd, a1));
      sum = _mm512_add_ps(sum, _mm512_permutex2var_ps(b0, even, b1));
      sum = _mm512_add_ps(sum, _mm512_permutex2var_ps(b0, odd, b1));
      _mm512_mask_storeu_ps(out + i * s.ow + j, __mmask16((1u << n) - 1u), _mm512_mul_ps(sum, quarter));
    }
  }
}
#endif

// One plane backward: dx[window] (+)= dy / area, output by output. With overlapping windows the
// terms accumulate onto a zeroed plane in a fixed order; otherwise each element is written at
// most once and only the gaps that no window covers need zeros.
template <bool kOverlap>
void backward_plane(const PoolShape s, const float* g, float* out, float inv_area, bool gaps) {
  if (kOverlap || gaps) std::fill(out, out + s.h * s.w, 0.0f);
  for (int64_t i = 0; i < s.oh; ++i) {
    for (int64_t a = 0; a < s.kh; ++a) {
      float* row = out + (i * s.sh + a) * s.w;
      for (int64_t j = 0; j < s.ow; ++j) {
        const float v = g[i * s.ow + j] * inv_area;
        for (int64_t b = 0; b < s.kw; ++b) {
          if (kOverlap) row[j * s.sw + b] += v;
          else row[j * s.sw + b] = v;
        }
      }
    }
  }
}

// backward_plane<false> for 2x2 windows at stride 2: each dy / 4 to its four pixels, two output
// rows at a time (vectorized, where the generic loop writes pixel by pixel). Pixels of a last odd
// row or column belong to no window and get zeros.
KG_MULTIVERSION void backward_plane_2x2(const PoolShape s, const float* g, float* out) {
  for (int64_t i = 0; i < s.oh; ++i) {
    float* r0 = out + 2 * i * s.w;
    float* r1 = r0 + s.w;
    const float* gi = g + i * s.ow;
    for (int64_t j = 0; j < s.ow; ++j) {
      const float v = gi[j] * 0.25f;
      r0[2 * j] = v;
      r0[2 * j + 1] = v;
    }
    for (int64_t j = 0; j < 2 * s.ow; ++j) r1[j] = r0[j];
    for (int64_t j = 2 * s.ow; j < s.w; ++j) r0[j] = r1[j] = 0.0f;
  }
  for (int64_t r = 2 * s.oh; r < s.h; ++r) std::fill(out + r * s.w, out + (r + 1) * s.w, 0.0f);
}

}  // namespace

void avgpool2d_plane(const PoolShape& s, const float* in, float* out) {
  static const bool avx512 = cpu_isa() == Isa::Avx512;
  if (!is_2x2_stride_2(s)) return forward_plane(s, in, out, 1.0f / float(s.kh * s.kw));
#if defined(KG_ISA_BUILDS)
  if (avx512) return forward_plane_2x2_avx512(s, in, out);
#endif
  forward_plane_2x2(s, in, out);
}

void avgpool2d_forward(const PoolShape& s, const float* x, float* y) {
  for_plane_chunks(s, [&](int64_t first, int64_t last) {
    for (int64_t pl = first; pl < last; ++pl) avgpool2d_plane(s, x + pl * s.h * s.w, y + pl * s.oh * s.ow);
  });
}

void avgpool2d_backward(const PoolShape& s, const float* dy, float* dx) {
  const float inv_area = 1.0f / float(s.kh * s.kw);
  const bool overlap = s.sh < s.kh || s.sw < s.kw;
  const bool gaps = s.sh > s.kh || s.sw > s.kw || (s.oh - 1) * s.sh + s.kh < s.h || (s.ow - 1) * s.sw + s.kw < s.w;
  const bool two_by_two = is_2x2_stride_2(s);
  for_plane_chunks(s, [&](int64_t first, int64_t last) {
    for (int64_t pl = first; pl < last; ++pl) {
      const float* g = dy + pl * s.oh * s.ow;
      float* out = dx + pl * s.h * s.w;
      if (two_by_two) backward_plane_2x2(s, g, out);
      else if (overlap) backward_plane<true>(s, g, out, inv_area, gaps);
      else backward_plane<false>(s, g, out, inv_area, gaps);
    }
  });
}

}  // namespace kg::cpu
