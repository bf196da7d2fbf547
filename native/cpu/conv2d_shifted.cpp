#include "conv2d_shifted.h"

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "conv_padding.h"
#include "gemm_driver.h"
#include "gemm_kernel.h"
#include "gemm_pack.h"
#include "host_allocator.h"
#include "memory_hints.h"
#include "parallel.h"
#include "scratch.h"
#include "simd.h"

namespace kg::cpu {
namespace {

// Wide columns per task: one group of micro-panels, which the micro-kernel takes in one call.
constexpr int64_t kTaskColumns = kGroup * kNR;

// The by-column layout's copies (kw of them, sh row phases each) fit in a quarter of a 2 MiB L2.
constexpr int64_t kMaxColumnCopiesFloats = int64_t(1) << 17;

int64_t phase_rows(const ConvShape& s) { return ceil_div(s.h + 2 * s.ph, s.sh); }
int64_t phase_pitch(const ConvShape& s) { return ceil_div(s.w + 2 * s.pw, s.sw); }

// Whether the by-column layout serves s: its copies fit, and they cost less than the multiply-adds
// of the columns the by-phase layout would drop. A unit stride with rows as wide as the input's
// (padding that keeps the size) makes each copy one block copy (phase_rows_of); otherwise a copy
// costs about what 512 multiply-adds (32 vector instructions) of a dropped column do, row for row.
bool use_column_copies(const ConvShape& s) {
  const int64_t dropped = phase_pitch(s) - s.ow;
  if (dropped == 0 || s.kw * s.c * s.sh * phase_rows(s) * s.ow > kMaxColumnCopiesFloats) return false;
  const bool block_copies = s.sh == 1 && s.sw == 1 && s.ow == s.w;
  return block_copies || dropped * s.k * s.kh * s.kw >= 512 * (s.kw - 1);
}

// Rows r < rows of a group of tiles (acc, g tiles of kMR x kNR, of `cols` columns in all) into the
// planes of rows' filters (out, P apart), whole: tile t's row r to out + r * P + t * kNR, the last
// tile cut at `cols`. As the GEMM path's OutputStore: on the first k block the sum plus the bias
// (or + 0.0f), later blocks added.
KG_MULTIVERSION void store_tiles(const float* acc, int g, int rows, int64_t cols, float* out, int64_t P,
                                 const float* bias, bool first) {
  for (int r = 0; r < rows; ++r) {
    const float b = bias ? bias[r] : 0.0f;
    for (int t = 0; t < g; ++t) {
      const float* a = acc + t * kMR * kNR + r * kNR;
      float* d = out + r * P + t * kNR;
      const int64_t n = std::min<int64_t>(kNR, cols - t * kNR);
      if (first) {
        for (int64_t i = 0; i < n; ++i) d[i] = a[i] + b;
      } else {
        for (int64_t i = 0; i < n; ++i) d[i] += a[i];
      }
    }
  }
}

// out[r * ow + j] = wide[r * pitch + j] for rows r < rows and j < ow: the kept columns of outputs
// computed over wide columns, copied out (multiversioned). Storing each tile's kept runs straight
// into the output instead took longer (a tenth of a stride-2 layer's forward).
KG_MULTIVERSION void keep_columns(const float* __restrict wide, int64_t rows, int64_t pitch, int64_t ow,
                                  float* __restrict out) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < ow; ++j) out[r * ow + j] = wide[r * pitch + j];
}

}  // namespace

bool shifted_conv(const ConvShape& s) {
  if (s.groups != 1 || s.n == 0 || s.c < 2 || s.k < kMR || s.oh == 0 || s.ow == 0) return false;
  // A stride past the kernel would leave phase planes that no tap reads (and a hostile one,
  // billions of them).
  if (s.sh < 1 || s.sw < 1 || s.sh > s.kh || s.sw > s.kw) return false;
  if ((s.ph > 0 || s.pw > 0) && !pad_explicitly(s)) return false;
  // In the by-phase layout, dropped columns at most a quarter of the kept ones. (Beyond that, as
  // with the tutorial's unpadded 5x5 layer on 13x13 images, the by-column copies, made row by row,
  // and the tail of each sample's last chunk cost more than the GEMM path over the whole batch.)
  return 4 * phase_pitch(s) <= 5 * s.ow;
}

ShiftedInput::ShiftedInput(const ConvShape& s)
    : ShiftedInput(s, use_column_copies(s) ? ShiftedLayout::ByColumn : ShiftedLayout::ByPhase) {}

