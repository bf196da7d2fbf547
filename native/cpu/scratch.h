// Per-thread scratch memory for packed GEMM panels and column buffers. Kept between calls (and
// only ever grown), so the hot paths never go to malloc or fault fresh pages after warm-up.
// The pool's worker threads live as long as the process, so their buffers are reused too.
#pragma once
#include <cstddef>

namespace kg::cpu {

// Independent buffers a thread may hold at the same time.
// Block holds an inference block's intermediate tile (conv_block.cpp) while the kernels it calls
// use the others.
enum class Scratch : int { PackA = 0, PackB = 1, Columns = 2, Block = 3, Count = 4 };

// A 64-byte aligned buffer of at least `floats` floats owned by the calling thread. Its contents
// are unspecified; the pointer stays valid until the same thread asks for the same slot again.
float* scratch(Scratch slot, size_t floats);

}  // namespace kg::cpu
