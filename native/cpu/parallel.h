// Parallel loops shared by the CPU kernels, on the pool of thread_pool.h.
//
// Determinism rule: wherever a split of the work affects rounding (the partial sums of a
// reduction, later combined in a fixed order), its boundaries depend only on the problem's shape,
// never on the number of threads. Threads only decide *who* computes what, so every output comes
// out of the same sequence of floating-point operations for 1 thread or 16.
//
// An exception thrown by the work (bad_alloc) is caught in the thread that ran it and rethrown to
// the loop's caller once every item has run.
#pragma once
#include <algorithm>
#include <cstdint>

#include "thread_pool.h"

namespace kg::cpu {

// Threads a loop started here would get: 1 inside a loop's body (a nested loop runs serially).
inline int available_threads() { return pool_threads(); }

constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

namespace detail {

// Runs f(i) for i in [0, count) as pool chunks of `chunk` items; serially when not `parallel`
// (a loop costs a pool round trip, a good part of a microsecond, which at batch 1 would be paid
// by every kernel of every layer).
template <class F>
void run_chunks(int64_t count, int64_t chunk, bool parallel, F& f) {
  if (!parallel || count < 2 || available_threads() < 2) {
    for (int64_t i = 0; i < count; ++i) f(i);
    return;
  }
  pool_run(count, chunk, [](void* ctx, int64_t begin, int64_t end) {
    F& body = *static_cast<F*>(ctx);
    for (int64_t i = begin; i < end; ++i) body(i);
  }, &f);
}

}  // namespace detail

// Calls f(i) for every i in [0, count); in parallel when `parallel` and count > 1. Threads claim
// contiguous runs of i, a few per thread, which keeps per-thread caches warm and lets the caller
// take over the runs of a thread that is late.
template <class F>
void parallel_for(int64_t count, bool parallel, F&& f) {
  const int64_t chunk = std::max<int64_t>(1, count / (4 * int64_t(std::max(1, available_threads()))));
  detail::run_chunks(count, chunk, parallel, f);
}

// The same one item at a time, for items of uneven cost.
template <class F>
void parallel_for_dynamic(int64_t count, bool parallel, F&& f) {
  detail::run_chunks(count, 1, parallel, f);
}

// Streaming work (a few operations per element) below this many elements runs on the calling
// thread alone: the workers spin a while and then sleep between loops (thread_pool.cpp), and
// waking a sleeping one costs tens of microseconds on a virtual machine. Batch norm's inference
// form, back to back on the 2-core development VM: on 64x50x9x9 (259,200 elements) 32-36 us on
// one thread and 21-23 us on two; on 32x50x9x9 (129,600) 14-16 us on one and 20 us on two. So
// the line is at 2^17.
constexpr int64_t kParallelElements = int64_t(1) << 17;

// The elements of one chunk of streaming work.
constexpr int64_t kElementwiseGrain = 32768;

// Splits [0, n) into chunks of `grain` (the last one shorter) and calls f(begin, end) for each,
// in parallel when there are enough of them. Every caller sizes `grain` so that a chunk holds
// about kElementwiseGrain elements (grain = kElementwiseGrain / row length for rows), so the
// chunk count measures the work.
template <class F>
void parallel_range(int64_t n, int64_t grain, F&& f) {
  if (n <= 0) return;
  const int64_t chunks = ceil_div(n, grain);
  parallel_for_dynamic(chunks, chunks * kElementwiseGrain > kParallelElements,
                       [&](int64_t c) { f(c * grain, std::min(n, (c + 1) * grain)); });
}

}  // namespace kg::cpu
