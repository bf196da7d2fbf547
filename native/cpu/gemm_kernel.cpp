#include "gemm_kernel.h"

#include <cstring>

#include "isa.h"
#include "simd.h"

// The AVX2 kernel relies on GCC contracting `c += a * b` into an FMA, its default under
// -std=gnu++17 (what CMake passes) but not under a strict -std=c++17.
#if defined(__STRICT_ANSI__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif

namespace kg::cpu {
namespace {

// Where the kernels read A's values, a(r, p) for row r < kMR of the tile at step p:
//  - PackedA: a packed micro-panel (gemm_pack.h), a[p * kMR + r];
//  - RowsA: the rows in place, row[r][p], for an A that is row-major and contiguous along k. Rows
//    past the matrix edge point at its last row: the kernel may compute their sums (it computes
//    2, 4 or 6 rows), which are never stored.
// Either way each accumulator sees the same values in the same order, so the results are equal.
struct PackedA {
  const float* __restrict a;
  float at(int r, int64_t p) const { return a[p * kMR + r]; }
};
struct RowsA {
  const float* row[kMR];
  RowsA(const float* a, int64_t lda, int rows) {
    for (int r = 0; r < kMR; ++r) row[r] = a + (r < rows ? r : rows - 1) * lda;
  }
  float at(int r, int64_t p) const { return row[r][p]; }
};

// OffsetRowsA: rows at pointers of their own, read through an offset table: a(r, p) =
// row[r][off[p]] (a convolution's taps as views of its input, its output pixels skipping the
// columns past each output row: conv2d_shifted_weight.cpp). Rows past `rows` repeat the last one.
struct OffsetRowsA {
  const float* row[kMR];
  const int64_t* off;
  OffsetRowsA(const float* const* rows_in, int rows, const int64_t* offsets) : off(offsets) {
    for (int r = 0; r < kMR; ++r) row[r] = rows_in[r < rows ? r : rows - 1];
  }
  float at(int r, int64_t p) const { return row[r][off[p]]; }
};

// Where the kernels read B's rows, the kNR values of micro-panel t at step p:
//  - PackedB: g adjacent packed micro-panels, kc * kNR floats apart (gemm_pack.h);
//  - ShiftedB: rows in place, panel t's row p at base + off[p] + t * kNR: a convolution's taps as
//    shifted views of its input (conv2d_shifted.cpp), where a packed copy would cost more than
//    the multiply-adds it feeds.
// The values and their order are the same either way, so are the results.
struct PackedB {
  const float* __restrict b;
  int64_t kc;
  const float* row(int t, int64_t p) const { return b + t * kc * kNR + p * kNR; }
};
struct ShiftedB {
  const float* base;
  const int64_t* off;
  const float* row(int t, int64_t p) const { return base + off[p] + t * kNR; }
};

// The baseline's kernel (SSE: 16 registers of 4 floats): rows r < R, columns [col0, col0 + 8) of
// the tile, R x 2 accumulators that stay in registers over the whole k loop. A tile is computed in
// two such halves, 12 accumulators each, rather than spilling 24.
template <int R, class A, class B>
inline __attribute__((always_inline)) void tile_half_baseline(int64_t kc, const A& a, const B& b, int t,
                                                              float* __restrict acc, int col0) {
  v4f c[R][2] = {};
  for (int64_t p = 0; p < kc; ++p) {
    const float* bp = b.row(t, p) + col0;
    const v4f b0 = load4(bp), b1 = load4(bp + 4);
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const float ar = a.at(r, p);
      c[r][0] += ar * b0;
      c[r][1] += ar * b1;
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    store4(acc + r * kNR + col0, c[r][0]);
    store4(acc + r * kNR + col0 + 4, c[r][1]);
  }
}

static_assert(kNR == 16, "the kernels below cover 16 columns: one zmm, two ymm or four xmm per row");

// 16 floats: one AVX-512 register.
typedef float v16f __attribute__((vector_size(64)));

// The AVX2 and AVX-512 kernel: G tiles side by side (B micro-panels t0 .. t0 + G - 1, read
// through the B accessor above), rows r < R of each, a tile row's 16 columns in N = 16 / W
// vectors of W floats. Per k step it loads G x N B vectors and broadcasts each of the R A values into G x N FMAs (one
// vfmadd231ps each). Every accumulator sums its products in k order, one FMA at a time, so any
// grouping, row count or vector width gives each element of C the same bits.
//
// The register budgets: AVX2's 16 ymm hold R x G x 2 accumulators + 2 G B vectors + a broadcast,
// so 6 x 1 x 2 = 12 (a whole tile), or two panels of 2 rows. AVX-512's 32 zmm hold up to 6 x 4
// accumulators + 4 B vectors + a broadcast: 10 loads per 24 FMAs, where one tile alone is bound
// by its loads. Fewer than 8 independent accumulators (2 FMA units x 4 cycles of latency) leave
// the units idle part of the time: G = 1 with AVX-512 (a lone last panel) runs at three quarters
// of their peak.
template <class V, int G, int R, class A, class B>
inline __attribute__((always_inline)) void tile_group(int64_t kc, const A& a, const B& b, int t0,
                                                      float* __restrict acc) {
  constexpr int W = int(sizeof(V) / sizeof(float)), N = kNR / W;
  V c[R][G][N] = {};
  for (int64_t p = 0; p < kc; ++p) {
    V x[G][N];
#pragma GCC unroll 4
    for (int g = 0; g < G; ++g)
#pragma GCC unroll 2
      for (int v = 0; v < N; ++v) std::memcpy(&x[g][v], b.row(t0 + g, p) + v * W, sizeof(V));
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const float ar = a.at(r, p);
#pragma GCC unroll 4
      for (int g = 0; g < G; ++g)
#pragma GCC unroll 2
        for (int v = 0; v < N; ++v) c[r][g][v] += ar * x[g][v];
    }
  }
#pragma GCC unroll 4
  for (int g = 0; g < G; ++g)
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
      for (int v = 0; v < N; ++v) std::memcpy(acc + g * kMR * kNR + r * kNR + v * W, &c[r][g][v], sizeof(V));
}

// Which of a panel's kMR rows a kernel computes: R = 2, 4 or kMR, the fewest covering the rows
// wanted. The last panel of an A whose row count is not a multiple of kMR (a convolution's 50
// filters: 8 panels and 2 rows) then costs the multiply-adds of its own rows, not of six. The
// rows computed get the same operations either way, so the row count never changes a result;
// rows from R on hold garbage, and the stores never read past the rows they were given.
// (Dispatched by plain branches: a lambda would not inherit its caller's target attribute.)
template <class V, int G, class A, class B>
inline __attribute__((always_inline)) void tile_group_rows(int rows, int64_t kc, const A& a, const B& b, int t0,
                                                           float* acc) {
  if (rows <= 2) return tile_group<V, G, 2>(kc, a, b, t0, acc);
  if (rows <= 4) return tile_group<V, G, 4>(kc, a, b, t0, acc);
  return tile_group<V, G, kMR>(kc, a, b, t0, acc);
}

// One body per instruction set, each compiled for its own target, instantiated for each pairing
// of A and B that a caller uses (packed A with packed or shifted B, rows of A in place or through
// offsets with packed B); the table below picks one set once (cpu_isa(): the CPU's
// widest, or a narrower one named by KG_CPU_ISA). Each runs g <= kGroup panels for `rows` rows.

template <int R, class A, class B>
void tiles_baseline(int g, int64_t kc, const A& a, const B& b, float* acc) {
  for (int t = 0; t < g; ++t) {
    tile_half_baseline<R>(kc, a, b, t, acc + t * kMR * kNR, 0);
    tile_half_baseline<R>(kc, a, b, t, acc + t * kMR * kNR, 8);
  }
}
template <class A, class B>
void group_baseline(int g, int64_t kc, const A& a, const B& b, float* acc, int rows) {
  if (rows <= 2) return tiles_baseline<2>(g, kc, a, b, acc);
  if (rows <= 4) return tiles_baseline<4>(g, kc, a, b, acc);
  tiles_baseline<kMR>(g, kc, a, b, acc);
}

// AVX2: a whole tile at a time; tiles of 2 rows in pairs (8 accumulators instead of 4).
template <class A, class B>
inline __attribute__((always_inline)) void group_avx2(int g, int64_t kc, const A& a, const B& b, float* acc, int rows) {
  int t = 0;
  if (rows <= 2) {
    for (; t + 2 <= g; t += 2) tile_group<v8f, 2, 2>(kc, a, b, t, acc + t * kMR * kNR);
  }
  for (; t < g; ++t) tile_group_rows<v8f, 1>(rows, kc, a, b, t, acc + t * kMR * kNR);
}

static_assert(kGroup == 4, "the AVX-512 group kernel is instantiated for 1 to 4 panels");
template <class A, class B>
inline __attribute__((always_inline)) void group_avx512(int g, int64_t kc, const A& a, const B& b, float* acc,
                                                        int rows) {
  switch (g) {
    case 1: return tile_group_rows<v16f, 1>(rows, kc, a, b, 0, acc);
    case 2: return tile_group_rows<v16f, 2>(rows, kc, a, b, 0, acc);
    case 3: return tile_group_rows<v16f, 3>(rows, kc, a, b, 0, acc);
    default: return tile_group_rows<v16f, 4>(rows, kc, a, b, 0, acc);
  }
}

using PackedGroup = void (*)(int, int64_t, const float*, const float*, float*, int);
using RowsGroup = void (*)(int, int64_t, const float*, int64_t, int, const float*, float*);
using ShiftedGroup = void (*)(int, int64_t, const float*, const float*, const int64_t*, float*, int);
using OffsetRowsGroup = void (*)(int, int64_t, const float* const*, int, const int64_t*, const float*, float*);
struct Kernels {
  PackedGroup packed;
  RowsGroup rows;
  ShiftedGroup shifted;
  OffsetRowsGroup offset_rows;
};

void packed_baseline(int g, int64_t kc, const float* a, const float* b, float* acc, int rows) {
  group_baseline(g, kc, PackedA{a}, PackedB{b, kc}, acc, rows);
}
void rows_baseline(int g, int64_t kc, const float* a, int64_t lda, int rows, const float* b, float* acc) {
  group_baseline(g, kc, RowsA(a, lda, rows), PackedB{b, kc}, acc, rows);
}
void shifted_baseline(int g, int64_t kc, const float* a, const float* base, const int64_t* off, float* acc, int rows) {
  group_baseline(g, kc, PackedA{a}, ShiftedB{base, off}, acc, rows);
}
void offset_rows_baseline(int g, int64_t kc, const float* const* a, int rows, const int64_t* off, const float* b,
                          float* acc) {
  group_baseline(g, kc, OffsetRowsA(a, rows, off), PackedB{b, kc}, acc, rows);
}

#if defined(__GNUC__) && defined(__x86_64__)
KG_AVX512 void packed_avx512(int g, int64_t kc, const float* a, const float* b, float* acc, int rows) {
  group_avx512(g, kc, PackedA{a}, PackedB{b, kc}, acc, rows);
}
KG_AVX512 void rows_avx512(int g, int64_t kc, const float* a, int64_t lda, int rows, const float* b, float* acc) {
  group_avx512(g, kc, RowsA(a, lda, rows), PackedB{b, kc}, acc, rows);
}
KG_AVX512 void shifted_avx512(int g, int64_t kc, const float* a, const float* base, const int64_t* off, float* acc,
                              int rows) {
  group_avx512(g, kc, PackedA{a}, ShiftedB{base, off}, acc, rows);
}
KG_AVX512 void offset_rows_avx512(int g, int64_t kc, const float* const* a, int rows, const int64_t* off,
                                  const float* b, float* acc) {
  group_avx512(g, kc, OffsetRowsA(a, rows, off), PackedB{b, kc}, acc, rows);
}
KG_AVX2 void offset_rows_avx2(int g, int64_t kc, const float* const* a, int rows, const int64_t* off, const float* b,
                              float* acc) {
  group_avx2(g, kc, OffsetRowsA(a, rows, off), PackedB{b, kc}, acc, rows);
}
KG_AVX2 void packed_avx2(int g, int64_t kc, const float* a, const float* b, float* acc, int rows) {
  group_avx2(g, kc, PackedA{a}, PackedB{b, kc}, acc, rows);
}
KG_AVX2 void rows_avx2(int g, int64_t kc, const float* a, int64_t lda, int rows, const float* b, float* acc) {
  group_avx2(g, kc, RowsA(a, lda, rows), PackedB{b, kc}, acc, rows);
}
KG_AVX2 void shifted_avx2(int g, int64_t kc, const float* a, const float* base, const int64_t* off, float* acc,
                          int rows) {
  group_avx2(g, kc, PackedA{a}, ShiftedB{base, off}, acc, rows);
}
#endif

Kernels choose_kernels() {
#if defined(__GNUC__) && defined(__x86_64__)
  switch (cpu_isa()) {
    case Isa::Avx512: return {packed_avx512, rows_avx512, shifted_avx512, offset_rows_avx512};
    case Isa::Avx2: return {packed_avx2, rows_avx2, shifted_avx2, offset_rows_avx2};
    default: break;
  }
#endif
  return {packed_baseline, rows_baseline, shifted_baseline, offset_rows_baseline};
}

const Kernels g_kernels = choose_kernels();

}  // namespace

void gemm_micro_kernel_group(int g, int64_t kc, const float* a, const float* b, float* acc, int rows) {
  g_kernels.packed(g, kc, a, b, acc, rows);
}

void gemm_micro_kernel_rows_group(int g, int64_t kc, const float* a, int64_t lda, int rows, const float* b, float* acc) {
  g_kernels.rows(g, kc, a, lda, rows, b, acc);
}

void gemm_micro_kernel_shifted_group(int g, int64_t kc, const float* a, const float* base, const int64_t* off,
                                     float* acc, int rows) {
  g_kernels.shifted(g, kc, a, base, off, acc, rows);
}

void gemm_micro_kernel_offset_rows_group(int g, int64_t kc, const float* const* a, int rows, const int64_t* off,
                                         const float* b, float* acc) {
  g_kernels.offset_rows(g, kc, a, rows, off, b, acc);
}

}  // namespace kg::cpu
