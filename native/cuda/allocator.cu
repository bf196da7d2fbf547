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
//
// Graph pools: a captured graph replays with the same pointers it was captured with, so the blocks
// it uses must never be handed to other work while it lives. During a capture every request is
// served from the graph's pool (its own free blocks, then the general cache's, then cudaMalloc,
// which the capture allows in relaxed mode only) and every released block goes to the pool,
// including blocks allocated before the capture that the graph may read. Blocks of a pool that
// are released later go back to that pool. Dropping the pool (the graph is destroyed) returns
// its free blocks to the general cache and makes its live blocks ordinary ones.
#include <mutex>
#include <unordered_map>
#include <vector>

#include "common.cuh"
#include "kg/size_class.h"

namespace kg::cuda {

namespace {

constexpr size_t kMinBlock = 512;

size_t size_class(size_t bytes) { return kg::size_class(bytes, kMinBlock); }

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

using FreeLists = std::unordered_map<size_t, std::vector<void*>>;  // block size -> free blocks

struct Block {
  size_t size;
  int64_t pool;  // 0: the general cache
};

// Pops a free block of `size` from `lists`, or returns nullptr.
void* take(FreeLists& lists, size_t size) {
  auto it = lists.find(size);
  if (it == lists.end() || it->second.empty()) return nullptr;
  void* p = it->second.back();
  it->second.pop_back();
  return p;
}

// cudaMalloc while the library's stream may be capturing: the capture forbids it in its own
// (global) mode, so this thread switches to relaxed mode for the call, as CUDA allows.
cudaError_t malloc_during_capture(void** ptr, size_t bytes) {
  cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
  (void)cudaThreadExchangeStreamCaptureMode(&mode);
  const cudaError_t err = cudaMalloc(ptr, bytes);
  (void)cudaThreadExchangeStreamCaptureMode(&mode);
  return err;
}

struct Allocator {
  std::mutex mutex;
  std::unordered_map<void*, Block> live;  // handed out
  FreeLists cached;                       // free, general
  std::unordered_map<int64_t, FreeLists> pools;  // free, per graph pool
  int64_t current_pool = 0;
  int64_t next_pool = 1;
  MemoryStats stats{0, 0, 0, 0, 0};

  // Returns every cached block to the driver. Called with the mutex held.
  void free_cached() {
    bool any = false;
    for (auto& entry : cached) any = any || !entry.second.empty();
    if (!any) return;
    // Kernels queued before a block was released may still use it.
    KG_CUDA_CHECK(cudaDeviceSynchronize(), "waiting for the GPU before returning cached memory");
    detail::note_host_sync();
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

  const int64_t pool = a.current_pool;
  void* ptr = pool ? take(a.pools[pool], block) : nullptr;
  if (!ptr) ptr = take(a.cached, block);
  if (!ptr) {
    cudaError_t err = pool ? malloc_during_capture(&ptr, block) : cudaMalloc(&ptr, block);
    if (err == cudaErrorMemoryAllocation && !pool) {  // emptying the cache synchronizes: not in a capture
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
    a.live.emplace(ptr, Block{block, pool});
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
    const Block block = it->second;
    a.live.erase(it);
    a.stats.allocated -= block.size;
    const int64_t pool = a.current_pool ? a.current_pool : block.pool;
    (pool ? a.pools[pool] : a.cached)[block.size].push_back(ptr);
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

int64_t pool_create() {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  const int64_t id = a.next_pool++;
  a.pools[id];
  return id;
}

void pool_set_current(int64_t pool) {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  a.current_pool = pool;
}

void pool_drop(int64_t pool) {
  if (pool == 0) return;
  try {
    Allocator& a = allocator();
    std::lock_guard<std::mutex> lock(a.mutex);
    auto it = a.pools.find(pool);
    if (it == a.pools.end()) return;
    for (auto& entry : it->second) {
      std::vector<void*>& to = a.cached[entry.first];
      to.insert(to.end(), entry.second.begin(), entry.second.end());
    }
    a.pools.erase(it);
    for (auto& entry : a.live)
      if (entry.second.pool == pool) entry.second.pool = 0;
    if (a.current_pool == pool) a.current_pool = 0;
  } catch (...) {
    // a failed vector growth leaks the pool's free blocks; called from destructors: never throw
  }
}

}  // namespace kg::cuda
