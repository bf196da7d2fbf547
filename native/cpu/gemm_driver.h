// The blocked, packed, multi-threaded GEMM loop nest (the BLIS scheme), shared by plain GEMM and
// the convolutions, which feed it from their own layouts instead of materialized matrices.
//
// Threads: C is cut into a grid of (row range x column range) parts, one per thread, and each
// thread runs the whole blocked loop nest on its part with its own packed panels. So a call is
// one fork and one join with no barrier in between: when the OS preempts a thread (Node and
// other processes share the cores), the others wait for it once, at the join, rather than at
// every k block. The price is packing operands more than once (A once per column range, B once
// per row range); the grid is chosen to keep that cheap.
//
// One part, serially:
//   for each column block j0 (kNC):
//     for each k block p0 (kKC, equal blocks):      pack the B panel, kc x nc
//       for each row block i0 (kMC):                pack the A block, mc x kc
//         for each B micro-panel, A micro-panel:    micro-kernel -> store
//
// The caller supplies A and two callables:
//   pack_a(float* dst, int64_t i0, int64_t rows, int64_t p0, int64_t kc)
//       rows i0 .. i0 + rows - 1 of A's k block as ceil(rows / kMR) micro-panels (see gemm_pack.h);
//       or, instead of pack_a, a RowMajorA: A row-major and contiguous along k, which the
//       micro-kernel reads in place when packing would not pay (below); or a PrepackedA, micro-
//       panels packed before the call;
//   pack_b(float* dst, int64_t p0, int64_t kc, int64_t j0, int64_t cols)
//       columns j0 .. j0 + cols - 1 of B's k block as ceil(cols / kNR) micro-panels;
//   store(const float* acc, int64_t i0, int64_t j0, int rows, int cols, bool first, bool last)
//       acc[r * kNR + c] holds the tile's sum over one k block; `first` marks the first k block
//       (where C's old contents are replaced, or scaled by beta) -- later blocks are added;
//       `last` marks the block that completes the tile's sum (one block can be both).
//
// Deterministic: the k blocking depends on k alone, and each C element is produced by the same
// micro-kernel operations whichever thread computes its tile, so the grid (which does depend on
// the thread count) never changes a result.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "gemm_kernel.h"
#include "gemm_pack.h"
#include "parallel.h"
#include "scratch.h"

