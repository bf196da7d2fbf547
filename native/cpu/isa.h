// The instruction set the hand-vectorized kernels use, chosen once at run time: the widest the
// CPU has, unless KG_CPU_ISA names a narrower one (so the narrower paths can be tested and timed on
// a machine that has the wider). A wider ISA than the CPU supports is never chosen, whatever the
// variable says.
#pragma once

namespace kg::cpu {

enum class Isa { Baseline, Avx2, Avx512 };

// Read once: the CPU's features, then KG_CPU_ISA=baseline|avx2|avx512.
Isa cpu_isa();
const char* isa_name(Isa isa);

}  // namespace kg::cpu
