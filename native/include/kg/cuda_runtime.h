// The CUDA runtime as the rest of the library sees it: devices, memory, copies, the one stream.
// Compiled only when nvcc was found (KG_WITH_CUDA). Every failure throws kg::CudaError (a
// std::runtime_error) naming the call and the sizes, so the binding turns it into a JS exception
// and the process stays usable.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace kg::cuda {

struct CudaError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct DeviceInfo {
  int index;
  std::string name;
  size_t total_memory;
  int major, minor;  // compute capability
  bool emulated;     // the CPU emulator of CUDA (native/dev/cuda/emu), not a GPU
};

// What asking the CUDA runtime for devices found. When it could not even count them, `error`
// says why (the cudaGetDeviceCount error, its name and description) and the two versions tell a
// missing driver (driver_version 0) from one too old for the statically linked runtime.
struct DeviceQuery {
  std::vector<DeviceInfo> devices;
  std::string error;       // empty when cudaGetDeviceCount succeeded
  std::string error_name;  // e.g. "cudaErrorInsufficientDriver"
  int driver_version;      // cudaDriverGetVersion: 12040 is CUDA 12.4; 0 without a driver
  int runtime_version;     // CUDART_VERSION this addon was built with
};

// Never throws: no driver or no GPU gives an empty list, with the reason in `error`.
DeviceQuery query_devices();
// query_devices().devices: the devices usable by this process.
std::vector<DeviceInfo> devices();

// Caching allocator: freed blocks go back to a pool and are reused by later requests of a size
// class, so a warm training step makes no cudaMalloc/cudaFree. Out-of-memory (after emptying
// the cache once and retrying) throws CudaError with the requested size.
void* alloc(size_t bytes);
void release(void* ptr);
struct MemoryStats {
  size_t allocated;  // bytes handed out to tensors now
  size_t reserved;   // bytes held from the driver (allocated + cached)
  size_t peak_allocated;
  size_t peak_reserved;
  size_t num_mallocs;  // cudaMalloc calls so far
};
MemoryStats memory_stats();
void empty_cache();

// Copies on the library's stream. Device-to-host synchronizes (the caller reads the result).
void copy_h2d(void* dst, const void* src, size_t bytes);
void copy_d2h(void* dst, const void* src, size_t bytes);
void copy_d2d(void* dst, const void* src, size_t bytes);
void synchronize();

}  // namespace kg::cuda