namespace kg::cpu {

// Below this many flops a second thread costs more than it saves: each thread packs its own
// operand panels, and a thread that has gone to sleep takes tens of microseconds to wake on a
// virtual machine (thread_pool.cpp: the workers spin a while, then sleep). On the 2-core
// development VM (AVX-512), back to back: a 64 x 800 x 128 product (1.3e7 flops) took 75 us on one
// thread and 48-50 us on two. (At 4e5, the tutorial's network at batch 1 took 0.17 ms on 2 threads
// against 0.07 ms on one.) With the pool's workers spinning between loops, 1e6 took the network at
// batch 1 (its 20 -> 50 convolution is a 4e6-flop product) from 32.8 to 26.7 us alone, but to
// 44-55 us beside a process that keeps a core busy: a worker that takes the second half and then
// loses its core holds the call up for a time slice.
constexpr double kGemmParallelFlops = 1.0e7;

// An A operand stored row-major with k contiguous (a convolution's filters, a dense layer's input
// rows): a(i, p) = a[i * lda + p].
struct RowMajorA {
  const float* a;
  int64_t lda;
};

// A part with at most this many B micro-panels (kNR columns each) reads a RowMajorA in place. Packing
// A costs a pass over its block for every k block, paid back by the B micro-panels that reuse the
// packed copy: with few of them (a convolution at batch 1: 64 output pixels, 4 panels) the pass
// cost a quarter of the multiply-adds. With many, the packed block's single stream is the safer
// read.
constexpr int64_t kInPlaceAPanels = 16;

// An A operand packed ahead of the call, as micro-panels (gemm_pack.h) for each k block:
// block(i0, p0, kc) points at the micro-panel of rows i0 .. i0 + kMR - 1 (i0 a multiple of kMR) of
// the k block [p0, p0 + kc), the next rows' micro-panels following kc * kMR floats apart. The
// loop nest reads it in place (a convolution's filters, packed once for many GEMMs).
template <class Block>
struct PrepackedA {
  Block block;
};
template <class Block>
PrepackedA(Block) -> PrepackedA<Block>;

namespace gemm_detail {

// The A block of rows [i0, i0 + rows) over the k block [p0, p0 + kc) as micro-panels: packed by
// pack_a into apack, or where a PrepackedA already holds it.
template <class PackA>
inline const float* a_block(const PackA& pack_a, float* apack, int64_t i0, int64_t rows, int64_t p0, int64_t kc) {
  pack_a(apack, i0, rows, p0, kc);
  return apack;
}
template <class Block>
inline const float* a_block(const PrepackedA<Block>& a, float* /*apack*/, int64_t i0, int64_t /*rows*/, int64_t p0,
                            int64_t kc) {
  return a.block(i0, p0, kc);
}

// pack_a for a RowMajorA: its rows as micro-panels (a transposing copy).
inline auto packer(const RowMajorA& a) {
  return [a](float* dst, int64_t i0, int64_t rows, int64_t p0, int64_t kc) {
    pack_panels<kMR>(dst, a.a + i0 * a.lda + p0, a.lda, 1, rows, kc);
  };
}

// The k blocking: equal blocks (500 -> 250 + 250 rather than 256 + 244), a function of k only.
inline int64_t k_block(int64_t k) { return ceil_div(k, ceil_div(k, kKC)); }

// The grid of parts for `threads` threads: rows x cols = threads (or fewer when C has fewer
// micro-panels), minimizing the extra packing (the A panels are packed once per column range and
// the B panels once per row range).
struct Grid {
  int64_t rows, cols;
};
inline Grid choose_grid(int threads, int64_t m_panels, int64_t n_panels, int64_t m, int64_t n) {
  Grid best{1, 1};
  double best_cost = -1;
  for (int64_t r = 1; r <= threads; ++r) {
    if (threads % r != 0) continue;
    const int64_t c = threads / r;
    if (r > m_panels || c > n_panels) continue;
    const double cost = double(m) * double(c) + double(n) * double(r);
    if (best_cost < 0 || cost < best_cost) {
      best = {r, c};
      best_cost = cost;
    }
  }
  if (best_cost < 0) {  // too few panels to give every thread a part: split the longer side only
    return m_panels >= n_panels ? Grid{std::min<int64_t>(threads, m_panels), 1}
                                : Grid{1, std::min<int64_t>(threads, n_panels)};
  }
  return best;
}

// A store may say where its tiles go (prefetch(i0, j0, cols)): C's lines then come into the cache
// while the micro-kernel computes instead of stalling the store that adds to them.
template <class S, class = void>
struct HasPrefetch : std::false_type {};
template <class S>
struct HasPrefetch<S, std::void_t<decltype(std::declval<const S&>().prefetch(int64_t(), int64_t(), int64_t()))>>
    : std::true_type {};
template <class Store>
inline void prefetch_tiles(const Store& store, int64_t i0, int64_t j0, int64_t cols) {
  if constexpr (HasPrefetch<Store>::value) store.prefetch(i0, j0, cols);
}

// The loop nest on the micro-panel ranges [ip0, ip1) x [jp0, jp1) of C, on the calling thread.
// Multiversioned (simd.h) with the packing and store callables inlined into it: the packs are
// copies and gathers, twice as fast with AVX2's 8-float moves, and they took a fifth of the
// training step's time in the baseline's 4-float ones.
template <class PackA, class PackB, class Store>
KG_MULTIVERSION void run_part(int64_t m, int64_t n, int64_t k, int64_t ip0, int64_t ip1, int64_t jp0, int64_t jp1,
              const PackA& pack_a, const PackB& pack_b, const Store& store) {
  const int64_t kc_max = k_block(k);
  const int64_t nc_panels = std::min(jp1 - jp0, kNC / kNR), mc_panels = std::min(ip1 - ip0, kMC / kMR);
  float* apack = scratch(Scratch::PackA, size_t(mc_panels * kMR * kc_max));
  alignas(64) float acc[kGroup][kMR * kNR];
  // The tiles of the g B micro-panels from jp on (at b, kc * kNR apart) with A micro-panel ip:
  // one kernel call, which gives each tile the same bits as alone.
  const auto tiles = [&](const float* a, const float* b, int g, int64_t kc, int64_t ip, int64_t jp, int64_t p0) {
    const int rows = int(std::min<int64_t>(kMR, m - ip * kMR));
    prefetch_tiles(store, ip * kMR, jp * kNR, g * kNR);
    gemm_micro_kernel_group(g, kc, a, b, acc[0], rows);
    for (int t = 0; t < g; ++t) {
      store(acc[t], ip * kMR, (jp + t) * kNR, rows, int(std::min<int64_t>(kNR, n - (jp + t) * kNR)), p0 == 0,
            p0 + kc == k);
    }
  };
  if (ip1 - ip0 <= kMC / kMR) {
    // The part's rows fit one A block (a convolution's output channels, a batch of 64): pack it
    // once per k block, and each group of B micro-panels right before the A panels sweep it, so
    // that B goes from the source straight into cache instead of through a large packed block.
    float* bpanels = scratch(Scratch::PackB, size_t(kGroup * kNR * kc_max));
    for (int64_t p0 = 0; p0 < k; p0 += kc_max) {
      const int64_t kc = std::min(kc_max, k - p0);
      const float* ablock = a_block(pack_a, apack, ip0 * kMR, std::min(m, ip1 * kMR) - ip0 * kMR, p0, kc);
      for (int64_t jp = jp0; jp < jp1; jp += kGroup) {
        const int g = int(std::min<int64_t>(kGroup, jp1 - jp));
        pack_b(bpanels, p0, kc, jp * kNR, std::min<int64_t>(g * kNR, n - jp * kNR));
        for (int64_t ip = ip0; ip < ip1; ++ip) tiles(ablock + (ip - ip0) * kMR * kc, bpanels, g, kc, ip, jp, p0);
      }
    }
    return;
  }
  float* bpack = scratch(Scratch::PackB, size_t(nc_panels * kNR * kc_max));
  for (int64_t jb = jp0; jb < jp1; jb += nc_panels) {
    const int64_t jb_end = std::min(jp1, jb + nc_panels);
    for (int64_t p0 = 0; p0 < k; p0 += kc_max) {
      const int64_t kc = std::min(kc_max, k - p0);
      pack_b(bpack, p0, kc, jb * kNR, std::min(n, jb_end * kNR) - jb * kNR);
      for (int64_t ib = ip0; ib < ip1; ib += mc_panels) {
        const int64_t ib_end = std::min(ip1, ib + mc_panels);
        const float* ablock = a_block(pack_a, apack, ib * kMR, std::min(m, ib_end * kMR) - ib * kMR, p0, kc);
        for (int64_t jp = jb; jp < jb_end; jp += kGroup) {
          const int g = int(std::min<int64_t>(kGroup, jb_end - jp));
          for (int64_t ip = ib; ip < ib_end; ++ip) tiles(ablock + (ip - ib) * kMR * kc, bpack + (jp - jb) * kc * kNR, g, kc, ip, jp, p0);
        }
      }
    }
  }
}

// A RowMajorA: read in place when the part has few B micro-panels, else packed.
template <class PackB, class Store>
KG_MULTIVERSION void run_part(int64_t m, int64_t n, int64_t k, int64_t ip0, int64_t ip1, int64_t jp0, int64_t jp1, const RowMajorA& a,
              const PackB& pack_b, const Store& store) {
  if (jp1 - jp0 > kInPlaceAPanels) return run_part(m, n, k, ip0, ip1, jp0, jp1, packer(a), pack_b, store);
  const int64_t kc_max = k_block(k);
  float* bpanels = scratch(Scratch::PackB, size_t(kGroup * kNR * kc_max));
  alignas(64) float acc[kGroup][kMR * kNR];
  for (int64_t p0 = 0; p0 < k; p0 += kc_max) {
    const int64_t kc = std::min(kc_max, k - p0);
    for (int64_t jp = jp0; jp < jp1; jp += kGroup) {  // B micro-panels in groups, as in the packed path
      const int g = int(std::min<int64_t>(kGroup, jp1 - jp));
      pack_b(bpanels, p0, kc, jp * kNR, std::min<int64_t>(g * kNR, n - jp * kNR));
      for (int64_t ip = ip0; ip < ip1; ++ip) {
        const int rows = int(std::min<int64_t>(kMR, m - ip * kMR));
        gemm_micro_kernel_rows_group(g, kc, a.a + ip * kMR * a.lda + p0, a.lda, rows, bpanels, acc[0]);
        for (int t = 0; t < g; ++t) {
          store(acc[t], ip * kMR, (jp + t) * kNR, rows, int(std::min<int64_t>(kNR, n - (jp + t) * kNR)), p0 == 0,
                p0 + kc == k);
        }
      }
    }
  }
}

}  // namespace gemm_detail

template <class PackA, class PackB, class Store>
void run_gemm(int64_t m, int64_t n, int64_t k, bool allow_parallel, const PackA& pack_a, const PackB& pack_b,
              const Store& store) {
  if (m <= 0 || n <= 0 || k <= 0) return;
  const int64_t m_panels = ceil_div(m, kMR), n_panels = ceil_div(n, kNR);
  const int threads =
      allow_parallel && 2.0 * double(m) * double(n) * double(k) >= kGemmParallelFlops ? available_threads() : 1;
  const gemm_detail::Grid grid = gemm_detail::choose_grid(threads, m_panels, n_panels, m, n);
  parallel_for(grid.rows * grid.cols, true, [&](int64_t part) {
    const int64_t r = part / grid.cols, c = part % grid.cols;
    gemm_detail::run_part(m, n, k, r * m_panels / grid.rows, (r + 1) * m_panels / grid.rows,
                          c * n_panels / grid.cols, (c + 1) * n_panels / grid.cols, pack_a, pack_b, store);
  });
}

// Writes tiles into a row-major C (leading dimension ldc): C = alpha*AB + beta*C + bias, where
// beta == 0 ignores C's old contents (even NaN) and bias (one per column, may be null) is added
// once the tile's sum is complete, so that C is bitwise the GEMM followed by a separate addition.
struct DenseStore {
  float* c;
  int64_t ldc;
  float alpha, beta;
  const float* bias = nullptr;
  int64_t c_rows = 0;  // C's row count, which prefetches stay inside (0: no prefetching)
  void prefetch(int64_t i0, int64_t j0, int64_t cols) const {
    constexpr int64_t kLineFloats = 64 / sizeof(float);
    for (int64_t r = i0; r < std::min(c_rows, i0 + kMR); ++r)
      for (int64_t j = 0; j < cols; j += kLineFloats) __builtin_prefetch(c + r * ldc + j0 + j, 1);
  }
  void operator()(const float* acc, int64_t i0, int64_t j0, int rows, int cols, bool first, bool last) const {
    static_assert(kNR == 16, "the fixed-size paths move a tile row as two 8-float vectors");
    if (first && cols == kNR && alpha == 1.0f && beta == 0.0f && !(last && bias)) {
      // The common first tile, whole rows of C = AB (1 * a is a, bit for bit): fixed-size copies
      // without the general loops' run-time checks (backward data's single k block spent a fifth
      // of the call storing through them).
      for (int r = 0; r < rows; ++r) {
        float* out = c + (i0 + r) * ldc + j0;
        store8(out, load8(acc + r * kNR));
        store8(out + 8, load8(acc + r * kNR + 8));
      }
      return;
    }
    if (!first && cols == kNR && alpha == 1.0f && !(last && bias)) {
      // A later k block adding onto whole rows (1 * a is a): two 8-float vectors a row. (Written as
      // a loop, the compiler cannot rule out that C and the tile overlap and adds one float at a
      // time; through the general loop below these additions held SGEMM 2048^3 to 165 GFLOP/s on
      // one core with AVX-512, scalar fixed-size rows to 205.)
      for (int r = 0; r < rows; ++r) {
        float* out = c + (i0 + r) * ldc + j0;
        const float* a = acc + r * kNR;
        store8(out, load8(out) + load8(a));
        store8(out + 8, load8(out + 8) + load8(a + 8));
      }
      return;
    }
    for (int r = 0; r < rows; ++r) {
      float* out = c + (i0 + r) * ldc + j0;
      const float* a = acc + r * kNR;
      if (!first) {
        for (int j = 0; j < cols; ++j) out[j] += alpha * a[j];
      } else if (beta == 0.0f) {
        for (int j = 0; j < cols; ++j) out[j] = alpha * a[j];
      } else {
        for (int j = 0; j < cols; ++j) out[j] = alpha * a[j] + beta * out[j];
      }
      if (last && bias) {
        for (int j = 0; j < cols; ++j) out[j] += bias[j0 + j];
      }
    }
  }
};

}  // namespace kg::cpu
