// The instruction set the hand-vectorized kernels use, chosen once at run time: the widest the
// CPU has, unless KG_CPU_ISA names a narrower one (so the narrower paths can be tested and timed on
// a machine that has the wider). A wider ISA than the CPU supports is never chosen, whatever the
// variable says.
#pragma once

// The target attributes of a kernel's AVX-512 and AVX2 builds (each a function of its own, picked
// through cpu_isa(); code inside a lambda handed to a parallel loop would be compiled for the
// baseline, whatever the function around it says).
#if defined(__GNUC__) && defined(__x86_64__)
#define KG_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")))
#define KG_AVX2 __attribute__((target("avx2,fma")))
#define KG_ISA_BUILDS 1
#else
#define KG_AVX512
#define KG_AVX2
#endif

namespace kg::cpu {

enum class Isa { Baseline, Avx2, Avx512 };

// Read once: the CPU's features, then KG_CPU_ISA=baseline|avx2|avx512.
Isa cpu_isa();
const char* isa_name(Isa isa);

}  // namespace kg::cpu
