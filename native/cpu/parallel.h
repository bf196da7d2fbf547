// OpenMP helpers shared by the CPU kernels.
//
// Determinism rule: wherever a split of the work affects rounding (the partial sums of a
// reduction, later combined in a fixed order), its boundaries depend only on the problem's shape,
// never on the number of threads. Threads only decide *who* computes what, so every output comes
// out of the same sequence of floating-point operations for 1 thread or 16.
//
// An exception thrown by the work (bad_alloc) must not escape an OpenMP region (that would
// terminate the process): the loops below catch it and rethrow the first one after the join.
//
// Everything here also compiles without OpenMP (then it runs on the calling thread).
#pragma once
#include <algorithm>
#include <cstdint>
#include <exception>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace kg::cpu {

// Threads a parallel region started here would get: 1 inside an enclosing region (nested
// parallelism is off, so an inner region runs serially anyway).
inline int available_threads() {
#ifdef _OPENMP
  return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
  return 1;
#endif
}

constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

namespace detail {
// Whether a loop of `count` items asked to run `parallel` opens an OpenMP region. Otherwise it runs
// as a plain loop: even a one-thread region costs the runtime's setup, a good part of a
// microsecond, which at batch 1 is paid by every kernel of every layer. Inside a region (nested
// parallelism is off) an inner one would get one thread anyway.
inline bool opens_region(int64_t count, bool parallel) {
#ifdef _OPENMP
  return parallel && count > 1 && !omp_in_parallel();
#else
  (void)count, (void)parallel;
  return false;
#endif
}

// Runs f(i), keeping the first exception for `error` instead of letting it leave the region.
template <class F>
void run_guarded(F& f, int64_t i, std::exception_ptr& error) {
  try {
    f(i);
  } catch (...) {
#ifdef _OPENMP
#pragma omp critical(kg_cpu_parallel_error)
#endif
    if (!error) error = std::current_exception();
  }
}
}  // namespace detail

// Calls f(i) for every i in [0, count); in parallel when `parallel` and count > 1. Contiguous
// ranges of i go to each thread (schedule(static)), which keeps per-thread caches warm.
template <class F>
void parallel_for(int64_t count, [[maybe_unused]] bool parallel, F&& f) {
  if (!detail::opens_region(count, parallel)) {
    for (int64_t i = 0; i < count; ++i) f(i);
    return;
  }
  std::exception_ptr error;
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
  for (int64_t i = 0; i < count; ++i) detail::run_guarded(f, i, error);
  if (error) std::rethrow_exception(error);
}

// The same with dynamic scheduling, for pieces of uneven cost.
template <class F>
void parallel_for_dynamic(int64_t count, [[maybe_unused]] bool parallel, F&& f) {
  if (!detail::opens_region(count, parallel)) {
    for (int64_t i = 0; i < count; ++i) f(i);
    return;
  }
  std::exception_ptr error;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1)
#endif
  for (int64_t i = 0; i < count; ++i) detail::run_guarded(f, i, error);
  if (error) std::rethrow_exception(error);
}

// Streaming work (a few operations per element) below this many elements runs on the calling
// thread alone. The other threads spin briefly and then sleep between parallel regions
// (lib/thread-policy.ts says why), and waking a sleeping one costs tens of microseconds on a
// virtual machine. With passive threads, batch norm's inference form on 64x50x9x9 (259,200
// elements) took 35 us on one thread and 78 us on two (2-core development VM); since the threads
// spin a little, back-to-back kernels find them awake, and it takes 27 us on one and 15.5 us on
// two, so the line is at 2^17.
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
  parallel_for(chunks, chunks * kElementwiseGrain > kParallelElements, [&](int64_t c) { f(c * grain, std::min(n, (c + 1) * grain)); });
}

}  // namespace kg::cpu
