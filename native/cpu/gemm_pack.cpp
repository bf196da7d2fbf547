#include "gemm_pack.h"

#include "gemm_kernel.h"
#include "isa.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#endif

namespace kg::cpu {
namespace {

// The portable build: AVX2 or the baseline, whichever the CPU runs (simd.h).
KG_MULTIVERSION void gather_portable(float* dst, const float* base, const int64_t* roff, int64_t rows,
                                     const int64_t* poff, int64_t kc) {
  pack_panel_gather<kNR>(dst, base, roff, rows, poff, kc);
}

#if defined(KG_ISA_BUILDS)
// Along r, each run of consecutive addresses is one zero-masked load into its lanes of the
// panel's 16-float row, the runs are ORed together (their lanes are disjoint, so this is a copy)
// and the row is stored whole: a run of 5 taps costs one load instead of two overlapping 4-float
// moves and their stores, and lanes past `rows` come out zero by themselves. The loads of a row
// are independent (no merge into a common register); Runs > 0 fixes their number, 0 leaves it to
// `runs`.
template <int Runs>
KG_AVX512 inline __attribute__((always_inline)) void gather_rows_avx512(float* dst, const float* const* src,
                                                                        const __mmask16* lanes, int64_t runs,
                                                                        const int64_t* poff, int64_t kc) {
  if constexpr (Runs > 0) runs = Runs;
  for (int64_t p = 0; p < kc; ++p) {
    __m512 row = _mm512_maskz_loadu_ps(lanes[0], src[0] + poff[p]);
#pragma GCC unroll 4
    for (int64_t i = 1; i < runs; ++i) row = _mm512_or_ps(row, _mm512_maskz_loadu_ps(lanes[i], src[i] + poff[p]));
    _mm512_storeu_ps(dst + p * kNR, row);
  }
}

KG_AVX512 void gather_avx512(float* dst, const float* base, const int64_t* roff, int64_t rows, const int64_t* poff,
                             int64_t kc) {
  static_assert(kNR == 16, "one zmm per packed row");
  int64_t start[kNR + 1];
  const int64_t runs = split_runs(roff, rows, start);
  if (rows < 3 * runs) return pack_panel_gather<kNR>(dst, base, roff, rows, poff, kc);
  const float* src[kNR];  // lane r of run i reads src[i][r + poff[p]]
  __mmask16 lanes[kNR];
  for (int64_t i = 0; i < runs; ++i) {
    src[i] = base + roff[start[i]] - start[i];
    lanes[i] = __mmask16(((1u << (start[i + 1] - start[i])) - 1) << start[i]);
  }
  switch (runs) {
    case 1: return gather_rows_avx512<1>(dst, src, lanes, runs, poff, kc);
    case 2: return gather_rows_avx512<2>(dst, src, lanes, runs, poff, kc);
    case 3: return gather_rows_avx512<3>(dst, src, lanes, runs, poff, kc);
    case 4: return gather_rows_avx512<4>(dst, src, lanes, runs, poff, kc);
    default: return gather_rows_avx512<0>(dst, src, lanes, runs, poff, kc);
  }
}

// The same with AVX2: the 16-float row as two 8-float halves, each the OR of the masked loads of
// the runs that reach into it (vmaskmovps loads; masked-off lanes are not read, so a run may end
// at the edge of the source).
template <int Runs>
KG_AVX2 inline __attribute__((always_inline)) void gather_rows_avx2(float* dst, const float* const* src,
                                                                    const __m256i (*lanes)[2], int64_t runs,
                                                                    const int64_t* poff, int64_t kc) {
  if constexpr (Runs > 0) runs = Runs;
  for (int64_t p = 0; p < kc; ++p) {
    __m256 lo = _mm256_maskload_ps(src[0] + poff[p], lanes[0][0]);
    __m256 hi = _mm256_maskload_ps(src[0] + poff[p] + 8, lanes[0][1]);
#pragma GCC unroll 4
    for (int64_t i = 1; i < runs; ++i) {
      lo = _mm256_or_ps(lo, _mm256_maskload_ps(src[i] + poff[p], lanes[i][0]));
      hi = _mm256_or_ps(hi, _mm256_maskload_ps(src[i] + poff[p] + 8, lanes[i][1]));
    }
    _mm256_storeu_ps(dst + p * kNR, lo);
    _mm256_storeu_ps(dst + p * kNR + 8, hi);
  }
}

KG_AVX2 void gather_avx2(float* dst, const float* base, const int64_t* roff, int64_t rows, const int64_t* poff,
                         int64_t kc) {
  int64_t start[kNR + 1];
  const int64_t runs = split_runs(roff, rows, start);
  if (rows < 3 * runs) return pack_panel_gather<kNR>(dst, base, roff, rows, poff, kc);
  const float* src[kNR];
  __m256i lanes[kNR][2];
  for (int64_t i = 0; i < runs; ++i) {
    src[i] = base + roff[start[i]] - start[i];
    alignas(32) int32_t m[kNR];
    for (int64_t r = 0; r < kNR; ++r) m[r] = r >= start[i] && r < start[i + 1] ? -1 : 0;
    lanes[i][0] = _mm256_load_si256(reinterpret_cast<const __m256i*>(m));
    lanes[i][1] = _mm256_load_si256(reinterpret_cast<const __m256i*>(m + 8));
  }
  switch (runs) {
    case 1: return gather_rows_avx2<1>(dst, src, lanes, runs, poff, kc);
    case 2: return gather_rows_avx2<2>(dst, src, lanes, runs, poff, kc);
    case 3: return gather_rows_avx2<3>(dst, src, lanes, runs, poff, kc);
    case 4: return gather_rows_avx2<4>(dst, src, lanes, runs, poff, kc);
    default: return gather_rows_avx2<0>(dst, src, lanes, runs, poff, kc);
  }
}
#endif

using Gather = void (*)(float*, const float*, const int64_t*, int64_t, const int64_t*, int64_t);

Gather choose_gather() {
#if defined(KG_ISA_BUILDS)
  if (cpu_isa() == Isa::Avx512) return gather_avx512;
  if (cpu_isa() == Isa::Avx2) return gather_avx2;
#endif
  return gather_portable;
}

const Gather g_gather = choose_gather();

}  // namespace

void pack_b_panel_gather(float* dst, const float* base, const int64_t* roff, int64_t rows, const int64_t* poff,
                         int64_t kc) {
  g_gather(dst, base, roff, rows, poff, kc);
}

}  // namespace kg::cpu
