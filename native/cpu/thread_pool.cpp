#include "thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>
#if defined(__linux__)
#include <sched.h>
#endif

namespace kg::cpu {
namespace {

using Clock = std::chrono::steady_clock;

// How long a worker spins for the next loop before it sleeps, and the caller for the workers'
// last chunks. Back-to-back kernels (a training step's forward and backward, with a few
// microseconds of JavaScript between them) then find the workers awake; waking a sleeping one
// costs tens of microseconds on a virtual machine. KG_CPU_SPIN_US overrides it (0: sleep at once).
constexpr int kDefaultSpinMicros = 50;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

int env_int(const char* name, int fallback, int lo, int hi) {
  const char* s = std::getenv(name);
  if (!s || !*s) return fallback;
  char* end = nullptr;
  const long v = std::strtol(s, &end, 10);
  return (*end == '\0' && v >= lo && v <= hi) ? int(v) : fallback;
}

// The threads a loop gets by default: OMP_NUM_THREADS where set (the convention other numeric
// libraries follow), else the CPUs this process may run on.
int default_threads() {
  int cpus = int(std::thread::hardware_concurrency());
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) cpus = CPU_COUNT(&set);
#endif
  return env_int("OMP_NUM_THREADS", cpus > 0 ? cpus : 1, 1, 1024);
}

thread_local bool t_in_loop = false;

class Pool {
 public:
  Pool() : team_(default_threads()), spin_(std::chrono::microseconds(env_int("KG_CPU_SPIN_US", kDefaultSpinMicros, 0, 1000000))) {}

  int team() const { return team_.load(std::memory_order_relaxed); }
  void set_team(int n) { team_.store(n, std::memory_order_relaxed); }

  // Runs a loop, or returns false when another loop holds the pool (the caller then runs it alone).
  bool run(int64_t count, int64_t chunk, ChunkBody body, void* ctx) {
    std::unique_lock<std::mutex> owner(busy_, std::try_to_lock);
    if (!owner.owns_lock()) return false;
    const int team = this->team();
    start_workers(team - 1);
    body_ = body;
    ctx_ = ctx;
    count_ = count;
    chunk_ = chunk;
    error_ = nullptr;
    next_.store(0, std::memory_order_relaxed);
    // Open the loop (an odd state), and wake the workers that sleep.
    const uint64_t open = state_.load(std::memory_order_relaxed) + 1;
    state_.store(open);
    if (sleepers_.load() > 0) {
      { std::lock_guard<std::mutex> lock(sleep_mutex_); }
      wake_.notify_all();
    }
    claim_chunks();
    // Close it: no worker joins from now on; wait for those inside to finish their chunks.
    state_.store(open + 1);
    wait_for_workers();
    if (error_) std::rethrow_exception(error_);
    return true;
  }

 private:
  void claim_chunks() {
    t_in_loop = true;
    for (;;) {
      const int64_t begin = next_.fetch_add(chunk_, std::memory_order_relaxed);
      if (begin >= count_) break;
      try {
        body_(ctx_, begin, std::min(count_, begin + chunk_));
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex_);
        if (!error_) error_ = std::current_exception();
      }
    }
    t_in_loop = false;
  }

  void wait_for_workers() {
    const auto deadline = Clock::now() + spin_;
    for (int i = 0; inside_.load() != 0; ++i) {
      cpu_relax();
      if ((i & 63) == 63 && Clock::now() > deadline) {
        caller_sleeping_.store(true);
        std::unique_lock<std::mutex> lock(sleep_mutex_);
        done_.wait(lock, [&] { return inside_.load() == 0; });
        caller_sleeping_.store(false);
        return;
      }
    }
  }

  // Waits for a loop opened after `seen`; returns its state.
  uint64_t wait_for_loop(uint64_t seen) {
    const auto is_new = [&](uint64_t s) { return (s & 1) != 0 && s != seen; };
    const auto deadline = Clock::now() + spin_;
    for (int i = 0;; ++i) {
      const uint64_t s = state_.load(std::memory_order_acquire);
      if (is_new(s)) return s;
      cpu_relax();
      if ((i & 63) == 63 && Clock::now() > deadline) break;
    }
    std::unique_lock<std::mutex> lock(sleep_mutex_);
    sleepers_.fetch_add(1);
    uint64_t s;
    while (!is_new(s = state_.load())) wake_.wait(lock);
    sleepers_.fetch_sub(1);
    return s;
  }

  void worker(int index) {
    uint64_t seen = 0;
    for (;;) {
      const uint64_t s = wait_for_loop(seen);
      seen = s;
      if (index >= team()) continue;
      // Enter, then check that the loop is still open: the caller closes it before it waits
      // for `inside_` to drain, so either it sees this worker inside or the worker sees it closed.
      inside_.fetch_add(1);
      if (state_.load() == s) claim_chunks();
      if (inside_.fetch_sub(1) == 1 && caller_sleeping_.load()) {
        { std::lock_guard<std::mutex> lock(sleep_mutex_); }
        done_.notify_one();
      }
    }
  }

  // Workers 1 .. n (the caller is thread 0). They live as long as the process; a thread that
  // cannot be created (a process limit) leaves the pool smaller, which loops absorb.
  void start_workers(int n) {
    while (started_ < n && !start_failed_) {
      try {
        std::thread(&Pool::worker, this, started_ + 1).detach();
        ++started_;
      } catch (const std::system_error&) {
        start_failed_ = true;
      }
    }
  }

  std::atomic<int> team_;
  const std::chrono::microseconds spin_;
  std::mutex busy_;  // held by the thread whose loop runs on the pool
  int started_ = 0;
  bool start_failed_ = false;

  // The open loop: written before state_ turns odd, read by workers that saw it odd.
  ChunkBody body_ = nullptr;
  void* ctx_ = nullptr;
  int64_t count_ = 0, chunk_ = 1;
  std::atomic<int64_t> next_{0};
  std::exception_ptr error_;
  std::mutex error_mutex_;

  std::atomic<uint64_t> state_{0};  // odd while a loop is open
  std::atomic<int> inside_{0};      // workers inside the open loop
  std::mutex sleep_mutex_;
  std::condition_variable wake_, done_;
  std::atomic<int> sleepers_{0};
  std::atomic<bool> caller_sleeping_{false};
};

// Never destroyed: its detached workers block on its members until the process ends.
Pool& pool() {
  static Pool* p = new Pool();
  return *p;
}

}  // namespace

int pool_threads() { return t_in_loop ? 1 : pool().team(); }

void set_pool_threads(int threads) { pool().set_team(threads < 1 ? 1 : threads); }

bool pool_in_loop() { return t_in_loop; }

void pool_run(int64_t count, int64_t chunk, ChunkBody body, void* ctx) {
  if (count <= 0) return;
  if (chunk < 1) chunk = 1;
  if (!t_in_loop && pool().team() > 1 && count > chunk && pool().run(count, chunk, body, ctx)) return;
  // Serially: one thread, or nested, or the pool is running another thread's loop.
  std::exception_ptr error;
  for (int64_t begin = 0; begin < count; begin += chunk) {
    try {
      body(ctx, begin, std::min(count, begin + chunk));
    } catch (...) {
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace kg::cpu
