#include "conv2d_shifted.h"

#include <algorithm>
#include <vector>

#include "conv_padding.h"
#include "gemm_driver.h"
#include "gemm_kernel.h"
#include "gemm_pack.h"
#include "host_allocator.h"
#include "parallel.h"
#include "scratch.h"
#include "simd.h"

namespace kg::cpu {
namespace {

// Wide columns per task: one group of micro-panels, which the micro-kernel takes in one call.
constexpr int64_t kTaskColumns = kGroup * kNR;

// The kept columns of a task, as runs that stay inside one output row and one micro-panel: run j
// is columns [col[j], col[j] + len[j]), going to the output plane from pixel pix[j] on.
struct Runs {
  const int64_t *col, *len, *pix;
  int count;
};

// Rows r < rows of a group of tiles (acc, kGroup tiles of kMR x kNR) into the output planes of
// rows' filters (out, P apart), as the GEMM path's OutputStore: on the first k block the sum plus
// the bias (or + 0.0f), later blocks added. Multiversioned (simd.h): the runs are a row of a small
// plane (8 pixels for an 8x8 image), one AVX vector.
KG_MULTIVERSION void store_runs(const float* acc, int rows, float* out, int64_t P, const float* bias, bool first,
                                const Runs& runs) {
  for (int r = 0; r < rows; ++r) {
    float* o = out + r * P;
    const float b = bias ? bias[r] : 0.0f;
    for (int j = 0; j < runs.count; ++j) {
      const float* a = acc + runs.col[j] / kNR * kMR * kNR + r * kNR + runs.col[j] % kNR;
      float* d = o + runs.pix[j];
      const int64_t n = runs.len[j];
      if (first) {
        for (int64_t i = 0; i < n; ++i) d[i] = a[i] + b;
      } else {
        for (int64_t i = 0; i < n; ++i) d[i] += a[i];
      }
    }
  }
}

}  // namespace

bool shifted_conv(const ConvShape& s) {
  if (s.groups != 1 || s.n == 0 || s.c < 2 || s.k < kMR || s.oh == 0 || s.ow == 0) return false;
  // A stride past the kernel would leave phase planes that no tap reads (and a hostile one,
  // billions of them).
  if (s.sh < 1 || s.sw < 1 || s.sh > s.kh || s.sw > s.kw) return false;
  if ((s.ph > 0 || s.pw > 0) && !pad_explicitly(s)) return false;
  // Dropped columns at most a quarter of the kept ones.
  return 4 * ceil_div(s.w + 2 * s.pw, s.sw) <= 5 * s.ow;
}

ShiftedInput::ShiftedInput(const ConvShape& s)
    : rows(ceil_div(s.h + 2 * s.ph, s.sh)),
      pitch(ceil_div(s.w + 2 * s.pw, s.sw)),
      wide(s.oh * pitch),
      floats(s.c * s.sh * s.sw * rows * pitch + kTaskColumns + s.kw) {
  tap.reserve(size_t(s.c * s.kh * s.kw));
  for (int64_t ci = 0; ci < s.c; ++ci)
    for (int64_t ki = 0; ki < s.kh; ++ki)
      for (int64_t kj = 0; kj < s.kw; ++kj)
        tap.push_back(((ci * s.sh + ki % s.sh) * s.sw + kj % s.sw) * rows * pitch + ki / s.sh * pitch + kj / s.sw);
}

void ShiftedInput::prepare(const ConvShape& s, const float* x, int64_t sample, float* dst) const {
  const float* in = x + sample * s.c * s.h * s.w;
  const int64_t size = s.c * s.sh * s.sw * rows * pitch;
  if (s.sh == 1 && s.sw == 1) {
    ConvShape one = s;
    one.n = 1;
    pad_planes(one, in, dst);  // (rows and pitch are the padded plane's)
  } else {
    for (int64_t ci = 0; ci < s.c; ++ci) {
      for (int64_t a = 0; a < s.sh; ++a) {
        for (int64_t b = 0; b < s.sw; ++b) {
          float* phase = dst + ((ci * s.sh + a) * s.sw + b) * rows * pitch;
          for (int64_t i = 0; i < rows; ++i) {
            const int64_t y = i * s.sh + a - s.ph;
            float* out = phase + i * pitch;
            if (y < 0 || y >= s.h) {
              std::fill(out, out + pitch, 0.0f);
              continue;
            }
            const float* row = in + (ci * s.h + y) * s.w;
            for (int64_t j = 0; j < pitch; ++j) {
              const int64_t x0 = j * s.sw + b - s.pw;
              out[j] = x0 >= 0 && x0 < s.w ? row[x0] : 0.0f;
            }
          }
        }
      }
    }
  }
  std::fill(dst + size, dst + floats, 0.0f);
}

namespace {

// One call's state: the prepared samples' layout, the filters packed once.
struct ShiftedConv {
  const ConvShape& s;
  ShiftedInput in;
  int64_t CKK, P, chunks, kc_max, panel_rows;
  HostBuffer filters;