ShiftedInput::ShiftedInput(const ConvShape& s, ShiftedLayout by)
    : layout(by),
      rows(phase_rows(s)),
      pitch(by_column() ? s.ow : phase_pitch(s)),
      wide(s.oh * pitch),
      floats((by_column() ? s.kw * s.c * s.sh : s.c * s.sh * s.sw) * rows * pitch + kTaskColumns + s.kw) {
  tap.reserve(size_t(s.c * s.kh * s.kw));
  for (int64_t ci = 0; ci < s.c; ++ci) {
    for (int64_t ki = 0; ki < s.kh; ++ki) {
      for (int64_t kj = 0; kj < s.kw; ++kj) {
        const int64_t plane = by_column() ? (kj * s.c + ci) * s.sh + ki % s.sh : (ci * s.sh + ki % s.sh) * s.sw + kj % s.sw;
        tap.push_back(plane * rows * pitch + ki / s.sh * pitch + (by_column() ? 0 : kj / s.sw));
      }
    }
  }
}

ShiftedInput ShiftedInput::view(const ConvShape& s, const ConvShape& t, int64_t down, int64_t right) const {
  ShiftedInput v = *this;
  v.wide = t.oh * pitch;
  v.tap.clear();
  for (int64_t ci = 0; ci < t.c; ++ci)
    for (int64_t ki = 0; ki < t.kh; ++ki)
      for (int64_t kj = 0; kj < t.kw; ++kj) v.tap.push_back(tap[size_t((ci * s.kh + ki + down) * s.kw + kj + right)]);
  return v;
}

namespace {

// Rows of one phase plane: out row i (pitch floats) = row i * sh + a of the padded plane `src`
// points into (x's plane, y rows of w), its columns j taken from x columns j * step + first - pw;
// zeros outside the image. The columns inside form a range [j0, j1), the same for every row.
// Rows as wide as x's (padding that keeps the size, unit strides) are one block copy; others go
// row by row in plain loops rather than memcpy and fill, the rows being short (8 floats on an 8x8
// image) and many (kw copies of every row). Multiversioned (simd.h).
KG_MULTIVERSION void phase_rows_of(const ConvShape& s, const float* plane, int64_t a, int64_t step, int64_t first,
                                   int64_t rows, int64_t pitch, float* out) {
  const int64_t j0 = std::min(pitch, ceil_div(std::max<int64_t>(0, s.pw - first), step));
  const int64_t j1 = std::max(j0, std::min(pitch, ceil_div(s.w + s.pw - first, step)));
  if (step == 1 && s.sh == 1 && pitch == s.w) {
    // Rows as wide as x's and consecutive: the rows inside the image are x's plane shifted by
    // first - pw columns, one copy, after which the columns it took from the next or the previous
    // row are zeroed.
    const int64_t i0 = std::min(rows, s.ph), i1 = std::max(i0, std::min(rows, s.h + s.ph)), d = first - s.pw;
    const int64_t lo = std::max<int64_t>(0, -d), hi = std::max(lo, (i1 - i0) * pitch - std::max<int64_t>(0, d));
    std::fill(out, out + i0 * pitch, 0.0f);
    if (hi > lo) std::memcpy(out + i0 * pitch + lo, plane + lo + d, size_t(hi - lo) * sizeof(float));
    for (int64_t i = i0; i < i1; ++i) {
      for (int64_t j = 0; j < j0; ++j) out[i * pitch + j] = 0.0f;
      for (int64_t j = j1; j < pitch; ++j) out[i * pitch + j] = 0.0f;
    }
    std::fill(out + i1 * pitch, out + rows * pitch, 0.0f);
    return;
  }
  for (int64_t i = 0; i < rows; ++i, out += pitch) {
    const int64_t y = i * s.sh + a - s.ph;
    if (y < 0 || y >= s.h) {
      for (int64_t j = 0; j < pitch; ++j) out[j] = 0.0f;
      continue;
    }
    const float* src = plane + y * s.w + first - s.pw;
    for (int64_t j = 0; j < j0; ++j) out[j] = 0.0f;
    if (step == 1) {
      for (int64_t j = j0; j < j1; ++j) out[j] = src[j];
    } else {
      for (int64_t j = j0; j < j1; ++j) out[j] = src[j * step];
    }
    for (int64_t j = j1; j < pitch; ++j) out[j] = 0.0f;
  }
}

// even[j] = src[2j], odd[j] = src[2j + 1] for j < n: in vectors (multiversioned).
KG_MULTIVERSION void deinterleave_pairs(const float* __restrict src, float* __restrict even, float* __restrict odd,
                                        int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    even[j] = src[2 * j];
    odd[j] = src[2 * j + 1];
  }
}

