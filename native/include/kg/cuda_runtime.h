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
// The private pools of captured graphs (allocator.cu). While a pool is current, alloc() serves
// from it (growing it from the cache or the driver) and release() returns blocks to it, even
// blocks allocated before: the graph being captured may use them. A pool's blocks stay out of the
// general cache until the pool is dropped (its graph destroyed), so no eager work can be handed
// memory that a replay writes.
int64_t pool_create();
void pool_set_current(int64_t pool);  // 0: none
void pool_drop(int64_t pool);

// Graph capture of the library's stream (graph.cu). Between begin_capture and end_capture the
// stream's kernels and device-to-device copies are recorded instead of run, and every allocation
// comes from the graph's private pool of the caching allocator, so a replay allocates nothing and
// the memory the graph uses stays its own until it is destroyed. What CUDA cannot capture (a
// synchronizing device-to-host copy, synchronize(), a copy from pageable host memory) throws
// CudaError and spoils the capture: end_capture then throws too, after ending it.
struct Graph;
void begin_capture();
Graph* end_capture();
// Ends a capture that failed on the host side, discarding what it recorded (never throws).
void abandon_capture();
bool capturing();
void replay(Graph* g);
void destroy(Graph* g);
// Kernels recorded in the graph.
int64_t graph_kernels(const Graph* g);

// Cumulative counts of the work the library issued, on the real and the emulated backend.
struct Counters {
  uint64_t kernel_launches;  // launched directly (not through a graph)
  uint64_t graph_replays;
  uint64_t graph_kernels;  // kernels run by replays
  uint64_t host_syncs;     // waits for the stream to drain: synchronize() and device-to-host reads
  uint64_t event_waits;    // waits for work recorded earlier (Readback::wait), see readback.cu
};
Counters counters();

// A device-to-host copy into page-locked memory that the host reads later (readback.cu), so that
// a training loop can fetch the loss without waiting for the step that computed it.
class Readback {
 public:
  explicit Readback(size_t bytes);
  ~Readback();
  Readback(const Readback&) = delete;
  Readback& operator=(const Readback&) = delete;
  size_t bytes() const { return bytes_; }
  // Queues a copy of `bytes` from device memory `src` to offset `at` of the host buffer, and
  // marks the point the host waits for.
  void enqueue(const void* src, size_t at, size_t bytes);
  // Waits until everything enqueued so far has arrived; the host buffer.
  const void* wait();

 private:
  size_t bytes_;
  void* host_ = nullptr;
  void* done_ = nullptr;  // the cudaEvent_t recorded after the last copy
};

// Copies on the library's stream. Device-to-host synchronizes (the caller reads the result).
void copy_h2d(void* dst, const void* src, size_t bytes);
void copy_d2h(void* dst, const void* src, size_t bytes);
void copy_d2d(void* dst, const void* src, size_t bytes);
void synchronize();

}  // namespace kg::cuda
