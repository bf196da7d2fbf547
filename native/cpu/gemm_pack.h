// Packing of GEMM operands into micro-panels, the layout the micro-kernel streams through:
// a panel of R "rows" (R = kMR rows of A, or kNR columns of B) over kc steps of the shared
// dimension is stored as dst[p * R + r]. Rows past the matrix edge are zero, so the kernel
// always computes whole tiles (and every element of C sees the same operation sequence, wherever
// the tile boundaries fall).
#pragma once
#include <algorithm>
#include <cstdint>

#include "simd.h"

#if defined(__SSE2__)
#include <xmmintrin.h>
#endif

namespace kg::cpu {

// dst[p * R + r] = s[r][p] for r < rows, p < kc, where row r (s[r]) is contiguous along p: a
// transpose. Element by element it costs a scalar load and store per float, which made packing a
// weight matrix (a convolution's filters, a dense layer's rows) cost as much as multiplying it at
// small batches. Here 4 rows x 4 steps are transposed in SSE registers (4 loads, 4 stores for
// 16 floats), a pair of rows as interleaved pairs, and a last odd row element by element.
template <int R>
inline void pack_rows_transposed(float* __restrict dst, const float* __restrict src, int64_t rs, int64_t rows,
                                 int64_t kc) {
  int64_t r = 0;
#if defined(__SSE2__)
  for (; r + 4 <= rows; r += 4) {
    const float *s0 = src + r * rs, *s1 = s0 + rs, *s2 = s1 + rs, *s3 = s2 + rs;
    int64_t p = 0;
    for (; p + 4 <= kc; p += 4) {
      __m128 a = _mm_loadu_ps(s0 + p), b = _mm_loadu_ps(s1 + p), c = _mm_loadu_ps(s2 + p), d = _mm_loadu_ps(s3 + p);
      _MM_TRANSPOSE4_PS(a, b, c, d);
      float* o = dst + p * R + r;
      _mm_storeu_ps(o, a);
      _mm_storeu_ps(o + R, b);
      _mm_storeu_ps(o + 2 * R, c);
      _mm_storeu_ps(o + 3 * R, d);
    }
    for (; p < kc; ++p) {
      float* o = dst + p * R + r;
      o[0] = s0[p], o[1] = s1[p], o[2] = s2[p], o[3] = s3[p];
    }
  }
  for (; r + 2 <= rows; r += 2) {
    const float *s0 = src + r * rs, *s1 = s0 + rs;
    int64_t p = 0;
    for (; p + 4 <= kc; p += 4) {
      const __m128 a = _mm_loadu_ps(s0 + p), b = _mm_loadu_ps(s1 + p);
      const __m128 lo = _mm_unpacklo_ps(a, b), hi = _mm_unpackhi_ps(a, b);  // a0 b0 a1 b1, a2 b2 a3 b3
      float* o = dst + p * R + r;
      _mm_storel_pi(reinterpret_cast<__m64*>(o), lo);
      _mm_storeh_pi(reinterpret_cast<__m64*>(o + R), lo);
      _mm_storel_pi(reinterpret_cast<__m64*>(o + 2 * R), hi);
      _mm_storeh_pi(reinterpret_cast<__m64*>(o + 3 * R), hi);
    }
    for (; p < kc; ++p) dst[p * R + r] = s0[p], dst[p * R + r + 1] = s1[p];
  }
#endif
  for (; r < rows; ++r) {
    const float* s = src + r * rs;
    for (int64_t p = 0; p < kc; ++p) dst[p * R + r] = s[p];
  }
}

// dst[p * R + r] = src[r * rs + p * ps] for r < rows (<= R), 0 for rows <= r < R.
template <int R>
inline void pack_panel(float* __restrict dst, const float* __restrict src, int64_t rs, int64_t ps,
                       int64_t rows, int64_t kc) {
  if (rs == 1 && rows == R) {  // rows contiguous in memory: R-float copies, vectorized
    for (int64_t p = 0; p < kc; ++p) {
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) dst[p * R + r] = src[p * ps + r];
    }
    return;
  }
  if (ps == 1) {
    pack_rows_transposed<R>(dst, src, rs, rows, kc);
  } else {  // the other layouts: walk each row along p, writing with stride R
    for (int64_t r = 0; r < rows; ++r) {
      const float* s = src + r * rs;
      for (int64_t p = 0; p < kc; ++p) dst[p * R + r] = s[p * ps];
    }
  }
  for (int64_t p = 0; p < kc && rows < R; ++p) {
    for (int64_t r = rows; r < R; ++r) dst[p * R + r] = 0.0f;
  }
}

