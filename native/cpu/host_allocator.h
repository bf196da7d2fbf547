// The host caching allocator: where every CPU tensor's memory comes from.
//
// A training step allocates and frees the same sizes every iteration. Returned to malloc, a large
// block goes back to the kernel (glibc unmaps anything past its mmap threshold), and the next
// step faults every page of it in again: a whole step's activations touched for the first time,
// each step. So a released block is kept in a pool by size class and handed to the next request
// of that class, its pages still mapped.
//
// Process-wide (tensors of worker threads share it) and thread-safe. KG_HOST_CACHE_MB caps the
// bytes kept in the pool (default 1024; 0 turns caching off); past the cap a released block goes
// straight back to the system.
#pragma once
#include <cstddef>
#include <cstdint>

namespace kg::cpu {

struct HostMemoryStats {
  uint64_t allocated;       // bytes in blocks handed out (by block size)
  uint64_t reserved;        // allocated + cached
  uint64_t peak_allocated;
  uint64_t peak_reserved;
  uint64_t num_mallocs;     // blocks obtained from the system
  uint64_t num_reuses;      // requests served from the pool
};

// A 64-byte aligned block of at least `bytes` bytes; throws std::bad_alloc when the system has
// none, even after the pool was returned to it.
float* host_alloc(size_t bytes);
// Gives a block from host_alloc back (to the pool, or to the system). Never throws.
void host_release(float* p) noexcept;

// A block from host_alloc for the lifetime of a scope: a kernel's temporary (at least one float).
class HostBuffer {
 public:
  explicit HostBuffer(int64_t floats) : p_(host_alloc(size_t(floats > 1 ? floats : 1) * sizeof(float))) {}
  ~HostBuffer() { host_release(p_); }
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
  // Moved, the block goes with it (so objects holding one can live in a vector).
  HostBuffer(HostBuffer&& other) noexcept : p_(other.p_) { other.p_ = nullptr; }
  HostBuffer& operator=(HostBuffer&&) = delete;
  float* get() const { return p_; }

 private:
  float* p_;
};

HostMemoryStats host_memory_stats();
// Returns every cached block to the system.
void host_empty_cache();

}  // namespace kg::cpu