  ShiftedConv(const ConvShape& shape, const float* w)
      : s(shape),
        in(shape),
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

  // The outputs of chunk `chunk` (kTaskColumns wide columns) of one sample, from its prepared copy xp.
  void chunk(const float* xp, int64_t chunk, const float* bias, float* y_sample) const {
    const int64_t K = s.k, q0 = chunk * kTaskColumns, cols = std::min(kTaskColumns, in.wide - q0);
    const int g = int(ceil_div(cols, kNR));
    // The kept columns as Runs.
    int64_t col[2 * kTaskColumns], len[2 * kTaskColumns], pix[2 * kTaskColumns];
    int runs = 0;
    for (int64_t c = 0; c < cols;) {
      const int64_t oy = (q0 + c) / in.pitch, ox = (q0 + c) % in.pitch;
      const int64_t end = std::min({cols, c + (in.pitch - ox), (c / kNR + 1) * kNR});
      if (ox < s.ow) {
        col[runs] = c;
        len[runs] = std::min(end, c + (s.ow - ox)) - c;
        pix[runs] = oy * s.ow + ox;
        ++runs;
      }
      c = end;
    }
    alignas(64) float acc[kGroup][kMR * kNR];
    for (int64_t p0 = 0; p0 < CKK; p0 += kc_max) {
      const int64_t kc = std::min(kc_max, CKK - p0);
      const bool first = p0 == 0;
      for (int64_t i0 = 0; i0 < K; i0 += kMR) {
        const int rows = int(std::min<int64_t>(kMR, K - i0));
        gemm_micro_kernel_shifted_group(g, kc, filters.get() + p0 * panel_rows + i0 * kc, xp + q0, in.tap.data() + p0,
                                        acc[0], rows);
        store_runs(acc[0], rows, y_sample + i0 * P, P, bias ? bias + i0 : nullptr, first, {col, len, pix, runs});
      }
    }
  }
};

}  // namespace

void shifted_conv_forward(const ConvShape& s, const float* x, const float* w, const float* bias, float* y) {
  const ShiftedConv conv(s, w);
  const bool parallel = 2.0 * double(s.k) * double(conv.CKK) * double(s.n * conv.P) >= kGemmParallelFlops;
  if (parallel && s.n >= 2 * available_threads()) {
    // Sample by sample on each thread, each prepared in the thread's buffer (in its L2), where a
    // prepared copy of the whole batch would be written to memory and read back.
    parallel_for_dynamic(s.n, true, [&](int64_t sample) {
      float* xp = scratch(Scratch::Columns, size_t(conv.in.floats));
      conv.in.prepare(s, x, sample, xp);
      for (int64_t c = 0; c < conv.chunks; ++c) conv.chunk(xp, c, bias, y + sample * s.k * conv.P);
    });
    return;
  }
  // A small batch: its samples one after another, the chunks of each in parallel.
  HostBuffer xp(conv.in.floats);
  for (int64_t sample = 0; sample < s.n; ++sample) {
    conv.in.prepare(s, x, sample, xp.get());
    parallel_for(conv.chunks, parallel, [&](int64_t c) { conv.chunk(xp.get(), c, bias, y + sample * s.k * conv.P); });
  }
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