// Calls f(panel, r0, rows) for the consecutive micro-panels that hold `count` rows over kc steps:
// the one starting at row r0 = i * R (with rows <= R of them) is at panel = dst + r0 * kc.
template <int R, class F>
inline void for_each_panel(float* dst, int64_t count, int64_t kc, F&& f) {
  for (int64_t r0 = 0; r0 < count; r0 += R) f(dst + r0 * kc, r0, std::min<int64_t>(R, count - r0));
}

// `rows` strided rows as consecutive micro-panels.
template <int R>
inline void pack_panels(float* dst, const float* src, int64_t rs, int64_t ps, int64_t rows, int64_t kc) {
  for_each_panel<R>(dst, rows, kc, [&](float* panel, int64_t r0, int64_t n) {
    pack_panel<R>(panel, src + r0 * rs, rs, ps, n, kc);
  });
}

// Splits offs[0 .. n) into runs of consecutive addresses (offs[i + 1] == offs[i] + 1); writes
// their starts to start[0 .. runs) with start[runs] = n, and returns runs.
inline int64_t split_runs(const int64_t* offs, int64_t n, int64_t* start) {
  int64_t runs = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (i == 0 || offs[i] != offs[i - 1] + 1) start[runs++] = i;
  }
  start[runs] = n;
  return runs;
}

// dst[p * R + r] = base[roff[r] + poff[p]] for r < rows (<= R), 0 beyond: operands whose rows or
// steps are not evenly strided (a convolution's input or dy seen as one matrix over the batch).
// Runs of consecutive addresses are copied as blocks, along r (short vector copies; neighbouring
// pixels or kernel taps) or along p (one scalar load and store per element, the stores strided).
// Along r wins as soon as its runs average 3 elements or more, even where the runs along p are
// longer: a run of 5 kernel taps is two overlapping 4-float moves, the same 5 elements along p
// ten scalar ones (the weight gradient's taps by pixels, which went along p and took 9% of a
// training step).
template <int R>
inline void pack_panel_gather(float* __restrict dst, const float* __restrict base, const int64_t* roff,
                              int64_t rows, const int64_t* poff, int64_t kc) {
  int64_t rstart[R + 1];
  const int64_t rruns = split_runs(roff, rows, rstart);
  if (rows >= 3 * rruns) {  // along r: run by run, each down all the steps p
    // A run's length is fixed for the whole panel, so its copies get a loop of their own, and
    // the usual 8-pixel run (a row of the tutorial's cropped 8x8 map) one 8-float move per step.
    for (int64_t i = 0; i < rruns; ++i) {
      const int64_t r0 = rstart[i], len = rstart[i + 1] - r0;
      const float* s = base + roff[r0];
      float* d = dst + r0;
      if (len == 8) {
        for (int64_t p = 0; p < kc; ++p) store8(d + p * R, load8(s + poff[p]));
      } else {
        for (int64_t p = 0; p < kc; ++p) copy_short(d + p * R, s + poff[p], len);
      }
    }
  } else {  // along p
    for (int64_t p0 = 0; p0 < kc;) {
      int64_t p1 = p0 + 1;
      while (p1 < kc && poff[p1] == poff[p1 - 1] + 1) ++p1;
      for (int64_t r = 0; r < rows; ++r) {
        const float* s = base + roff[r] + poff[p0];
        float* d = dst + p0 * R + r;
        for (int64_t p = 0; p < p1 - p0; ++p) d[p * R] = s[p];
      }
      p0 = p1;
    }
  }
  for (int64_t p = 0; p < kc && rows < R; ++p) {
    for (int64_t r = rows; r < R; ++r) dst[p * R + r] = 0.0f;
  }
}

// pack_panel_gather<16> for B micro-panels (kNR == 16), in the build for this CPU: with AVX-512 its
// copies along r are masked loads (gemm_pack.cpp). The same copy, so the same bits either way.
void pack_b_panel_gather(float* dst, const float* base, const int64_t* roff, int64_t rows, const int64_t* poff,
                         int64_t kc);

}  // namespace kg::cpu
