// Emulated device memory: every cudaMalloc is placed right before a PROT_NONE page, so a kernel
// reading or writing past the end of a buffer faults at once (the handler names the address).
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include "cuda_runtime.h"
#include "internal.h"

namespace emu {
namespace {

struct Mapping {
  void* base;
  size_t length;
};
std::map<void*, Mapping> g_mappings;
std::mutex g_mem_mutex;
constexpr size_t kPage = 4096;
size_t g_total = size_t{80} << 30;  // a pretend 80 GiB device
size_t g_used = 0;

void on_segv(int, siginfo_t* info, void*) {
  char msg[200];
  const int len = std::snprintf(msg, sizeof msg,
                                "emu: invalid memory access at %p (past the end of a device buffer?) in block "
                                "%u thread %u\n",
                                info->si_addr, block_idx.x, thread_idx.x);
  if (write(2, msg, len) < 0) {
  }
  _exit(3);
}

struct Init {
  Init() {
    struct sigaction sa {};
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    static std::vector<char> alt(1 << 16);
    stack_t ss{};
    ss.ss_sp = alt.data();
    ss.ss_size = alt.size();
    sigaltstack(&ss, nullptr);
    sigaction(SIGSEGV, &sa, nullptr);
    sigaction(SIGBUS, &sa, nullptr);
  }
} g_init;

}  // namespace

cudaError_t device_malloc(void** p, size_t bytes) {
  std::lock_guard<std::mutex> lock(g_mem_mutex);
  if (bytes > g_total - g_used) return cudaErrorMemoryAllocation;
  const size_t rounded = (bytes + 15) / 16 * 16;  // float4 alignment is all the kernels need
  const size_t pages = (rounded + kPage - 1) / kPage;
  const size_t length = (pages + 1) * kPage;
  void* base = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) return cudaErrorMemoryAllocation;
  char* guard = static_cast<char*>(base) + pages * kPage;
  mprotect(guard, kPage, PROT_NONE);
  void* ptr = guard - rounded;
  std::memset(ptr, 0xff, rounded);  // NaN garbage, like fresh device memory may hold
  g_mappings[ptr] = Mapping{base, length};
  g_used += bytes;
  *p = ptr;
  return cudaSuccess;
}

cudaError_t device_free(void* p) {
  std::lock_guard<std::mutex> lock(g_mem_mutex);
  auto it = g_mappings.find(p);
  if (it == g_mappings.end()) return cudaErrorInvalidValue;
  g_used -= std::min(g_used, it->second.length - kPage);
  munmap(it->second.base, it->second.length);
  g_mappings.erase(it);
  return cudaSuccess;
}

void device_memmove(void* dst, const void* src, size_t bytes) { std::memmove(dst, src, bytes); }

size_t device_total() { return g_total; }
size_t device_used() {
  std::lock_guard<std::mutex> lock(g_mem_mutex);
  return g_used;
}

}  // namespace emu
