// The column-matrix ("im2col") view of a convolution's input, which turns the convolution into
// a GEMM, and its adjoint col2im. For a ConvShape s the column matrix has
//   rows    p = (ci, ki, kj)         c * kh * kw of them, and
//   columns q = (sample, oy, ox)     n * oh * ow of them: the whole batch side by side,
//   col(p, q) = x[sample, ci, oy * sh + ki - ph, ox * sw + kj - pw]   (0 in the padding).
// The convolution kernels never build the whole matrix: the GEMM packers pull the blocks they
// need straight from x (conv2d.cpp), and backward-data goes through a bounded column buffer.
// A grouped convolution passes x (or dx) offset to its group's first channel and uses only the
// rows of the group's channels; s.c stays the channel count of a whole sample, its stride.
#pragma once
#include <algorithm>
#include <cstdint>

#include "kg/shapes.h"

namespace kg::cpu {

// The output position of column q.
struct ColumnCursor {
  int64_t sample, oy, ox;
};

inline ColumnCursor column_at(const ConvShape& s, int64_t q) {
  const int64_t per_sample = s.oh * s.ow;
  const int64_t pix = q % per_sample;
  return {q / per_sample, pix / s.ow, pix % s.ow};
}

// Moves the cursor `count` columns on within its output row (ox + count <= ow), wrapping to the
// next row (and sample) when the row ends.
inline void advance(const ConvShape& s, ColumnCursor& c, int64_t count = 1) {
  if ((c.ox += count) < s.ow) return;
  c.ox = 0;
  if (++c.oy == s.oh) {
    c.oy = 0;
    ++c.sample;
  }
}

// Walks `len` columns from cursor c in runs that stay inside one output row: calls
// f(t, sample, oy, ox_begin, ox_end), where t counts the columns before the run.
template <class F>
inline void for_each_output_run(const ConvShape& s, ColumnCursor c, int64_t len, F&& f) {
  for (int64_t t = 0; t < len;) {
    const int64_t run = std::min(s.ow - c.ox, len - t);
    f(t, c.sample, c.oy, c.ox, c.ox + run);
    t += run;
    advance(s, c, run);
  }
}

// dst[(p - p0) * ps + t * qs] = col(p, q0 + t) for p0 <= p < p0 + rows and t < len.
void im2col(const ConvShape& s, const float* x, int64_t p0, int64_t rows, int64_t q0, int64_t len, float* dst,
            int64_t ps, int64_t qs);

// The adjoint: for the same p and t, x[position of col(p, q0 + t)] += src[(p - p0) * ps + t * qs]
// (nothing for positions in the padding). Rows are visited in increasing p, columns in
// increasing t, so every element of dx receives its terms in a fixed order.
void col2im_add(const ConvShape& s, const float* src, int64_t p0, int64_t rows, int64_t q0, int64_t len,
                int64_t ps, int64_t qs, float* dx);

}  // namespace kg::cpu
