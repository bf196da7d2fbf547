// 2-D convolution as GEMM over the column matrix of im2col.h (rows p = (ci, ki, kj), CKK of them;
// columns q = (sample, oy, ox) over the whole batch, Q = n * oh * ow of them):
//   forward          y  (K x Q)   = W (K x CKK)  * col (CKK x Q)       one GEMM, B packed from x
//   backward data    dcol          = W^T         * dy (K x Q)          in column chunks, then col2im
//   backward weight  dW (K x CKK) = dy (K x Q)   * col^T (Q x CKK)     one GEMM, k runs over Q
// "dy (K x Q)" is dy seen across the batch: element (k, q) lives at dy[sample, k, pixel].
// Treating the batch as one wide matrix keeps the GEMMs large even for small images, and needs
// no column buffer except in backward data. A first layer on grey images (one input channel,
// where the GEMMs' k would be kh * kw) goes to the direct kernels of conv2d_single_channel.cpp.
//
// Grouped convolution runs the same GEMMs once per group, on the group's slices: its C/groups
// input channels (so CKK counts the taps of one group), its K/groups filters and output channels.
// The slices are reached through offset pointers; the samples' strides stay those of the whole
// x and y (s.c and s.k), so every helper below works unchanged on a group's slice.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include "conv2d_shifted.h"
#include "conv2d_single_channel.h"
#include "conv_padding.h"
#include "gemm_driver.h"
#include "gemm_pack.h"
#include "host_allocator.h"
#include "im2col.h"
#include "kg/ops.h"

