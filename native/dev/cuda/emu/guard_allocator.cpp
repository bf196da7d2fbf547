// For the emulation's bounds checking only: kg::cuda::alloc without size classes, so every
// buffer (tensors and scratch alike) ends right at a guard page and a kernel touching one float
// past its end faults. Replaces native/cuda/allocator.cu in the `emu-guard` build; the `emu`
// build uses the real caching allocator (and checks it).
#include <cuda_runtime.h>

#include <string>

#include "kg/cuda_runtime.h"

namespace kg::cuda {

void* alloc(size_t bytes) {
  if (bytes == 0) return nullptr;
  void* p = nullptr;
  if (cudaMalloc(&p, bytes) != cudaSuccess) {
    (void)cudaGetLastError();
    throw CudaError("CUDA out of memory: cannot allocate " + std::to_string(bytes) + " bytes");
  }
  return p;
}
void release(void* ptr) {
  if (ptr) (void)cudaFree(ptr);
}
MemoryStats memory_stats() { return MemoryStats{0, 0, 0, 0, 0}; }
void empty_cache() {}
// No cache, so no graph pools: the harness captures nothing.
int64_t pool_create() { return 0; }
void pool_set_current(int64_t) {}
void pool_drop(int64_t) {}

}  // namespace kg::cuda
