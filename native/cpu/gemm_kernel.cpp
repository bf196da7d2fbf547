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
struct Kernels {
  PackedKernel packed;
  RowsKernel rows;
};

#if defined(__GNUC__) && defined(__x86_64__)
KG_AVX512 void packed_avx512(int64_t kc, const float* a, const float* b, float* acc) {
  tile_avx512(kc, PackedA{a}, b, acc);
}
KG_AVX512 void rows_avx512(int64_t kc, const float* a, int64_t lda, int rows, const float* b, float* acc) {
  tile_avx512(kc, RowsA(a, lda, rows), b, acc);
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
    case Isa::Avx512: return {packed_avx512, rows_avx512};
    case Isa::Avx2: return {packed_avx2, rows_avx2};
    default: break;
  }
#endif
  return {packed_baseline, rows_baseline};
}

const Kernels g_kernels = choose_kernels();

}  // namespace

void gemm_micro_kernel(int64_t kc, const float* a, const float* b, float* acc) { g_kernels.packed(kc, a, b, acc); }

void gemm_micro_kernel_rows(int64_t kc, const float* a, int64_t lda, int rows, const float* b, float* acc) {
  g_kernels.rows(kc, a, lda, rows, b, acc);
}

}  // namespace kg::cpu
