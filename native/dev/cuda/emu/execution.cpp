// The CPU emulation of the CUDA execution model declared in cuda_runtime.h: grids, blocks,
// threads, barriers and warp shuffles.
//
// Blocks run one after another; the threads of a block are coroutines (a dozen instructions of
// x86-64 assembly switch stacks: ucontext's swapcontext makes a system call per switch, far too
// slow for kernels that shuffle millions of times). A thread runs
// until it reaches __syncthreads (all threads of the block must arrive), a warp shuffle (all 32
// lanes of its warp must arrive, with a full mask) or its end; the scheduler then releases
// whichever barrier is complete, and reports a deadlock (a barrier some threads never reach)
// instead of hanging, and a __syncthreads that threads of one block reach at different call
// sites (divergent code: undefined on a GPU).
//
// The order in which threads run between barriers rotates from launch to launch: forward,
// reverse, then a seeded random order, so a missing __syncthreads shows up as results that change
// (EMU_ORDER=forward|reverse|random fixes one order for every launch).
//
// Shared memory lives in shared_memory.cpp, device memory in device_memory.cpp, the runtime API
// (errors, devices, streams, copies) in runtime_api.cpp.
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cuda_runtime.h"
#include "internal.h"

// switch_stack(&save, next): saves the callee-saved registers on the current stack, stores the
// stack pointer in *save, continues on `next` (a pointer saved the same way, or a fresh stack).
extern "C" void emu_switch_stack(void** save, void* next);
asm(R"(
  .text
  .globl emu_switch_stack
  .type emu_switch_stack,@function
emu_switch_stack:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size emu_switch_stack,.-emu_switch_stack
)");