namespace kg::cpu {
namespace {

int64_t group_channels(const ConvShape& s) { return s.c / s.groups; }
int64_t group_filters(const ConvShape& s) { return s.k / s.groups; }
int64_t taps(const ConvShape& s) { return group_channels(s) * s.kh * s.kw; }  // CKK, of one group
int64_t pixels(const ConvShape& s) { return s.oh * s.ow; }

// Where group g's slices start: its input channels in x (and dx), its filters in w (and dw), its
// output channels in y (and dy) and its first filter's index (into the bias).
struct GroupOffsets {
  int64_t x, w, y, k;
};
GroupOffsets group_offsets(const ConvShape& s, int64_t g) {
  const int64_t k0 = g * group_filters(s);
  return {g * group_channels(s) * s.h * s.w, k0 * taps(s), k0 * pixels(s), k0};
}

// Calls f(offsets of group g, parallel) for every group. Groups write disjoint parts of the output,
// so with enough of them (depthwise) they run in parallel, each GEMM serially; otherwise one after
// another, each GEMM parallel inside.
template <class F>
void for_each_group(const ConvShape& s, F&& f) {
  const bool across = s.groups >= 2 * available_threads();
  parallel_for_dynamic(s.groups, across, [&](int64_t g) { f(group_offsets(s, g), !across); });
}

// out[t] = offset in dy (or y) of column q0 + t's pixel in output channel 0, for t < len.
void output_offsets(const ConvShape& s, int64_t q0, int64_t len, int64_t* out) {
  const int64_t P = pixels(s);
  int64_t sample = q0 / P, pix = q0 % P;
  for (int64_t t = 0; t < len; ++t) {
    out[t] = sample * s.k * P + pix;
    if (++pix == P) {
      pix = 0;
      ++sample;
    }
  }
}

// Fast path of im2col. When the window of output column q lies wholly inside the image (touches
// no padding -- every column, when there is none), col(p, q) = x[tap[p] + off(q)]: an outer sum of
// offsets, which packs like a plain strided matrix instead of going through im2col's run-by-run
// bounds handling.
std::vector<int64_t> tap_offsets(const ConvShape& s) {
  std::vector<int64_t> tap;
  tap.reserve(size_t(taps(s)));
  for (int64_t ci = 0; ci < group_channels(s); ++ci)
    for (int64_t ki = 0; ki < s.kh; ++ki)
      for (int64_t kj = 0; kj < s.kw; ++kj) tap.push_back((ci * s.h + ki) * s.w + kj);
  return tap;
}

// off[t] = the x offset of column q0 + t's window corner, for t < len; false if any of these
// windows reaches into the padding.
bool interior_offsets(const ConvShape& s, int64_t q0, int64_t len, int64_t* off) {
  bool inside = true;
  for_each_output_run(s, column_at(s, q0), len, [&](int64_t t, int64_t sample, int64_t oy, int64_t ox0, int64_t ox1) {
    const int64_t iy = oy * s.sh - s.ph, ix0 = ox0 * s.sw - s.pw, ix_last = (ox1 - 1) * s.sw - s.pw;
    inside = inside && iy >= 0 && iy + s.kh <= s.h && ix0 >= 0 && ix_last + s.kw <= s.w;
    const int64_t corner = (sample * s.c * s.h + iy) * s.w + ix0;
    for (int64_t i = 0; i < ox1 - ox0; ++i) off[t + i] = corner + i * s.sw;
  });
  return inside;
}

// The window corners of backward weight's k block [p0, p0 + kc) (output columns), which every B
// panel of the block gathers by: computed once per block on each thread rather than once per
// panel, where they cost a twentieth of the call. Tagged with the call, whose number comes from
// a counter, and the block.
struct BlockCorners {
  uint64_t call = 0;
  int64_t p0 = -1;
  bool interior = false;
  int64_t off[kKC];
};
thread_local BlockCorners tls_corners;
std::atomic<uint64_t> g_weight_calls{0};

const BlockCorners& block_corners(const ConvShape& s, uint64_t call, int64_t p0, int64_t kc) {
  BlockCorners& b = tls_corners;
  if (b.call != call || b.p0 != p0) {
    b.call = call;
    b.p0 = p0;
    b.interior = interior_offsets(s, p0, kc, b.off);
  }
  return b;
}

void zero_columns(float* dst, int64_t kc, int64_t cols) {
  for (int64_t p = 0; p < kc && cols < kNR; ++p) std::fill(dst + p * kNR + cols, dst + (p + 1) * kNR, 0.0f);
}

// Tiles of y (K x Q) scattered to y[sample, k, pixel], plus the bias on the first k block.
struct OutputStore {
  const ConvShape& s;
  float* y;
  const float* bias;
  void operator()(const float* acc, int64_t i0, int64_t j0, int rows, int cols, bool first, bool /*last*/) const {
    const int64_t P = pixels(s);
    int64_t sample = j0 / P, pix = j0 % P;
    for (int c = 0; c < cols;) {  // runs of columns within one sample
      const int run = int(std::min<int64_t>(cols - c, P - pix));
      for (int r = 0; r < rows; ++r) {
        float* out = y + (sample * s.k + i0 + r) * P + pix;
        const float* a = acc + r * kNR + c;
        if (first) {
          const float b = bias ? bias[i0 + r] : 0.0f;
          for (int t = 0; t < run; ++t) out[t] = a[t] + b;
        } else {
          for (int t = 0; t < run; ++t) out[t] += a[t];
        }
      }
      c += run;
      pix = 0;
      ++sample;
    }
  }
};

// Columns of dy per backward-data chunk: wide enough for efficient GEMM tiles, small enough that
// the CKK x width column buffer stays in cache (and bounded in memory).
constexpr int64_t kTargetChunkColumns = 256;
constexpr int64_t kMaxColumnBufferFloats = int64_t(1) << 20;

}  // namespace

void conv2d_forward(const ConvShape& s, const float* x, const float* w, const float* bias, float* y) {
  const int64_t K = s.k, Kg = group_filters(s), CKK = taps(s), Q = s.n * pixels(s);
  if (K == 0 || Q == 0) return;
  if (CKK == 0) {  // no input channels: the output is the bias
    parallel_for(s.n * K, true, [&](int64_t nk) {
      std::fill(y + nk * pixels(s), y + (nk + 1) * pixels(s), bias ? bias[nk % K] : 0.0f);
    });
    return;
  }
  if (shifted_conv(s)) return shifted_conv_forward(s, x, w, bias, y);
  if (pad_explicitly(s)) {
    HostBuffer xp(s.n * s.c * (s.h + 2 * s.ph) * (s.w + 2 * s.pw));
    pad_planes(s, x, xp.get());
    return conv2d_forward(padded_input_shape(s), xp.get(), w, bias, y);
  }
  if (single_channel_conv(s)) return single_channel_conv_forward(s, x, w, bias, y);
  const std::vector<int64_t> tap = tap_offsets(s);
  for_each_group(s, [&](const GroupOffsets& o, bool parallel) {
    const float* xg = x + o.x;
    run_gemm(
        Kg, Q, CKK, parallel, RowMajorA{w + o.w, CKK},
        [&](float* dst, int64_t p0, int64_t kc, int64_t j0, int64_t cols) {  // col
          for_each_panel<kNR>(dst, cols, kc, [&](float* panel, int64_t c0, int64_t n) {
            int64_t off[kNR];
            if (interior_offsets(s, j0 + c0, n, off)) {
              pack_b_panel_gather(panel, xg, off, n, tap.data() + p0, kc);
            } else {
              im2col(s, xg, p0, kc, j0 + c0, n, panel, kNR, 1);
              zero_columns(panel, kc, n);
            }
          });
        },
        OutputStore{s, y + o.y, bias ? bias + o.k : nullptr});
  });
}

void conv2d_backward_data(const ConvShape& s, const float* dy, const float* w, float* dx) {
  const int64_t K = s.k, Kg = group_filters(s), CKK = taps(s), P = pixels(s);
  const int64_t image = s.c * s.h * s.w, group_image = group_channels(s) * s.h * s.w;
  if (s.n == 0 || image == 0) return;
  if (K == 0 || P == 0 || CKK == 0) {
    std::fill(dx, dx + s.n * image, 0.0f);
    return;
  }
  if (const std::optional<ConvShape> t = transposed_conv(s); t && shifted_conv(*t)) {
    // The transposed convolution: dy convolved with the filters turned around (conv2d_shifted.h).
    HostBuffer turned(s.k * s.c * s.kh * s.kw);
    turn_filters(s, w, turned.get());
    return shifted_conv_forward(*t, dy, turned.get(), nullptr, dx);
  }
  if (strided_backward_data(s, dy, w, dx)) return;
  if (pad_explicitly(s)) {
    HostBuffer dxp(s.n * s.c * (s.h + 2 * s.ph) * (s.w + 2 * s.pw));
    conv2d_backward_data(padded_input_shape(s), dy, w, dxp.get());
    crop_planes(s, dxp.get(), dx);
    return;
  }
  // Tasks are runs of whole samples within one group, so each task owns its part of dx (those
  // samples' channels of the group); a task walks its columns in chunks of at most `width`. Both
  // depend on the shape only, which fixes the order in which col2im adds into each element of dx.
  const int64_t batch = std::clamp<int64_t>(kTargetChunkColumns / P, 1, s.n);
  const int64_t batches = ceil_div(s.n, batch), tasks = batches * s.groups;
  const int64_t width = std::max<int64_t>(kNR, std::min(batch * P, kMaxColumnBufferFloats / CKK));
  // Parallel over tasks when there are enough of them, else inside each GEMM and col2im.
  const bool across_tasks = tasks >= 2 * available_threads();
  // Every task's GEMM has the same A, W^T of its group: packed into micro-panels once here, per
  // group and k block, and read from there by every task, where each task packed it anew (the
  // tutorial's 20->50 layer: 22 tasks, and the transposing packs took a tenth of the call).
  const int64_t kc_max = gemm_detail::k_block(Kg), panel_rows = ceil_div(CKK, kMR) * kMR;
  HostBuffer wt(s.groups * panel_rows * Kg);  // (from the caching allocator: no fresh pages per call)
  const auto packed_wt = [&](int64_t g, int64_t p0) { return wt.get() + (g * Kg + p0) * panel_rows; };
  for (int64_t g = 0; g < s.groups; ++g) {
    for (int64_t p0 = 0; p0 < Kg; p0 += kc_max) {
      const int64_t kc = std::min(kc_max, Kg - p0);
      pack_panels<kMR>(packed_wt(g, p0), w + group_offsets(s, g).w + p0 * CKK, 1, CKK, CKK, kc);
    }
  }

  parallel_for_dynamic(tasks, across_tasks, [&](int64_t task) {
    const int64_t s0 = task / s.groups * batch, s1 = std::min(s.n, s0 + batch);
    const int64_t group = task % s.groups;
    const GroupOffsets o = group_offsets(s, group);
    float* dxg = dx + o.x;
    for (int64_t i = s0; i < s1; ++i) std::fill(dxg + i * image, dxg + i * image + group_image, 0.0f);
    float* dcol = scratch(Scratch::Columns, size_t(CKK * width));
    for (int64_t q0 = s0 * P; q0 < s1 * P; q0 += width) {
      const int64_t len = std::min(width, s1 * P - q0);
      run_gemm(
          CKK, len, Kg, !across_tasks,
          PrepackedA{[&](int64_t i0, int64_t p0, int64_t kc) { return packed_wt(group, p0) + i0 * kc; }},  // W^T
          [&](float* dst, int64_t p0, int64_t kc, int64_t j0, int64_t cols) {  // dy columns
            int64_t poff[kKC];
            for (int64_t p = 0; p < kc; ++p) poff[p] = (p0 + p) * P;
            for_each_panel<kNR>(dst, cols, kc, [&](float* panel, int64_t c0, int64_t n) {
              int64_t roff[kNR];
              output_offsets(s, q0 + j0 + c0, n, roff);
              pack_b_panel_gather(panel, dy + o.y, roff, n, poff, kc);
            });
          },
          DenseStore{dcol, len, 1.0f, 0.0f});
      // col2im by input channel: channels own disjoint parts of dx, so they may run in parallel.
      const int64_t kk = s.kh * s.kw;
      parallel_for(group_channels(s), !across_tasks, [&](int64_t ci) {
        col2im_add(s, dcol + ci * kk * len, ci * kk, kk, q0, len, len, 1, dxg);
      });
    }
  });
}

// db, when wanted: the shifted path's kernels take it as they read dy (conv2d_bias.h); the other
// paths leave it to conv2d_backward_bias, a pass over dy of its own.
void conv2d_backward_weight(const ConvShape& s, const float* x, const float* dy, float* dw, float* db) {
  // (shifted_conv accepts only shapes with samples, filters, channels and output pixels.)
  if (shifted_conv(s)) return shifted_conv_backward_weight(s, x, dy, dw, db);
  if (db) conv2d_backward_bias(s, dy, db);
  const int64_t K = s.k, Kg = group_filters(s), CKK = taps(s), Q = s.n * pixels(s);
  if (K == 0 || CKK == 0) return;
  if (Q == 0) {
    std::fill(dw, dw + K * CKK, 0.0f);
    return;
  }
  if (pad_explicitly(s)) {
    HostBuffer xp(s.n * s.c * (s.h + 2 * s.ph) * (s.w + 2 * s.pw));
    pad_planes(s, x, xp.get());
    return conv2d_backward_weight(padded_input_shape(s), xp.get(), dy, dw, nullptr);
  }
  if (single_channel_conv(s)) return single_channel_conv_backward_weight(s, x, dy, dw);
  const int64_t P = pixels(s);
  const std::vector<int64_t> tap = tap_offsets(s);
  const uint64_t call = ++g_weight_calls;
  for_each_group(s, [&](const GroupOffsets& o, bool parallel) {
    const float *xg = x + o.x, *dyg = dy + o.y;
    run_gemm(
        Kg, CKK, Q, parallel,
        [&](float* dst, int64_t i0, int64_t rows, int64_t p0, int64_t kc) {  // dy, k runs over columns q
          int64_t poff[kKC];
          output_offsets(s, p0, kc, poff);
          for_each_panel<kMR>(dst, rows, kc, [&](float* panel, int64_t r0, int64_t n) {
            int64_t roff[kMR];
            for (int64_t r = 0; r < n; ++r) roff[r] = (i0 + r0 + r) * P;
            pack_panel_gather<kMR>(panel, dyg, roff, n, poff, kc);
          });
        },
        [&](float* dst, int64_t p0, int64_t kc, int64_t j0, int64_t cols) {  // col^T: taps are columns
          const BlockCorners& corners = block_corners(s, call, p0, kc);
          for_each_panel<kNR>(dst, cols, kc, [&](float* panel, int64_t c0, int64_t n) {
            if (corners.interior) {
              pack_b_panel_gather(panel, xg, tap.data() + j0 + c0, n, corners.off, kc);
            } else {
              im2col(s, xg, j0 + c0, n, p0, kc, panel, 1, kNR);
              zero_columns(panel, kc, n);
            }
          });
        },
        DenseStore{dw + o.w, CKK, 1.0f, 0.0f});
  });
}

}  // namespace kg::cpu
