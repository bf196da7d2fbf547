// Portable SIMD building blocks: GCC/Clang vector extensions plus run-time dispatch.
//
// The addon is built for baseline x86-64 (no host-specific -march: one build must run on any x86-64
// machine). Hot loops are marked KG_MULTIVERSION, which makes GCC compile them twice, for
// x86-64-v3 (AVX2 + FMA) and for the baseline, and pick the clone once at load time through an
// ifunc resolver. (The GEMM micro-kernel, whose versions need different code and include an
// AVX-512 one, is chosen by isa.h's cpu_isa() instead: see gemm_kernel.cpp.) In the v3 code `acc += a * b` on vectors
// contracts to vfmadd (GCC's default -ffp-contract=fast under -std=gnu++17, which CMake uses), so
// one source gives FMA code there and mul + add in the fallback. Results are reproducible on a
// given machine (the version never changes), but may differ in the last bits between machines
// with and without FMA.
#pragma once
#include <cstdint>
#include <cstring>

// Define KG_NO_MULTIVERSION to build only the baseline code (to test or time the fallback).
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && defined(__linux__) && \
    !defined(KG_NO_MULTIVERSION)
#define KG_MULTIVERSION __attribute__((target_clones("arch=x86-64-v3", "default")))
#define KG_MULTIVERSION_ENABLED 1
#else
#define KG_MULTIVERSION
#endif

namespace kg::cpu {

// Returning 32-byte vectors by value differs between the AVX and non-AVX ABIs. Vectors only
// travel between inlined helpers inside the kernel files that include this header, so GCC's
// warning about it is noise there. (Vector parameters are passed by reference, for the same
// reason.)
#pragma GCC diagnostic ignored "-Wpsabi"

// 8 floats: one AVX register (two SSE registers in the baseline clone).
typedef float v8f __attribute__((vector_size(32)));
// 4 floats / 4 doubles, for float -> double widening in the accurate reductions.
typedef float v4f __attribute__((vector_size(16)));
typedef double v4d __attribute__((vector_size(32)));

// Unaligned loads and stores (memcpy compiles to a single vmovups).
inline v8f load8(const float* p) {
  v8f v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store8(float* p, const v8f& v) { std::memcpy(p, &v, sizeof v); }
inline v4f load4(const float* p) {
  v4f v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store4(float* p, const v4f& v) { std::memcpy(p, &v, sizeof v); }

// d[i] = s[i] for i < n, for the short copies of packing (typically 3 to 16 floats): at most a
// few vector moves, the last one overlapping the previous instead of a scalar tail loop. (A plain
// loop would become a call to memcpy, which costs more than such a copy.)
inline void copy_short(float* __restrict d, const float* __restrict s, int64_t n) {
  if (n >= 8) {
    for (int64_t i = 0; i + 8 < n; i += 8) {
      store8(d + i, load8(s + i));
      __asm__("" ::: "memory");  // not a memcpy call
    }
    store8(d + n - 8, load8(s + n - 8));
  } else if (n >= 4) {
    store4(d, load4(s));
    store4(d + n - 4, load4(s + n - 4));
  } else {
    for (int64_t i = 0; i < n; ++i) {
      d[i] = s[i];
      __asm__("" ::: "memory");  // not a memcpy call
    }
  }
}

}  // namespace kg::cpu
