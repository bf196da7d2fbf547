#include "host_allocator.h"

#include "kg/size_class.h"

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

namespace kg::cpu {
namespace {

constexpr size_t kAlign = 64;  // one cache line, and a full AVX-512 vector
constexpr size_t kMinBlock = 64;

size_t size_class(size_t bytes) { return kg::size_class(bytes, kMinBlock); }

// Blocks are aligned by hand over malloc rather than with aligned_alloc: glibc before 2.38 often
// fails to reuse memalign'd blocks after free (its bug 14581). The two words just below the
// aligned pointer keep the malloc'd pointer and the block's size class.
struct Header {
  void* raw;
  size_t block;
};
static_assert(sizeof(Header) <= kAlign, "the header must fit in the alignment padding");

Header& header_of(float* p) { return reinterpret_cast<Header*>(p)[-1]; }

float* system_alloc(size_t block) {
  void* raw = std::malloc(block + kAlign + sizeof(Header));
  if (!raw) return nullptr;
  uintptr_t aligned = (reinterpret_cast<uintptr_t>(raw) + sizeof(Header) + kAlign - 1) & ~uintptr_t(kAlign - 1);
  float* p = reinterpret_cast<float*>(aligned);
  header_of(p) = Header{raw, block};
  return p;
}

size_t cache_limit_from_env() {
  const char* v = std::getenv("KG_HOST_CACHE_MB");
  if (v == nullptr || *v == '\0') return size_t{1024} << 20;
  char* end = nullptr;
  unsigned long long mb = std::strtoull(v, &end, 10);
  if (*end != '\0' || mb > (1ull << 40)) return size_t{1024} << 20;  // not a number of MiB: the default
  return static_cast<size_t>(mb) << 20;
}

struct Pool {
  std::mutex mutex;
  std::unordered_map<size_t, std::vector<float*>> cached;  // block size -> free blocks
  size_t cached_bytes = 0;
  const size_t limit = cache_limit_from_env();
  HostMemoryStats stats{0, 0, 0, 0, 0, 0};

  // Called with the mutex held.
  void free_cached() {
    for (auto& entry : cached) {
      for (float* p : entry.second) std::free(header_of(p).raw);
      stats.reserved -= entry.first * entry.second.size();
      entry.second.clear();
    }
    cached_bytes = 0;
  }
};

// Never destroyed: a worker's tensors may be released while the process exits.
Pool& pool() {
  static Pool* p = new Pool();
  return *p;
}

}  // namespace

float* host_alloc(size_t bytes) {
  if (bytes > (size_t{1} << 60)) throw std::bad_alloc();
  const size_t block = size_class(bytes);
  Pool& a = pool();
  std::lock_guard<std::mutex> lock(a.mutex);
  float* p = nullptr;
  auto it = a.cached.find(block);
  if (it != a.cached.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
    a.cached_bytes -= block;
    a.stats.num_reuses += 1;
  } else {
    p = system_alloc(block);
    if (p == nullptr) {  // the pool's memory may be what the system lacks
      a.free_cached();
      p = system_alloc(block);
      if (p == nullptr) throw std::bad_alloc();
    }
    a.stats.reserved += block;
    a.stats.peak_reserved = std::max(a.stats.peak_reserved, a.stats.reserved);
    a.stats.num_mallocs += 1;
  }
  a.stats.allocated += block;
  a.stats.peak_allocated = std::max(a.stats.peak_allocated, a.stats.allocated);
  return p;
}

void host_release(float* p) noexcept {
  if (p == nullptr) return;
  const Header h = header_of(p);
  Pool& a = pool();
  std::lock_guard<std::mutex> lock(a.mutex);
  a.stats.allocated -= h.block;
  if (a.cached_bytes + h.block <= a.limit) {
    try {
      a.cached[h.block].push_back(p);
      a.cached_bytes += h.block;
      return;
    } catch (...) {
      // no room to remember it: give it back instead
    }
  }
  a.stats.reserved -= h.block;
  std::free(h.raw);
}

HostMemoryStats host_memory_stats() {
  Pool& a = pool();
  std::lock_guard<std::mutex> lock(a.mutex);
  return a.stats;
}

void host_empty_cache() {
  Pool& a = pool();
  std::lock_guard<std::mutex> lock(a.mutex);
  a.free_cached();
}

}  // namespace kg::cpu
