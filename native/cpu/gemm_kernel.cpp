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

// Columns [col0, col0 + 2W) of the kMR x kNR tile, W = the vector width: kMR x 2 accumulators
// that stay in registers over the whole k loop.
template <class V, int W>
inline __attribute__((always_inline)) void tile_columns(int64_t kc, const float* __restrict a,
                                                        const float* __restrict b, float* __restrict acc,
                                                        int col0) {
  V c[kMR][2] = {};
  b += col0;
  for (int64_t p = 0; p < kc; ++p) {
    const V b0 = load_v<V>(b), b1 = load_v<V>(b + W);
#pragma GCC unroll 6
    for (int r = 0; r < kMR; ++r) {
      const float ar = a[r];
      c[r][0] += ar * b0;  // one vfmadd231ps in the AVX2 version
      c[r][1] += ar * b1;
    }
    a += kMR;
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
inline __attribute__((always_inline)) void tile_avx512(int64_t kc, const float* __restrict a, const float* __restrict b,
                                                       float* __restrict acc) {
  v16f even[kMR] = {}, odd[kMR] = {};
  int64_t p = 0;
  for (; p + 2 <= kc; p += 2) {
    v16f b0, b1;
    std::memcpy(&b0, b, sizeof b0);
    std::memcpy(&b1, b + kNR, sizeof b1);
#pragma GCC unroll 6
    for (int r = 0; r < kMR; ++r) {
      even[r] += a[r] * b0;
      odd[r] += a[kMR + r] * b1;
    }
    a += 2 * kMR;
    b += 2 * kNR;
  }
  if (p < kc) {
    v16f b0;
    std::memcpy(&b0, b, sizeof b0);
#pragma GCC unroll 6
    for (int r = 0; r < kMR; ++r) even[r] += a[r] * b0;
  }
#pragma GCC unroll 6
  for (int r = 0; r < kMR; ++r) {
    const v16f sum = even[r] + odd[r];
    std::memcpy(acc + r * kNR, &sum, sizeof sum);
  }
}

// One body per instruction set, each compiled for its own target; the pointer below picks one
// once (cpu_isa(): the CPU's widest, or a narrower one named by KG_CPU_ISA). With AVX2 + FMA the
// 6 x 16 tile lives in 12 ymm registers; the baseline (SSE2, 16 xmm registers) computes it as
// two 6 x 8 halves with 12 xmm accumulators each, rather than spilling 24 of them.
using MicroKernel = void (*)(int64_t, const float*, const float*, float*);

#if defined(__GNUC__) && defined(__x86_64__)
__attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma"))) void micro_avx512(int64_t kc, const float* a,
                                                                                          const float* b, float* acc) {
  tile_avx512(kc, a, b, acc);
}
__attribute__((target("avx2,fma"))) void micro_avx2(int64_t kc, const float* a, const float* b, float* acc) {
  tile_columns<v8f, 8>(kc, a, b, acc, 0);
}
#endif
void micro_baseline(int64_t kc, const float* a, const float* b, float* acc) {
  tile_columns<v4f, 4>(kc, a, b, acc, 0);
  tile_columns<v4f, 4>(kc, a, b, acc, 8);
}

MicroKernel choose_kernel() {
#if defined(__GNUC__) && defined(__x86_64__)
  switch (cpu_isa()) {
    case Isa::Avx512: return micro_avx512;
    case Isa::Avx2: return micro_avx2;
    default: break;
  }
#endif
  return micro_baseline;
}

const MicroKernel g_micro_kernel = choose_kernel();

}  // namespace

void gemm_micro_kernel(int64_t kc, const float* a, const float* b, float* acc) { g_micro_kernel(kc, a, b, acc); }

}  // namespace kg::cpu
