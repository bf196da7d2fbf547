#include "isa.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace kg::cpu {
namespace {

Isa detect() {
#if defined(__GNUC__) && defined(__x86_64__)
  __builtin_cpu_init();
  // x86-64-v4's core: what the AVX-512 micro-kernel is compiled for.
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    return Isa::Avx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::Avx2;
#endif
  return Isa::Baseline;
}

Isa choose() {
  const Isa best = detect();
  const char* want = std::getenv("KG_CPU_ISA");
  if (!want || !*want) return best;
  Isa asked = best;
  if (std::strcmp(want, "baseline") == 0) asked = Isa::Baseline;
  else if (std::strcmp(want, "avx2") == 0) asked = Isa::Avx2;
  else if (std::strcmp(want, "avx512") == 0) asked = Isa::Avx512;
  else std::fprintf(stderr, "kernelgrad: KG_CPU_ISA=%s is not baseline, avx2 or avx512; using %s\n", want, isa_name(best));
  return asked < best ? asked : best;
}

}  // namespace

Isa cpu_isa() {
  static const Isa isa = choose();
  return isa;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return "avx512";
    case Isa::Avx2: return "avx2";
    default: return "baseline";
  }
}

}  // namespace kg::cpu
