#include "im2col.h"

#include <vector>

#include "simd.h"

namespace kg::cpu {
namespace {

// Row p = (ci, ki, kj) of the column matrix, stepped incrementally (no divisions per row), with
// the output columns [ox_lo, ox_hi) whose input column ox * sw + kj - pw lies inside the image.
struct KernelTap {
  const ConvShape& s;
  int64_t ci, ki, kj, ox_lo, ox_hi;

  KernelTap(const ConvShape& shape, int64_t p) : s(shape) {
    const int64_t taps = s.kh * s.kw;
    ci = p / taps;
    ki = p % taps / s.kw;
    kj = p % s.kw;
    update_range();
  }
  void next() {
    if (++kj == s.kw) {
      kj = 0;
      if (++ki == s.kh) {
        ki = 0;
        ++ci;
      }
    }
    update_range();
  }
  void update_range() {
    const int64_t first = s.pw - kj;          // need ox * sw >= first
    const int64_t last = s.w - 1 + s.pw - kj;  // and ox * sw <= last
    if (s.sw == 1) {  // the common case, without the (slow) integer divisions
      ox_lo = std::max<int64_t>(first, 0);
      ox_hi = last < 0 ? 0 : std::min(s.ow, last + 1);
    } else {
      ox_lo = first <= 0 ? 0 : (first + s.sw - 1) / s.sw;
      ox_hi = last < 0 ? 0 : std::min(s.ow, last / s.sw + 1);
    }
    ox_lo = std::min(ox_lo, s.ow);
  }
  // Offset of this tap from a window's corner.
  int64_t offset() const { return (ci * s.h + ki) * s.w + kj; }
  // Offset in x of input row iy for this tap's channel, or -1 when the row is padding.
  int64_t row_offset(int64_t sample, int64_t oy) const {
    const int64_t iy = oy * s.sh + ki - s.ph;
    if (iy < 0 || iy >= s.h) return -1;
    return ((sample * s.c + ci) * s.h + iy) * s.w;
  }
};

// A run of columns within one output row, ox in [ox0, ox1), starting `t` columns into the block.
// Interior runs have every window inside the image: column ox reads x[corner + (ox - ox0) * sw
// + tap offset] for every tap, no bounds to check. Border runs reach into the padding.
struct Piece {
  int64_t t, sample, oy, ox0, ox1;
  bool interior;
  int64_t corner;
};

// Splits the columns [q0, q0 + len) into pieces, separating interior windows from border ones.
void split_columns(const ConvShape& s, int64_t q0, int64_t len, std::vector<Piece>& pieces) {
  pieces.clear();
  // Output columns whose windows lie inside the image horizontally: [in_lo, in_hi).
  const int64_t in_lo = std::min(s.ow, (s.pw + s.sw - 1) / s.sw);
  const int64_t in_hi = s.w + s.pw < s.kw ? in_lo : std::clamp((s.w + s.pw - s.kw) / s.sw + 1, in_lo, s.ow);
  for_each_output_run(s, column_at(s, q0), len, [&](int64_t t, int64_t sample, int64_t oy, int64_t ox0, int64_t ox1) {
    const int64_t iy = oy * s.sh - s.ph;
    const bool row_inside = iy >= 0 && iy + s.kh <= s.h;
    const int64_t a = row_inside ? std::clamp(in_lo, ox0, ox1) : ox1;
    const int64_t b = row_inside ? std::clamp(in_hi, a, ox1) : ox1;
    if (ox0 < a) pieces.push_back({t, sample, oy, ox0, a, false, 0});
    if (a < b) pieces.push_back({t + a - ox0, sample, oy, a, b, true, (sample * s.c * s.h + iy) * s.w + a * s.sw - s.pw});
    if (b < ox1) pieces.push_back({t + b - ox0, sample, oy, b, ox1, false, 0});
  });
}

// Reused between calls: splitting allocates nothing after warm-up.
thread_local std::vector<Piece> tls_pieces;

// Calls interior(tap, r, piece) or border(tap, r, piece, row, lo, hi) for every row r < rows and
// piece, rows outermost. For border pieces, row is the input row's offset in x (or -1 if it is
// padding) and [lo, hi) the part of the piece whose input column is inside the image.
template <class Interior, class Border>
void for_each_piece(const ConvShape& s, int64_t p0, int64_t rows, int64_t q0, int64_t len, Interior&& interior,
                    Border&& border) {
  std::vector<Piece>& pieces = tls_pieces;
  split_columns(s, q0, len, pieces);
  KernelTap tap(s, p0);
  for (int64_t r = 0; r < rows; ++r, tap.next()) {
    for (const Piece& pc : pieces) {
      if (pc.interior) {
        interior(tap, r, pc);
        continue;
      }
      const int64_t row = tap.row_offset(pc.sample, pc.oy);
      const int64_t lo = row < 0 ? pc.ox1 : std::clamp(tap.ox_lo, pc.ox0, pc.ox1);
      const int64_t hi = row < 0 ? pc.ox1 : std::clamp(tap.ox_hi, lo, pc.ox1);
      border(tap, r, pc, row, lo, hi);
    }
  }
}

}  // namespace

void im2col(const ConvShape& s, const float* x, int64_t p0, int64_t rows, int64_t q0, int64_t len, float* dst,
            int64_t ps, int64_t qs) {
  const int64_t sw = s.sw;
  for_each_piece(
      s, p0, rows, q0, len,
      [&](const KernelTap& tap, int64_t r, const Piece& pc) {
        const float* in = x + pc.corner + tap.offset();
        float* d = dst + r * ps + pc.t * qs;
        const int64_t n = pc.ox1 - pc.ox0;
        if (sw == 1 && qs == 1) {
          copy_short(d, in, n);
        } else {
          for (int64_t i = 0; i < n; ++i) d[i * qs] = in[i * sw];
        }
      },
      [&](const KernelTap& tap, int64_t r, const Piece& pc, int64_t row, int64_t lo, int64_t hi) {
        float* d = dst + r * ps + pc.t * qs;  // column ox0 of the piece
        for (int64_t i = 0; i < lo - pc.ox0; ++i) d[i * qs] = 0.0f;
        if (lo < hi) {
          const float* in = x + row + lo * sw + tap.kj - s.pw;
          float* out = d + (lo - pc.ox0) * qs;
          for (int64_t i = 0; i < hi - lo; ++i) out[i * qs] = in[i * sw];
        }
        for (int64_t i = hi - pc.ox0; i < pc.ox1 - pc.ox0; ++i) d[i * qs] = 0.0f;
      });
}

// Multiversioned (simd.h): AVX2 adds an 8-pixel stretch of a row in one instruction.
KG_MULTIVERSION void col2im_add(const ConvShape& s, const float* src, int64_t p0, int64_t rows, int64_t q0,
                                int64_t len, int64_t ps, int64_t qs, float* dx) {
  // Unit stride, no padding, whole output rows (what backward data hands over in sample-aligned
  // chunks): every window lies inside the image, and a tap adds each output row to one input row
  // at a fixed offset. Plain nested loops then, without cutting the columns into pieces, which
  // cost more than the additions for rows of a few pixels. The order of the additions is the
  // generic path's: taps outermost, columns in increasing order.
  if (s.sh == 1 && s.sw == 1 && s.ph == 0 && s.pw == 0 && qs == 1 && q0 % s.ow == 0 && len % s.ow == 0) {
    KernelTap tap(s, p0);
    for (int64_t r = 0; r < rows; ++r, tap.next()) {
      const float* in = src + r * ps;
      ColumnCursor c = column_at(s, q0);
      for (int64_t t = 0; t < len; t += s.ow, advance(s, c, s.ow)) {
        float* out = dx + ((c.sample * s.c + tap.ci) * s.h + c.oy + tap.ki) * s.w + tap.kj;
        for (int64_t i = 0; i < s.ow; ++i) out[i] += in[t + i];
      }
    }
    return;
  }
  const int64_t sw = s.sw;
  for_each_piece(
      s, p0, rows, q0, len,
      [&](const KernelTap& tap, int64_t r, const Piece& pc) {
        const float* in = src + r * ps + pc.t * qs;
        float* out = dx + pc.corner + tap.offset();
        const int64_t n = pc.ox1 - pc.ox0;
        if (sw == 1 && qs == 1) {
          for (int64_t i = 0; i < n; ++i) out[i] += in[i];
        } else {
          for (int64_t i = 0; i < n; ++i) out[i * sw] += in[i * qs];
        }
      },
      [&](const KernelTap& tap, int64_t r, const Piece& pc, int64_t row, int64_t lo, int64_t hi) {
        if (lo >= hi) return;
        const float* in = src + r * ps + (pc.t + lo - pc.ox0) * qs;
        float* out = dx + row + lo * sw + tap.kj - s.pw;
        for (int64_t i = 0; i < hi - lo; ++i) out[i * sw] += in[i * qs];
      });
}

}  // namespace kg::cpu