// phase_rows_of for the two column phases of a stride sw = 2 at once (out[0]: b = 0, out[1]: b = 1),
// each row of x read once and split, where a row per phase would gather every other float. Column
// j of phase b is x column 2j + b - pw, so x's even columns 2m go to phase pw % 2 at j = m + pw / 2
// and its odd ones to the other at m + (pw + 1) / 2 (both within the pitch); the rest are zeros.
void column_phase_pairs(const ConvShape& s, const float* plane, int64_t a, int64_t rows, int64_t pitch, float* out0,
                        float* out1) {
  const int64_t be = s.pw % 2, je = s.pw / 2, jo = (s.pw + 1) / 2;
  const int64_t ne = (s.w + 1) / 2, no = s.w / 2;  // x's even and odd columns
  for (int64_t i = 0; i < rows; ++i, out0 += pitch, out1 += pitch) {
    const int64_t y = i * s.sh + a - s.ph;
    float* even = be == 0 ? out0 : out1;
    float* odd = be == 0 ? out1 : out0;
    if (y < 0 || y >= s.h) {
      std::fill(out0, out0 + pitch, 0.0f);
      std::fill(out1, out1 + pitch, 0.0f);
      continue;
    }
    const float* src = plane + y * s.w;
    std::fill(even, even + je, 0.0f);
    std::fill(odd, odd + jo, 0.0f);
    deinterleave_pairs(src, even + je, odd + jo, no);
    if (ne > no) even[je + no] = src[2 * no];
    std::fill(even + je + ne, even + pitch, 0.0f);
    std::fill(odd + jo + no, odd + pitch, 0.0f);
  }
}

}  // namespace

void ShiftedInput::prepare(const ConvShape& s, const float* x, int64_t sample, float* dst) const {
  const float* in = x + sample * s.c * s.h * s.w;
  const int64_t plane = rows * pitch, planes = floats - kTaskColumns - s.kw, image = s.h * s.w;
  // Each channel's plane is prefetched while the one before it is copied: the sample comes from
  // memory, and a plane of 4 KiB or more is a page of its own, where the hardware's prefetcher
  // stops, so its reads would otherwise wait for memory (a quarter of a stride-2 layer's
  // filter gradient went to them).
  prefetch_floats(in, image);
  for (int64_t ci = 0; ci < s.c; ++ci) {
    const float* src = in + ci * image;
    if (ci + 1 < s.c) prefetch_floats(src + image, image);
    for (int64_t a = 0; a < s.sh; ++a) {
      if (by_column()) {
        for (int64_t kj = 0; kj < s.kw; ++kj)
          phase_rows_of(s, src, a, s.sw, kj, rows, pitch, dst + ((kj * s.c + ci) * s.sh + a) * plane);
      } else if (s.sw == 2) {
        column_phase_pairs(s, src, a, rows, pitch, dst + (ci * s.sh + a) * 2 * plane, dst + ((ci * s.sh + a) * 2 + 1) * plane);
      } else {
        for (int64_t b = 0; b < s.sw; ++b)
          phase_rows_of(s, src, a, s.sw, b, rows, pitch, dst + ((ci * s.sh + a) * s.sw + b) * plane);
      }
    }
  }
  std::fill(dst + planes, dst + floats, 0.0f);
}

ShiftedConv::ShiftedConv(const ConvShape& shape, const float* w) : ShiftedConv(shape, w, ShiftedInput(shape)) {}

ShiftedConv::ShiftedConv(const ConvShape& shape, const float* w, ShiftedInput input)
    : s(shape),
      in(std::move(input)),
      CKK(s.c * s.kh * s.kw),
      P(s.oh * s.ow),
      chunks(ceil_div(in.wide, kTaskColumns)),
      kc_max(gemm_detail::k_block(CKK)),
      panel_rows(ceil_div(s.k, kMR) * kMR),
      filters(panel_rows * CKK) {
  // The filters as micro-panels, k block by k block: block p0 at filters + p0 * panel_rows.
  for (int64_t p0 = 0; p0 < CKK; p0 += kc_max) {
    pack_panels<kMR>(filters.get() + p0 * panel_rows, w + p0, CKK, 1, s.k, std::min(kc_max, CKK - p0));
  }
}

