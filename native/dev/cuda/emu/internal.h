// What the emulator's own files share (not seen by the kernels): the sticky "last error", and
// device memory, which execution.cpp opens to the kernels it runs and runtime_api.cpp to copies.
#pragma once
#include <cstddef>

#include "cuda_runtime.h"

namespace emu {

void set_last_error(cudaError_t e);
cudaError_t take_last_error();

// Device memory (device_memory.cpp): every buffer ends right before an inaccessible page.
cudaError_t device_malloc(void** p, size_t bytes);
cudaError_t device_free(void* p);
size_t device_total();
size_t device_used();
// memmove for copies that touch device memory (cudaMemcpy*): runs with the device lock held and
// device memory open to the calling code, as a DMA engine would.
void device_memmove(void* dst, const void* src, size_t bytes);

}  // namespace emu