namespace emu {

uint3 thread_idx{0, 0, 0}, block_idx{0, 0, 0};
dim3 block_dim{1, 1, 1}, grid_dim{1, 1, 1};

namespace {

const char* g_kernel = nullptr;  // the kernel running, once its first thread has started
bool g_in_grid = false;

enum class Wait { None, Block, Warp, Done };

struct Thread {
  void* sp = nullptr;  // saved stack pointer while switched out
  Wait wait = Wait::None;
  uint3 idx{0, 0, 0};
  int linear = 0;
  const char* site = nullptr;  // the __syncthreads it waits at
};

constexpr size_t kStack = 256 * 1024;

struct BlockRun {
  std::vector<Thread> threads;
  std::vector<char> stacks;
  void* scheduler = nullptr;
  Thread* current = nullptr;
  const std::function<void()>* body = nullptr;
  // Warp exchange slots: value per lane, and who has read in the current round.
  std::vector<uint64_t> slots;
  unsigned epoch = 0;                // __syncthreads passed by the block
  std::vector<unsigned> warp_epochs;  // shuffle rounds passed by each warp
} g_run;

enum class Order { Forward, Reverse, Random };
Order g_order = Order::Forward;
std::mt19937 g_rng(1234);

// A fresh thread starts here (entered by the `ret` of emu_switch_stack) and never returns.
[[noreturn]] void entry() {
  (*g_run.body)();
  Thread* t = g_run.current;
  t->wait = Wait::Done;
  void* dead = nullptr;
  emu_switch_stack(&dead, g_run.scheduler);
  std::abort();
}

void yield(Wait w) {
  Thread* t = g_run.current;
  t->wait = w;
  emu_switch_stack(&t->sp, g_run.scheduler);
}

// A stack that emu_switch_stack can "return" into: six zero registers, then entry's address,
// then a fake return address, with the alignment a called function expects.
void* fresh_stack(char* base, size_t size) {
  uintptr_t top = (reinterpret_cast<uintptr_t>(base) + size) & ~uintptr_t{15};
  void** sp = reinterpret_cast<void**>(top);
  *--sp = nullptr;                                   // entry's return address (never used)
  *--sp = reinterpret_cast<void*>(&entry);           // popped by ret
  for (int i = 0; i < 6; ++i) *--sp = nullptr;       // rbp, rbx, r12..r15
  return sp;
}

// The order for the next launch: EMU_ORDER's, or the next in the rotation.
Order next_order() {
  static const std::string fixed = std::getenv("EMU_ORDER") ? std::getenv("EMU_ORDER") : "";
  static unsigned launches = 0;
  if (fixed == "forward") return Order::Forward;
  if (fixed == "reverse") return Order::Reverse;
  if (fixed == "random") return Order::Random;
  if (!fixed.empty()) {
    std::fprintf(stderr, "emu: EMU_ORDER must be forward, reverse or random, not '%s'\n", fixed.c_str());
    std::abort();
  }
  return static_cast<Order>(launches++ % 3);
}

std::vector<int> run_order(int n) {
  std::vector<int> v(n);
  for (int i = 0; i < n; ++i) v[i] = i;
  if (g_order == Order::Reverse) std::reverse(v.begin(), v.end());
  if (g_order == Order::Random) std::shuffle(v.begin(), v.end(), g_rng);
  return v;
}

// Every thread waiting at __syncthreads must wait at the same one.
void check_sites() {
  const Thread* first = nullptr;
  for (const Thread& t : g_run.threads) {
    if (t.wait != Wait::Block) continue;
    if (!first) first = &t;
    else if (std::strcmp(first->site, t.site) != 0) {
      die(std::string("__syncthreads reached at different call sites by one block: thread ") +
          std::to_string(first->linear) + " at " + first->site + ", thread " + std::to_string(t.linear) + " at " +
          t.site + " (divergent barriers are undefined on a GPU)");
    }
  }
}

void run_block(const dim3& block) {
  const int n = static_cast<int>(block.x * block.y * block.z);
  g_run.threads.assign(n, Thread{});
  if (g_run.stacks.size() < n * kStack) g_run.stacks.resize(n * kStack);
  g_run.slots.assign(n, 0);
  g_run.epoch = 0;
  g_run.warp_epochs.assign((n + 31) / 32, 0);
  shared_block_begin();
  for (int i = 0; i < n; ++i) {
    Thread& t = g_run.threads[i];
    t.linear = i;
    t.idx = uint3{i % block.x, (i / block.x) % block.y, i / (block.x * block.y)};
    t.sp = fresh_stack(g_run.stacks.data() + i * kStack, kStack);
  }
  const int warps = (n + 31) / 32;
  for (;;) {
    for (int i : run_order(n)) {
      Thread& t = g_run.threads[i];
      if (t.wait != Wait::None) continue;
      g_run.current = &t;
      thread_idx = t.idx;
      emu_switch_stack(&g_run.scheduler, t.sp);
    }
    // Everyone is blocked or done: release the complete barriers.
    int done = 0, at_block = 0;
    for (const Thread& t : g_run.threads) {
      done += t.wait == Wait::Done;
      at_block += t.wait == Wait::Block;
    }
    if (done == n) break;
    bool released = false;
    if (at_block > 0) {
      if (at_block + done != n) {
        // Some threads wait at a warp barrier while others wait at __syncthreads: keep going
        // with the warps below; if nothing is released that is a deadlock.
      } else if (done > 0) {
        die("__syncthreads reached after some threads of the block exited");
      } else {
        check_sites();
        for (Thread& t : g_run.threads) t.wait = Wait::None;
        ++g_run.epoch;
        released = true;
      }
    }
    for (int w = 0; w < warps; ++w) {
      int at_warp = 0, lanes = 0, exited = 0;
      for (int l = w * 32; l < std::min(n, w * 32 + 32); ++l) {
        ++lanes;
        at_warp += g_run.threads[l].wait == Wait::Warp;
        exited += g_run.threads[l].wait == Wait::Done;
      }
      if (at_warp == 0) continue;
      if (at_warp + exited == lanes && exited > 0) die("warp shuffle with exited lanes (full mask)");
      if (at_warp == lanes && lanes == 32) {
        for (int l = w * 32; l < w * 32 + 32; ++l) g_run.threads[l].wait = Wait::None;
        ++g_run.warp_epochs[w];
        released = true;
      }
    }
    if (!released) die("deadlock: threads wait at barriers that can never complete");
  }
}

}  // namespace

std::string where() {
  if (!g_in_grid) return "host code";
  char buf[200];
  std::snprintf(buf, sizeof buf, "kernel %s, block (%u,%u,%u), thread (%u,%u,%u)", g_kernel ? g_kernel : "?",
                block_idx.x, block_idx.y, block_idx.z, thread_idx.x, thread_idx.y, thread_idx.z);
  return buf;
}

void die(const std::string& msg) {
  std::fprintf(stderr, "emu: %s (%s)\n", msg.c_str(), where().c_str());
  std::fflush(stderr);
  std::abort();
}

void enter_kernel(const char* name) { g_kernel = name; }

void misaligned(const void* p, size_t align, const char* type) {
  char buf[120];
  std::snprintf(buf, sizeof buf, "misaligned %s access at %p (needs %zu-byte alignment)", type, p, align);
  die(buf);
}

int current_thread() { return g_run.current ? g_run.current->linear : -1; }
unsigned block_epoch() { return g_run.epoch; }
unsigned warp_epoch(int warp) { return g_run.warp_epochs[warp]; }

void sync_block(const char* site) {
  g_run.current->site = site;
  yield(Wait::Block);
}

int lane() { return g_run.current->linear % 32; }

uint64_t exchange(uint64_t mine, int src, unsigned mask) {
  if (mask != 0xffffffffu) die("partial-mask shuffles are not emulated");
  const int me = g_run.current->linear, base = me - me % 32;
  g_run.slots[me] = mine;
  yield(Wait::Warp);  // every lane has written
  const uint64_t r = g_run.slots[base + src];
  yield(Wait::Warp);  // every lane has read: the slots may be reused
  return r;
}

bool launch_config_ok(dim3 grid, dim3 block) {
  const uint64_t threads = uint64_t{block.x} * block.y * block.z;
  return !(threads == 0 || threads > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 2147483647u ||
           grid.y > 65535 || grid.z > 65535 || block.z > 64);
}

cudaError_t run_grid(dim3 grid, dim3 block, const std::function<void()>& body) {
  if (!launch_config_ok(grid, block)) {
    set_last_error(cudaErrorInvalidConfiguration);
    return cudaErrorInvalidConfiguration;
  }
  std::lock_guard<std::recursive_mutex> lock(device_lock());
  grid_dim = grid;
  block_dim = block;
  g_run.body = &body;
  g_order = next_order();
  g_kernel = nullptr;
  g_in_grid = true;
  shared_launch_begin();
  device_launch_begin();
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        block_idx = uint3{x, y, z};
        run_block(block);
        device_block_end(block_idx);
      }
  g_run.current = nullptr;
  // EMU_TRACE_KERNELS=1 names every grid as it finishes: what a step launches, in order.
  static const bool trace = std::getenv("EMU_TRACE_KERNELS") != nullptr;
  if (trace) std::fprintf(stderr, "emu: kernel %s <<<(%u,%u,%u),(%u,%u,%u)>>>\n", g_kernel ? g_kernel : "?", grid.x,
                          grid.y, grid.z, block.x, block.y, block.z);
  device_launch_end();
  shared_launch_end();
  g_in_grid = false;
  return cudaSuccess;
}

}  // namespace emu

