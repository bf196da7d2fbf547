// The filter gradient of a convolution that takes the shifted path (conv2d_shifted.h), as the GEMM
//
//   dw^T (taps x filters) = col (taps x pixels) * dy^T (pixels x filters)
//
// with col read in place: tap t of output pixel (oy, ox) of prepared sample i is element
// i * floats + tap[t] + oy * pitch + ox of the prepared samples (ShiftedInput), so a row of col
// is the tap's view of the input, stepped through an offset table that skips the columns past
// each output row (gemm_micro_kernel_offset_rows_group). Only dy^T is packed, once per k block
// and thread: filters x pixels, a small copy next to the column matrix, which the GEMM path packs
// whole (a gather that, with a CIFAR ResNet's 16 to 64 filters, cost more than the multiply-adds).
// With at most kNR filters (one micro-panel) the loads bound this GEMM; those layers go to
// conv2d_shifted_weight_lanes.cpp.
//
// The k blocks are runs of whole samples, a function of the shape. Threads take whole blocks, each
// into a partial dw^T of its own, and the partials are added in block order: the additions the
// single-threaded GEMM makes, so the sums never depend on the thread count. Where there are too
// few blocks for the threads (or the partials would take too much memory), threads split the taps
// instead, each owning its rows of dw^T and running every block, preparing its samples itself.
// The micro-kernel is the GEMM's, so AVX2 and AVX-512 give the same bits.
// (2 cores, AVX-512, 128 images, filter gradients against the GEMM path: 32 filters at 16x16
// 2.1 against 4.4 ms, 64 at 8x8 2.3 against 3.1 ms; by blocks rather than taps, the stride-2 layer
// from 16 to 32 channels at 32x32 took 1.3-1.6 ms against 2.1-3.2.)
#include <algorithm>
#include <vector>

#include "conv2d_bias.h"
#include "conv2d_shifted.h"
#include "gemm_driver.h"
#include "gemm_kernel.h"
#include "host_allocator.h"
#include "parallel.h"
#include "scratch.h"
#include "simd.h"

