// Packing of GEMM operands into micro-panels, the layout the micro-kernel streams through:
// a panel of R "rows" (R = kMR rows of A, or kNR columns of B) over kc steps of the shared
// dimension is stored as dst[p * R + r]. Rows past the matrix edge are zero, so the kernel
// always computes whole tiles (and every element of C sees the same operation sequence, wherever
// the tile boundaries fall).
#pragma once
#include <algorithm>
#include <cstdint>

#include "simd.h"

namespace kg::cpu {

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
  // The other layouts: walk each row along p (contiguous when ps == 1), writing with stride R.
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = src + r * rs;
    for (int64_t p = 0; p < kc; ++p) dst[p * R + r] = s[p * ps];
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
// pixels or kernel taps) or along p (strided stores), whichever way the runs are longer.
template <int R>
inline void pack_panel_gather(float* __restrict dst, const float* __restrict base, const int64_t* roff,
                              int64_t rows, const int64_t* poff, int64_t kc) {
  int64_t rstart[R + 1];
  const int64_t rruns = split_runs(roff, rows, rstart);
  int64_t pruns = 1;
  for (int64_t p = 1; p < kc; ++p) pruns += poff[p] != poff[p - 1] + 1;
  if (rows >= 8 * rruns || rows * pruns >= kc * rruns) {  // along r
    for (int64_t p = 0; p < kc; ++p) {
      const float* s = base + poff[p];
      float* d = dst + p * R;
      for (int64_t i = 0; i < rruns; ++i) copy_short(d + rstart[i], s + roff[rstart[i]], rstart[i + 1] - rstart[i]);
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

}  // namespace kg::cpu
