#include "gemm_kernel.h"

#include "isa.h"
#include "simd.h"

// The AVX2 kernel relies on GCC contracting `c += a * b` into an FMA, its default under
// -std=gnu++17 (what CMake passes) but not under a strict -std=c++17.
#if defined(__STRICT_ANSI__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif

namespace kg::cpu {
namespace {

// Unaligned vector loads and stores of either width.
template <class V>
inline V load_v(const float* p) {
  if constexpr (sizeof(V) == sizeof(v8f)) return load8(p);
  else return load4(p);
}
inline void store_v(float* p, const v8f& v) { store8(p, v); }
inline void store_v(float* p, const v4f& v) { store4(p, v); }

// Where the kernels read A's values, a(r, p) for row r < kMR of the tile at step p:
//  - PackedA: a packed micro-panel (gemm_pack.h), a[p * kMR + r];
//  - RowsA: the rows in place, row[r][p], for an A that is row-major and contiguous along k. Rows
//    past the matrix edge point at its last row: their sums are computed and never stored.
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

// Columns [col0, col0 + 2W) of the kMR x kNR tile, W = the vector width: kMR x 2 accumulators
// that stay in registers over the whole k loop.
template <class V, int W, class A>
inline __attribute__((always_inline)) void tile_columns(int64_t kc, const A& a, const float* __restrict b,
                                                        float* __restrict acc, int col0) {
  V c[kMR][2] = {};
  b += col0;
  for (int64_t p = 0; p < kc; ++p) {
    const V b0 = load_v<V>(b), b1 = load_v<V>(b + W);
#pragma GCC unroll 6
    for (int r = 0; r < kMR; ++r) {
      const float ar = a.at(r, p);
      c[r][0] += ar * b0;  // one vfmadd231ps in the AVX2 version
      c[r][1] += ar * b1;
    }
    b += kNR;
  }
#pragma GCC unroll 6
  for (int r = 0; r < kMR; ++r) {
    store_v(acc + r * kNR + col0, c[r][0]);
    store_v(acc + r * kNR + col0 + W, c[r][1]);
  }
}

}  // namespace

static_assert(kNR == 16, "the kernels below cover 16 columns: one zmm, two ymm or four xmm per row");

namespace {

// 16 floats: one AVX-512 register.
typedef float v16f __attribute__((vector_size(64)));

// The AVX-512 kernel: G tiles side by side (G adjacent B micro-panels, kc * kNR floats apart),
// each row of a tile's 16 columns one zmm accumulator. Per k step it loads G B vectors and
// broadcasts each of the kMR A values into G FMAs. Each accumulator sums its products in k order,
// one FMA at a time -- the operations of the AVX2 kernel, so the two agree bit for bit. G = 4 is
// 24 accumulators + 4 B vectors + a broadcast in the 32 zmm registers, and 10 loads per 24 FMAs.
// G = 1 (a lone last panel) has only 6 independent chains for the FMA units' 8 (2 units x 4
// cycles of latency); it runs at three quarters of their peak.
template <int G, class A>
inline __attribute__((always_inline)) void tile_group_avx512(int64_t kc, const A& a, const float* __restrict b,
                                                             float* __restrict acc) {
  v16f c[kMR][G] = {};
  for (int64_t p = 0; p < kc; ++p) {
    v16f x[G];
#pragma GCC unroll 4
    for (int g = 0; g < G; ++g) std::memcpy(&x[g], b + g * kc * kNR + p * kNR, sizeof x[g]);
#pragma GCC unroll 6
    for (int r = 0; r < kMR; ++r) {
      const float ar = a.at(r, p);
#pragma GCC unroll 4
      for (int g = 0; g < G; ++g) c[r][g] += ar * x[g];
    }
  }
#pragma GCC unroll 4
  for (int g = 0; g < G; ++g)
#pragma GCC unroll 6
    for (int r = 0; r < kMR; ++r) std::memcpy(acc + g * kMR * kNR + r * kNR, &c[r][g], sizeof c[r][g]);
}

static_assert(kGroup == 4, "the AVX-512 group kernel is instantiated for 1 to 4 panels");
template <class A>
inline __attribute__((always_inline)) void group_avx512(int g, int64_t kc, const A& a, const float* b, float* acc) {
  switch (g) {
    case 1: return tile_group_avx512<1>(kc, a, b, acc);
    case 2: return tile_group_avx512<2>(kc, a, b, acc);
    case 3: return tile_group_avx512<3>(kc, a, b, acc);
    default: return tile_group_avx512<4>(kc, a, b, acc);
  }
}

// One body per instruction set, each compiled for its own target; the table below picks one set
// (a tile and, with AVX-512, a group of tiles; each for packed A and for rows in place) once
// (cpu_isa(): the CPU's widest, or a narrower one named by KG_CPU_ISA). With AVX2 + FMA the
// 6 x 16 tile lives in 12 ymm registers; the baseline (SSE2, 16 xmm registers) computes it as
// two 6 x 8 halves with 12 xmm accumulators each, rather than spilling 24 of them.
// Each body is instantiated for both kinds of A (a packed panel, or rows in place).

template <class A>
void micro_baseline(int64_t kc, const A& a, const float* b, float* acc) {
  tile_columns<v4f, 4>(kc, a, b, acc, 0);
  tile_columns<v4f, 4>(kc, a, b, acc, 8);
}
void packed_baseline(int64_t kc, const float* a, const float* b, float* acc) { micro_baseline(kc, PackedA{a}, b, acc); }
void rows_baseline(int64_t kc, const float* a, int64_t lda, int rows, const float* b, float* acc) {
  micro_baseline(kc, RowsA(a, lda, rows), b, acc);
}

using PackedKernel = void (*)(int64_t, const float*, const float*, float*);
using RowsKernel = void (*)(int64_t, const float*, int64_t, int, const float*, float*);
using PackedGroup = void (*)(int, int64_t, const float*, const float*, float*);
using RowsGroup = void (*)(int, int64_t, const float*, int64_t, int, const float*, float*);
struct Kernels {
  PackedKernel packed;
  RowsKernel rows;
  PackedGroup packed_group;  // null: one call of packed per panel
  RowsGroup rows_group;      // null: one call of rows per panel
};

#if defined(__GNUC__) && defined(__x86_64__)
KG_AVX512 void packed_avx512(int64_t kc, const float* a, const float* b, float* acc) {
  tile_group_avx512<1>(kc, PackedA{a}, b, acc);
}
KG_AVX512 void rows_avx512(int64_t kc, const float* a, int64_t lda, int rows, const float* b, float* acc) {
  tile_group_avx512<1>(kc, RowsA(a, lda, rows), b, acc);
}
KG_AVX512 void packed_group_avx512(int g, int64_t kc, const float* a, const float* b, float* acc) {
  group_avx512(g, kc, PackedA{a}, b, acc);
}
KG_AVX512 void rows_group_avx512(int g, int64_t kc, const float* a, int64_t lda, int rows, const float* b, float* acc) {
  group_avx512(g, kc, RowsA(a, lda, rows), b, acc);
}
KG_AVX2 void packed_avx2(int64_t kc, const float* a, const float* b, float* acc) {
  tile_columns<v8f, 8>(kc, PackedA{a}, b, acc, 0);
}
KG_AVX2 void rows_avx2(int64_t kc, const float* a, int64_t lda, int rows, const float* b, float* acc) {
  tile_columns<v8f, 8>(kc, RowsA(a, lda, rows), b, acc, 0);
}
#endif

Kernels choose_kernels() {
#if defined(__GNUC__) && defined(__x86_64__)
  switch (cpu_isa()) {
    case Isa::Avx512: return {packed_avx512, rows_avx512, packed_group_avx512, rows_group_avx512};
    case Isa::Avx2: return {packed_avx2, rows_avx2, nullptr, nullptr};
    default: break;
  }
#endif
  return {packed_baseline, rows_baseline, nullptr, nullptr};
}

const Kernels g_kernels = choose_kernels();

}  // namespace

void gemm_micro_kernel(int64_t kc, const float* a, const float* b, float* acc) { g_kernels.packed(kc, a, b, acc); }

void gemm_micro_kernel_rows(int64_t kc, const float* a, int64_t lda, int rows, const float* b, float* acc) {
  g_kernels.rows(kc, a, lda, rows, b, acc);
}

void gemm_micro_kernel_group(int g, int64_t kc, const float* a, const float* b, float* acc) {
  if (g_kernels.packed_group) return g_kernels.packed_group(g, kc, a, b, acc);
  for (int t = 0; t < g; ++t) g_kernels.packed(kc, a, b + t * kc * kNR, acc + t * kMR * kNR);
}

void gemm_micro_kernel_rows_group(int g, int64_t kc, const float* a, int64_t lda, int rows, const float* b, float* acc) {
  if (g_kernels.rows_group) return g_kernels.rows_group(g, kc, a, lda, rows, b, acc);
  for (int t = 0; t < g; ++t) g_kernels.rows(kc, a, lda, rows, b + t * kc * kNR, acc + t * kMR * kNR);
}

}  // namespace kg::cpu
