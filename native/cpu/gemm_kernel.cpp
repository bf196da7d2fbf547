#include "gemm_kernel.h"

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

static_assert(kNR == 16, "the kernels below cover 16 columns: one pass of 2 x 8 or two of 2 x 4");

// GCC function multi-versioning: two bodies of one function, and calls to it go through an ifunc
// that picks one at load time from the CPU's features. With AVX2 + FMA (x86-64-v3) the whole
// 6 x 16 tile lives in 12 ymm registers; the baseline (SSE2, 16 xmm registers) computes it as two
// 6 x 8 halves with 12 xmm accumulators each, rather than spilling 24 of them. (The versions are
// file-local: only calls that see every version are dispatched, so the exported entry point
// below makes the call here.)
namespace {
#if defined(KG_MULTIVERSION_ENABLED)
__attribute__((target("arch=x86-64-v3"))) void micro_kernel(int64_t kc, const float* a, const float* b, float* acc) {
  tile_columns<v8f, 8>(kc, a, b, acc, 0);
}
__attribute__((target("default")))
#endif
void micro_kernel(int64_t kc, const float* a, const float* b, float* acc) {
  tile_columns<v4f, 4>(kc, a, b, acc, 0);
  tile_columns<v4f, 4>(kc, a, b, acc, 8);
}
}  // namespace

void gemm_micro_kernel(int64_t kc, const float* a, const float* b, float* acc) { micro_kernel(kc, a, b, acc); }

}  // namespace kg::cpu
