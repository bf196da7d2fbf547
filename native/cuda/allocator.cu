// The caching allocator.
//
// cudaMalloc and cudaFree are slow (cudaFree also synchronizes the whole device), and a training
// step allocates and frees the same sizes every iteration. So a released block is not returned
// to the driver but kept in a pool keyed by its size class, and the next request of that class
// takes it back: after the first step, a training loop makes no cudaMalloc/cudaFree at all.
//
// Size classes: multiples of 512 bytes up to 2 KiB, then four classes per power of two (1, 1.25,
// 1.5 and 1.75 times 2^k). A request wastes at most 25% of its block, and the number of distinct
// classes stays small, so blocks are reused often. A request only ever takes a cached block of
// exactly its class (no splitting), which keeps the bookkeeping trivial.
//
// Reuse without waiting for the GPU is safe because kernelgrad has one stream: a block released
// while kernels that use it are still queued can only be handed to work queued after them.
//
// Out of memory: the cache is emptied (cudaFree of every cached block) and the request retried
// once; if that fails too, CudaError reports the request and the device's free/total memory.
#include <mutex>
#include <unordered_map>
#include <vector>

#include "common.cuh"

namespace kg::cuda {

namespace {

constexpr size_t kMinBlock = 512;

size_t size_class(size_t bytes) {
  if (bytes <= kMinBlock) return kMinBlock;
  size_t pow2 = size_t{1} << (63 - __builtin_clzll(static_cast<unsigned long long>(bytes)));
  size_t step = std::max(kMinBlock, pow2 / 4);
  return (bytes + step - 1) / step * step;
}

std::string human_bytes(size_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  std::ostringstream out;
  out.precision(u == 0 ? 0 : 2);
  out << std::fixed << v << " " << units[u];
  return out.str();
}

struct Allocator {
  std::mutex mutex;
  std::unordered_map<void*, size_t> live;                 // handed out: pointer -> block size
  std::unordered_map<size_t, std::vector<void*>> cached;  // free: block size -> blocks
  MemoryStats stats{0, 0, 0, 0, 0};

  // Returns every cached block to the driver. Called with the mutex held.
  void free_cached() {
    bool any = false;
    for (auto& entry : cached) any = any || !entry.second.empty();
    if (!any) return;
    // Kernels queued before a block was released may still use it.
    KG_CUDA_CHECK(cudaDeviceSynchronize(), "waiting for the GPU before returning cached memory");
    for (auto& entry : cached) {
      std::vector<void*>& blocks = entry.second;
      while (!blocks.empty()) {  // pop first: a failing cudaFree must not leave a dangling entry
        void* p = blocks.back();
        blocks.pop_back();
        stats.reserved -= entry.first;
        KG_CUDA_CHECK(cudaFree(p), "returning a cached block of ", entry.first, " bytes");
      }
    }
  }

  [[noreturn]] void out_of_memory(size_t requested, size_t block, cudaError_t err) {
    (void)cudaGetLastError();  // out-of-memory is recoverable: do not leave it for the next check
    size_t free_bytes = 0, total_bytes = 0;
    std::string device;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess) {
      device = human_bytes(free_bytes) + " free of " + human_bytes(total_bytes) + " total";
    } else {
      (void)cudaGetLastError();
      device = "free/total unknown";
    }
    throw CudaError(detail::describe(
        "CUDA out of memory: cannot allocate ", human_bytes(requested), " (", requested, " bytes, block of ",
        block, ") on the GPU: ", device, "; kernelgrad holds ", human_bytes(stats.allocated),
        " in tensors and ", human_bytes(stats.reserved), " reserved (", cudaGetErrorName(err),
        "). Free tensors with dispose() or use smaller batches."));
  }
};

// Never destroyed: static destructors run at process exit, possibly after the CUDA driver has
// shut down, and freeing then would only produce errors.
Allocator& allocator() {
  static Allocator* a = new Allocator();
  return *a;
}

}  // namespace

void* alloc(size_t bytes) {
  if (bytes == 0) return nullptr;
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  if (bytes > (size_t{1} << 60)) a.out_of_memory(bytes, bytes, cudaErrorMemoryAllocation);
  const size_t block = size_class(bytes);

  void* ptr = nullptr;
  auto it = a.cached.find(block);
  if (it != a.cached.end() && !it->second.empty()) {
    ptr = it->second.back();
    it->second.pop_back();
  } else {
    cudaError_t err = cudaMalloc(&ptr, block);
    if (err == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      a.free_cached();
      err = cudaMalloc(&ptr, block);
    }
    if (err == cudaErrorMemoryAllocation) a.out_of_memory(bytes, block, err);
    if (err != cudaSuccess) detail::fail(err, "cudaMalloc", detail::describe(bytes, " bytes"));
    a.stats.reserved += block;
    a.stats.peak_reserved = std::max(a.stats.peak_reserved, a.stats.reserved);
    a.stats.num_mallocs += 1;
  }
  try {
    a.live.emplace(ptr, block);
  } catch (...) {
    a.cached[block].push_back(ptr);  // keep the block accounted for, then report bad_alloc
    throw;
  }
  a.stats.allocated += block;
  a.stats.peak_allocated = std::max(a.stats.peak_allocated, a.stats.allocated);
  return ptr;
}

// Called from destructors (a tensor collected by the garbage collector), so it never throws and
// makes no CUDA call: the block just goes back to the pool.
void release(void* ptr) {
  if (!ptr) return;
  try {
    Allocator& a = allocator();
    std::lock_guard<std::mutex> lock(a.mutex);
    auto it = a.live.find(ptr);
    if (it == a.live.end()) return;  // not ours (or released twice): ignore rather than corrupt
    const size_t block = it->second;
    a.live.erase(it);
    a.stats.allocated -= block;
    a.cached[block].push_back(ptr);
  } catch (...) {
    // a failed vector growth leaks one block; a destructor must not throw
  }
}

MemoryStats memory_stats() {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  return a.stats;
}

void empty_cache() {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  a.free_cached();
}

}  // namespace kg::cuda
