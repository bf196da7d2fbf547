// Hints to the memory system, for kernels whose data streams through memory rather than cache.
//
// Prefetches: a sample read from memory, a page (4 KiB) at a time or in more streams than the
// hardware prefetcher follows, makes its loads wait for memory; asking for its lines early,
// while other work runs, hides that.
//
// Non-temporal ("streaming") stores, for outputs written once and not read back soon: a plain store
// to a line that is in no cache first reads the line in (to merge the new bytes), so writing a
// large output moves it over the memory bus twice, and the stores wait for those reads. Streaming
// stores of whole lines skip the read. They are weakly ordered: a kernel that issues them calls
// stream_fence() before its results are handed to another thread.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace kg::cpu {

// Brings the lines of n floats at p towards the cache.
inline void prefetch_floats(const float* p, int64_t n) {
  constexpr int64_t kLineFloats = 16;
  for (int64_t i = 0; i < n; i += kLineFloats) __builtin_prefetch(p + i);
}

// dst[0, n) = src[0, n): streamed from the first 16-byte boundary of dst on, in 4-float stores
// (SSE: every x86-64 CPU), the ends copied plainly.
inline void stream_copy(float* dst, const float* src, int64_t n) {
#if defined(__x86_64__)
  const int64_t head = std::min<int64_t>(n, int64_t((16 - reinterpret_cast<uintptr_t>(dst) % 16) % 16) / 4);
  if (reinterpret_cast<uintptr_t>(dst) % 4 == 0) {
    std::memcpy(dst, src, size_t(head) * sizeof(float));
    int64_t i = head;
    for (; i + 4 <= n; i += 4) _mm_stream_ps(dst + i, _mm_loadu_ps(src + i));
    std::memcpy(dst + i, src + i, size_t(n - i) * sizeof(float));
    return;
  }
#endif
  std::memcpy(dst, src, size_t(n) * sizeof(float));
}

// Orders the streaming stores before the stores that follow (an sfence).
inline void stream_fence() {
#if defined(__x86_64__)
  _mm_sfence();
#endif
}

}  // namespace kg::cpu