void ShiftedConv::chunk(const float* xp, int64_t chunk, const float* bias, float* out) const {
  const int64_t K = s.k, q0 = chunk * kTaskColumns, cols = std::min(kTaskColumns, in.wide - q0);
  const int g = int(ceil_div(cols, kNR));
  alignas(64) float acc[kGroup][kMR * kNR];
  for (int64_t p0 = 0; p0 < CKK; p0 += kc_max) {
    const int64_t kc = std::min(kc_max, CKK - p0);
    const bool first = p0 == 0;
    for (int64_t i0 = 0; i0 < K; i0 += kMR) {
      const int rows = int(std::min<int64_t>(kMR, K - i0));
      gemm_micro_kernel_shifted_group(g, kc, filters.get() + p0 * panel_rows + i0 * kc, xp + q0, in.tap.data() + p0,
                                      acc[0], rows);
      store_tiles(acc[0], g, rows, cols, out + i0 * in.wide + q0, in.wide, bias ? bias + i0 : nullptr, first);
    }
  }
}

void ShiftedConv::sample(const float* x, int64_t sample, float* xp, const float* bias, float* y_sample,
                         bool parallel) const {
  in.prepare(s, x, sample, xp);
  float* out = dropped() ? scratch(Scratch::PackB, size_t(s.k * in.wide)) : y_sample;
  if (parallel) {
    parallel_for(chunks, true, [&](int64_t c) { chunk(xp, c, bias, out); });
  } else {
    // The next sample (the thread's next, in a run of samples) comes in from memory a slice per
    // chunk, while the multiply-adds run: its preparation would otherwise wait for it.
    const int64_t image = s.c * s.h * s.w;
    const float* next = sample + 1 < s.n ? x + (sample + 1) * image : nullptr;
    for (int64_t c = 0; c < chunks; ++c) {
      if (next) prefetch_floats(next + c * image / chunks, (c + 1) * image / chunks - c * image / chunks);
      chunk(xp, c, bias, out);
    }
  }
  if (dropped()) keep_columns(out, s.k * s.oh, in.pitch, s.ow, y_sample);
}

void shifted_conv_forward(const ConvShape& s, const float* x, const float* w, const float* bias, float* y) {
  const ShiftedConv conv(s, w);
  const bool parallel = 2.0 * double(s.k) * double(conv.CKK) * double(s.n * conv.P) >= kGemmParallelFlops;
  if (parallel && s.n >= 2 * available_threads()) {
    // Sample by sample on each thread, each prepared in the thread's buffer (in its L2), where a
    // prepared copy of the whole batch would be written to memory and read back; runs of samples,
    // so that a thread's next sample is the one after (ShiftedConv::sample prefetches it).
    parallel_for(s.n, true, [&](int64_t sample) {
      float* xp = scratch(Scratch::Columns, size_t(conv.in.floats));
      conv.sample(x, sample, xp, bias, y + sample * s.k * conv.P, false);
    });
    return;
  }
  // A small batch: its samples one after another, the chunks of each in parallel.
  float* xp = scratch(Scratch::Columns, size_t(conv.in.floats));
  for (int64_t sample = 0; sample < s.n; ++sample) conv.sample(x, sample, xp, bias, y + sample * s.k * conv.P, parallel);
}

std::optional<ConvShape> transposed_conv(const ConvShape& s) {
  if (s.sh != 1 || s.sw != 1 || s.groups != 1 || s.ph >= s.kh || s.pw >= s.kw) return std::nullopt;
  return ConvShape{s.n, s.k, s.oh, s.ow, s.c, s.kh, s.kw, 1, 1, s.kh - 1 - s.ph, s.kw - 1 - s.pw, s.h, s.w, 1};
}

void turn_filters(const ConvShape& s, const float* w, float* turned) {
  const int64_t taps = s.kh * s.kw;
  for (int64_t k = 0; k < s.k; ++k)
    for (int64_t ci = 0; ci < s.c; ++ci)
      for (int64_t t = 0; t < taps; ++t) turned[(ci * s.k + k) * taps + taps - 1 - t] = w[(k * s.c + ci) * taps + t];
}

}  // namespace kg::cpu