namespace kg::cpu {
namespace {

// Output pixels per k block, in whole samples (at least one). Four times the GEMM's k block: each
// block's sums are stored once, as a partial gradient that is read back once more, and the
// micro-kernel keeps its sums in registers over the whole block. (A CIFAR ResNet's 32-filter
// layer at 16x16 and 64-filter layer at 8x8, 2 cores: 3.5-4.4 ms with 512 pixels, 3.4-3.7 ms
// with 2048; a block of 128 KiB of dy^T per micro-panel and its samples fit in an L2 still.)
constexpr int64_t kBlockPixels = 2048;
// The per-block partial gradients' memory, at most (32 MiB).
constexpr int64_t kMaxPartialFloats = int64_t(1) << 23;
// Filters whose sums the reduction of the partials holds on the stack.
constexpr int64_t kMaxReducedFilters = 1024;

// dst[pix * kNR + c] = src[c * P + pix] for the filters c < filters and pixels pix < P: one
// sample's dy^T as a micro-panel, by blocks of 16 pixels, each row of a block read as one run
// (multiversioned, simd.h). The rows come from memory, one stream per filter: more streams than
// the hardware prefetcher follows, so each is prefetched a few lines ahead.
KG_MULTIVERSION void transpose_filters(const float* __restrict src, int64_t P, int64_t filters, float* __restrict dst) {
  constexpr int64_t kAhead = 64;  // floats: 4 lines
  for (int64_t p0 = 0; p0 < P; p0 += 16) {
    const int64_t n = std::min<int64_t>(16, P - p0);
    for (int64_t c = 0; c < filters; ++c) {
      if (p0 + kAhead < P) __builtin_prefetch(src + c * P + p0 + kAhead);
      for (int64_t j = 0; j < n; ++j) dst[(p0 + j) * kNR + c] = src[c * P + p0 + j];
    }
  }
}

}  // namespace

void shifted_conv_backward_weight(const ConvShape& s, const float* x, const float* dy, float* dw, float* db) {
  if (s.k <= kNR) return shifted_conv_backward_weight_lanes(s, x, dy, dw, db);
  const ShiftedInput in(s, ShiftedLayout::ByPhase);
  const int64_t K = s.k, CKK = s.c * s.kh * s.kw, P = s.oh * s.ow;
  const int64_t per_block = std::clamp<int64_t>(kBlockPixels / P, 1, s.n);  // samples
  const int64_t blocks = ceil_div(s.n, per_block), kc_max = per_block * P;
  const int64_t m_panels = ceil_div(CKK, kMR), n_panels = ceil_div(K, kNR);
  const bool parallel = 2.0 * double(K) * double(CKK) * double(s.n * P) >= kGemmParallelFlops;

  // A block's pixels' offsets in its prepared samples (a shorter last block reads the first ones).
  std::vector<int64_t> off(static_cast<size_t>(kc_max));
  for (int64_t i = 0; i < per_block; ++i)
    for (int64_t oy = 0; oy < s.oh; ++oy)
      for (int64_t ox = 0; ox < s.ow; ++ox) off[size_t(i * P + oy * s.ow + ox)] = i * in.floats + oy * in.pitch + ox;

  BiasSums bias(s, db);

  // Block n0's products for the rows [ip0, ip1) of micro-panels of dw^T (taps x filters), stored
  // into `out` (first) or added to it, with the thread's buffers; with `sums`, its samples' bias
  // sums too.
  const auto block = [&](int64_t n0, int64_t ip0, int64_t ip1, float* out, bool first, bool sums) {
    float* samples = scratch(Scratch::Columns, size_t(per_block * in.floats));
    float* bpanels = scratch(Scratch::PackB, size_t(n_panels * kNR * kc_max));
    const int64_t count = std::min(per_block, s.n - n0), kc = count * P;
    // The block's samples prepared, and dy^T as micro-panels of kNR filters.
    for (int64_t i = 0; i < count; ++i) in.prepare(s, x, n0 + i, samples + i * in.floats);
    for (int64_t jp = 0; jp < n_panels; ++jp) {
      float* panel = bpanels + jp * kc * kNR;
      const int64_t filters = std::min<int64_t>(kNR, K - jp * kNR);
      if (filters < kNR) std::fill(panel, panel + kc * kNR, 0.0f);
      for (int64_t i = 0; i < count; ++i) transpose_filters(dy + ((n0 + i) * K + jp * kNR) * P, P, filters, panel + i * P * kNR);
    }
    if (sums)
      for (int64_t i = 0; i < count; ++i) bias.sample(dy, n0 + i);
    alignas(64) float acc[kGroup][kMR * kNR];
    for (int64_t ip = ip0; ip < ip1; ++ip) {
      const int rows = int(std::min<int64_t>(kMR, CKK - ip * kMR));
      const float* a[kMR];
      for (int r = 0; r < rows; ++r) a[r] = samples + in.tap[size_t(ip * kMR + r)];
      for (int64_t jp = 0; jp < n_panels; jp += kGroup) {
        const int g = int(std::min<int64_t>(kGroup, n_panels - jp));
        gemm_micro_kernel_offset_rows_group(g, kc, a, rows, off.data(), bpanels + jp * kc * kNR, acc[0]);
        for (int t = 0; t < g; ++t) {
          const int64_t j0 = (jp + t) * kNR, cols = std::min<int64_t>(kNR, K - j0);
          for (int r = 0; r < rows; ++r) {
            float* o = out + (ip * kMR + r) * K + j0;
            const float* v = acc[t] + r * kNR;
            if (first) {
              for (int64_t c = 0; c < cols; ++c) o[c] = v[c];
            } else {
              for (int64_t c = 0; c < cols; ++c) o[c] += v[c];
            }
          }
        }
      }
    }
  };

  const int threads = available_threads();
  if (parallel && blocks >= 2 * threads && K <= kMaxReducedFilters && blocks * CKK * K <= kMaxPartialFloats) {
    // Threads take whole blocks, each into a partial dw^T of its own; the partials are then added
    // in block order, which is what the other schedule's additions do, so the bits are the same.
    HostBuffer partials(blocks * CKK * K);
    parallel_for_dynamic(blocks, true, [&](int64_t b) { block(b * per_block, 0, m_panels, partials.get() + b * CKK * K, true, true); });
    parallel_for(CKK, true, [&](int64_t t) {  // (rows of dw^T: contiguous in every partial)
      float total[kMaxReducedFilters];
      for (int64_t k = 0; k < K; ++k) total[k] = partials.get()[t * K + k];
      for (int64_t b = 1; b < blocks; ++b) {
        const float* row = partials.get() + (b * CKK + t) * K;
        for (int64_t k = 0; k < K; ++k) total[k] += row[k];
      }
      for (int64_t k = 0; k < K; ++k) dw[k * CKK + t] = total[k];
    });
    bias.finish();
    return;
  }
  // Otherwise threads split the taps, each running every block (and preparing its samples).
  HostBuffer dwt(CKK * K);  // dw^T, taps x filters
  const int parts = parallel ? int(std::min<int64_t>(threads, m_panels)) : 1;
  parallel_for(parts, parts > 1, [&](int64_t part) {
    const int64_t ip0 = part * m_panels / parts, ip1 = (part + 1) * m_panels / parts;
    for (int64_t n0 = 0; n0 < s.n; n0 += per_block) block(n0, ip0, ip1, dwt.get(), n0 == 0, part == 0);
  });
  bias.finish();
  for (int64_t k = 0; k < K; ++k)
    for (int64_t t = 0; t < CKK; ++t) dw[k * CKK + t] = dwt.get()[t * K + k];
}

}  // namespace kg::cpu
