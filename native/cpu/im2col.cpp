#include "im2col.h"

#include <vector>

#include "isa.h"
#include "simd.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#endif

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

// col2im by input row, for unit stride, no padding and rows at most kMaxPlaneRow wide: adds one
// channel's taps over one sample's output rows [oy0, oy1) into the channel's dx plane. src holds
// the taps (ki, kj) as rows ps apart, each starting at output row oy0.
//
// Tap by tap, a tap adds each output row into an input row in a run of ow pixels (9 in the tutorial's
// second layer), and such short runs cost more in loop overhead and dx loads and stores than in
// additions. Here each input row iy is held in registers while the taps that reach it, output row
// iy - ki shifted right by kj, are added in increasing (ki, kj); it is loaded and stored once.
// Every element still receives its terms in increasing tap order after its old value, so the
// sums are bitwise those of the tap-by-tap loop.
constexpr int64_t kMaxPlaneRow = 16;

#if defined(KG_ISA_BUILDS)
// One zmm per row; the masked load of each shifted tap row touches only its ow pixels, and the
// masked add leaves the other lanes as they are. Each row's additions form one dependent chain,
// so kRows rows go side by side to keep the adder busy; a tap row that does not reach one of
// them (at the plane's top and bottom) gets an empty mask, which neither loads nor adds.
KG_AVX512 void add_plane_avx512(const ConvShape& s, const float* src, int64_t ps, int64_t oy0, int64_t oy1,
                                float* plane) {
  constexpr int kRows = 4;
  const __mmask16 row = __mmask16((1u << s.w) - 1), span = __mmask16((1u << s.ow) - 1);
  const int64_t iy_end = oy1 + s.kh - 1;
  for (int64_t iy0 = oy0; iy0 < iy_end; iy0 += kRows) {
    __m512 acc[kRows];
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r) acc[r] = _mm512_maskz_loadu_ps(iy0 + r < iy_end ? row : 0, plane + (iy0 + r) * s.w);
    // The taps that reach any of the rows: output row iy - ki in [oy0, oy1).
    const int64_t ki_end = std::min(s.kh, iy0 + kRows - oy0);
    for (int64_t ki = std::max<int64_t>(0, iy0 - oy1 + 1); ki < ki_end; ++ki) {
      const float* in[kRows];
      __mmask16 reach[kRows];
#pragma GCC unroll 4
      for (int r = 0; r < kRows; ++r) {
        const int64_t oy = iy0 + r - ki;
        reach[r] = oy >= oy0 && oy < oy1 ? span : 0;
        in[r] = src + ki * s.kw * ps + (oy - oy0) * s.ow;  // tap (ki, 0) at output row oy
      }
      for (int64_t kj = 0; kj < s.kw; ++kj) {
#pragma GCC unroll 4
        for (int r = 0; r < kRows; ++r) {
          const __mmask16 m = __mmask16(reach[r] << kj);
          acc[r] = _mm512_mask_add_ps(acc[r], m, acc[r], _mm512_maskz_loadu_ps(m, in[r] + kj * (ps - 1)));
        }
      }
    }
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r) _mm512_mask_storeu_ps(plane + (iy0 + r) * s.w, iy0 + r < iy_end ? row : 0, acc[r]);
  }
}

// Two ymm per row (one when w <= 8). The masked loads read 0.0f outside a tap's span, and adding
// +0.0f changes nothing: a sum that starts at +0.0f (dx is zeroed first) is never -0.0f in
// round-to-nearest (x + y is -0 only when both are -0), and v + 0.0f == v bitwise for any other
// v, NaN and infinities included.
template <int Halves>
KG_AVX2 void add_plane_avx2(const ConvShape& s, const float* src, int64_t ps, int64_t oy0, int64_t oy1, float* plane) {
  // lanes[16 + l] is all ones for l < ow: lane l of a tap shifted by kj is lanes[16 + l - kj].
  alignas(32) int32_t lanes[48] = {};
  for (int64_t l = 0; l < s.ow; ++l) lanes[16 + l] = -1;
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i row0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(s.w)), iota);
  const __m256i row1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(s.w) - 8), iota);
  for (int64_t iy = oy0; iy < oy1 + s.kh - 1; ++iy) {
    float* out = plane + iy * s.w;
    __m256 acc0 = _mm256_maskload_ps(out, row0), acc1 = _mm256_setzero_ps();
    if constexpr (Halves == 2) acc1 = _mm256_maskload_ps(out + 8, row1);
    const int64_t ki_end = std::min(s.kh, iy - oy0 + 1);
    for (int64_t ki = std::max<int64_t>(0, iy - oy1 + 1); ki < ki_end; ++ki) {
      const float* in = src + ki * s.kw * ps + (iy - ki - oy0) * s.ow;  // tap (ki, 0)
      for (int64_t kj = 0; kj < s.kw; ++kj) {
        const float* shifted = in + kj * ps - kj;
        const __m256i m0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lanes + 16 - kj));
        acc0 = _mm256_add_ps(acc0, _mm256_maskload_ps(shifted, m0));
        if constexpr (Halves == 2) {
          const __m256i m1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lanes + 24 - kj));
          acc1 = _mm256_add_ps(acc1, _mm256_maskload_ps(shifted + 8, m1));
        }
      }
    }
    _mm256_maskstore_ps(out, row0, acc0);
    if constexpr (Halves == 2) _mm256_maskstore_ps(out + 8, row1, acc1);
  }
}
#endif

using AddPlane = void (*)(const ConvShape&, const float*, int64_t, int64_t, int64_t, float*);

// The build for this CPU and row width, or null for the tap-by-tap loop.
AddPlane plane_kernel(const ConvShape& s) {
  if (s.w > kMaxPlaneRow) return nullptr;
#if defined(KG_ISA_BUILDS)
  switch (cpu_isa()) {
    case Isa::Avx512: return add_plane_avx512;
    case Isa::Avx2: return s.w <= 8 ? add_plane_avx2<1> : add_plane_avx2<2>;
    default: break;
  }
#endif
  return nullptr;
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
    // Whole channels: row by row where a build for this CPU takes rows this wide.
    const int64_t kk = s.kh * s.kw;
    const AddPlane add_plane = p0 % kk == 0 && rows % kk == 0 ? plane_kernel(s) : nullptr;
    if (add_plane) {
      for (int64_t c = 0; c < rows / kk; ++c) {
        const int64_t ci = p0 / kk + c;
        ColumnCursor cur = column_at(s, q0);
        for (int64_t t = 0; t < len;) {  // the samples' runs of output rows
          const int64_t oy1 = std::min(s.oh, cur.oy + (len - t) / s.ow), count = (oy1 - cur.oy) * s.ow;
          add_plane(s, src + c * kk * ps + t, ps, cur.oy, oy1, dx + (cur.sample * s.c + ci) * s.h * s.w);
          t += count;
          cur = column_at(s, q0 + t);
        }
      }
      return;
    }
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
