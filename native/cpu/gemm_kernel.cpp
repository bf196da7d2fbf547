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

// The AVX-512 tile: each row of 16 columns is one zmm register. Six accumulators alone would
// leave the FMA units idle (an FMA's 4-cycle latency times two units wants 8 independent
// chains), so even and odd k steps go to two sets of six, added at the end: 12 chains, with the
// two B vectors of each step and the broadcast A values, in 32 zmm registers without spills.
template <class A>
inline __attribute__((always_inline)) void tile_avx512(int64_t kc, const A& a, const float* __restrict b,
                                                       float* __restrict acc) {
  v16f even[kMR] = {}, odd[kMR] = {};
  int64_t p = 0;
  for (; p + 2 <= kc; p += 2) {
    v16f b0, b1;
    std::memcpy(&b0, b, sizeof b0);
    std::memcpy(&b1, b + kNR, sizeof b1);
#pragma GCC unroll 6
    for (int r = 0; r < kMR; ++r) {
      even[r] += a.at(r, p) * b0;
      odd[r] += a.at(r, p + 1) * b1;
    }
    b += 2 * kNR;
  }
  if (p < kc) {
    v16f b0;
    std::memcpy(&b0, b, sizeof b0);
#pragma GCC unroll 6
    for (int r = 0; r < kMR; ++r) even[r] += a.at(r, p) * b0;
  }
#pragma GCC unroll 6
  for (int r = 0; r < kMR; ++r) {
    const v16f sum = even[r] + odd[r];
    std::memcpy(acc + r * kNR, &sum, sizeof sum);
  }
}

// Two tiles side by side (b0 and b1 two B micro-panels), each element with tile_avx512's
// operations: 24 accumulators, and per pair of k steps 4 B loads and 12 broadcasts for 24 FMAs,
// where one tile needs 2 B loads and 12 broadcasts for 12.
template <class A>
inline __attribute__((always_inline)) void tile_pair_avx512(int64_t kc, const A& a, const float* __restrict b0,
                                                            const float* __restrict b1, float* __restrict acc0,
                                                            float* __restrict acc1) {
  v16f even0[kMR] = {}, odd0[kMR] = {}, even1[kMR] = {}, odd1[kMR] = {};
  int64_t p = 0;
  for (; p + 2 <= kc; p += 2) {
    v16f x0, y0, x1, y1;  // panel 0 at steps p, p + 1; panel 1 at the same steps
    std::memcpy(&x0, b0, sizeof x0);
    std::memcpy(&y0, b0 + kNR, sizeof y0);
    std::memcpy(&x1, b1, sizeof x1);
    std::memcpy(&y1, b1 + kNR, sizeof y1);
#pragma GCC unroll 6
    for (int r = 0; r < kMR; ++r) {
      const float ae = a.at(r, p), ao = a.at(r, p + 1);
      even0[r] += ae * x0;
      even1[r] += ae * x1;
      odd0[r] += ao * y0;
      odd1[r] += ao * y1;
    }
    b0 += 2 * kNR;
    b1 += 2 * kNR;
  }
  if (p < kc) {
    v16f x0, x1;
    std::memcpy(&x0, b0, sizeof x0);
    std::memcpy(&x1, b1, sizeof x1);
#pragma GCC unroll 6
    for (int r = 0; r < kMR; ++r) {
      const float ae = a.at(r, p);
      even0[r] += ae * x0;
      even1[r] += ae * x1;
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < kMR; ++r) {
    const v16f sum0 = even0[r] + odd0[r], sum1 = even1[r] + odd1[r];
    std::memcpy(acc0 + r * kNR, &sum0, sizeof sum0);
    std::memcpy(acc1 + r * kNR, &sum1, sizeof sum1);
  }
}

// One body per instruction set, each compiled for its own target; the table below picks one pair
// (packed A, rows in place) once (cpu_isa(): the CPU's widest, or a narrower one named by KG_CPU_ISA). With AVX2 + FMA the
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
using PackedPair = void (*)(int64_t, const float*, const float*, const float*, float*, float*);
using RowsPair = void (*)(int64_t, const float*, int64_t, int, const float*, const float*, float*, float*);
struct Kernels {
  PackedKernel packed;
  RowsKernel rows;
  PackedPair packed_pair;  // null: two calls of packed
  RowsPair rows_pair;      // null: two calls of rows
};

#if defined(__GNUC__) && defined(__x86_64__)
KG_AVX512 void packed_avx512(int64_t kc, const float* a, const float* b, float* acc) {
  tile_avx512(kc, PackedA{a}, b, acc);
}
KG_AVX512 void rows_avx512(int64_t kc, const float* a, int64_t lda, int rows, const float* b, float* acc) {
  tile_avx512(kc, RowsA(a, lda, rows), b, acc);
}
KG_AVX512 void packed_pair_avx512(int64_t kc, const float* a, const float* b0, const float* b1, float* acc0,
                                  float* acc1) {
  tile_pair_avx512(kc, PackedA{a}, b0, b1, acc0, acc1);
}
KG_AVX512 void rows_pair_avx512(int64_t kc, const float* a, int64_t lda, int rows, const float* b0, const float* b1,
                                float* acc0, float* acc1) {
  tile_pair_avx512(kc, RowsA(a, lda, rows), b0, b1, acc0, acc1);
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
    case Isa::Avx512: return {packed_avx512, rows_avx512, packed_pair_avx512, rows_pair_avx512};
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

void gemm_micro_kernel_pair(int64_t kc, const float* a, const float* b0, const float* b1, float* acc0, float* acc1) {
  if (g_kernels.packed_pair) return g_kernels.packed_pair(kc, a, b0, b1, acc0, acc1);
  g_kernels.packed(kc, a, b0, acc0);
  g_kernels.packed(kc, a, b1, acc1);
}

void gemm_micro_kernel_rows_pair(int64_t kc, const float* a, int64_t lda, int rows, const float* b0, const float* b1,
                                 float* acc0, float* acc1) {
  if (g_kernels.rows_pair) return g_kernels.rows_pair(kc, a, lda, rows, b0, b1, acc0, acc1);
  g_kernels.rows(kc, a, lda, rows, b0, acc0);
  g_kernels.rows(kc, a, lda, rows, b1, acc1);
}

}  // namespace kg::cpu
