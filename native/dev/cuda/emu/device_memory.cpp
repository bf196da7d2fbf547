// Emulated device memory. Each cudaMalloc gets pages of its own, placed right before a PROT_NONE
// guard page, so a kernel reading or writing past the end of a buffer faults at once. Outside
// launches and copies the buffers themselves are PROT_NONE too: host code that dereferences a
// device pointer faults, as it would on a GPU, instead of quietly reading host memory.
//
// During a launch the buffers are read-only. A block's first write to a page faults; the page's
// image is saved and the page opened for the rest of the block. When the block ends, the words
// that changed are the block's writes, and a word another block of the same launch already wrote
// is reported: blocks run in no fixed order on a GPU, so such a result depends on timing. A
// write that leaves a word's bits unchanged is not seen; reads of another block's writes are not
// checked.
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <unordered_map>
#include <vector>

#include "internal.h"

namespace emu {
namespace {

constexpr size_t kPage = 4096;
constexpr size_t kWordsPerPage = kPage / 4;

struct Mapping {
  char* base;       // first page
  size_t length;    // data pages + the guard page
  char* ptr;        // what cudaMalloc returned (the buffer ends at the guard page)
  size_t bytes;     // what was asked for
  char* data_end() const { return base + length - kPage; }
};

std::map<uintptr_t, Mapping> g_mappings;  // by base address
size_t g_total = size_t{80} << 30;         // a pretend 80 GiB device
size_t g_used = 0;

// Launch state: what the current block has dirtied, and who wrote each word so far.
bool g_in_launch = false;
bool g_track_writes = true;  // EMU_GLOBAL_RACES=0 turns block-write tracking off (faster)
struct Dirty {
  char* page;
  std::unique_ptr<char[]> image;
};
std::vector<Dirty> g_dirty;
std::unordered_map<uintptr_t, std::vector<int64_t>> g_owner;  // page -> block that wrote each word

const Mapping* find(const void* addr) {
  const auto a = reinterpret_cast<uintptr_t>(addr);
  auto it = g_mappings.upper_bound(a);
  if (it == g_mappings.begin()) return nullptr;
  --it;
  const Mapping& m = it->second;
  return a < reinterpret_cast<uintptr_t>(m.base) + m.length ? &m : nullptr;
}

void protect(const Mapping& m, int prot) {
  if (m.data_end() > m.base) mprotect(m.base, m.data_end() - m.base, prot);
}

std::string describe(const Mapping& m, const void* addr) {
  const auto off = static_cast<const char*>(addr) - m.ptr;
  char buf[160];
  std::snprintf(buf, sizeof buf, "%p, byte %" PRIdPTR " of a %zu-byte device buffer", addr, off, m.bytes);
  return buf;
}

int64_t linear_block(const uint3& b) {
  return (static_cast<int64_t>(b.z) * grid_dim.y + b.y) * grid_dim.x + b.x;
}
std::string block_name(int64_t linear) {
  const int64_t x = linear % grid_dim.x, y = linear / grid_dim.x % grid_dim.y, z = linear / grid_dim.x / grid_dim.y;
  return "(" + std::to_string(x) + "," + std::to_string(y) + "," + std::to_string(z) + ")";
}

bool env_off(const char* name) {
  const char* v = std::getenv(name);
  return v && std::string(v) == "0";
}

}  // namespace

std::recursive_mutex& device_lock() {
  static std::recursive_mutex m;
  return m;
}

cudaError_t device_malloc(void** p, size_t bytes) {
  std::lock_guard<std::recursive_mutex> lock(device_lock());
  if (bytes > g_total - g_used) return cudaErrorMemoryAllocation;
  const size_t rounded = (bytes + 15) / 16 * 16;  // float4 alignment is all the kernels need
  const size_t pages = (rounded + kPage - 1) / kPage;
  const size_t length = (pages + 1) * kPage;
  void* base = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) return cudaErrorMemoryAllocation;
  Mapping m{static_cast<char*>(base), length, nullptr, bytes};
  m.ptr = m.data_end() - rounded;
  std::memset(m.ptr, 0xff, rounded);  // NaN garbage, like fresh device memory may hold
  mprotect(m.data_end(), kPage, PROT_NONE);
  protect(m, g_in_launch ? PROT_READ : PROT_NONE);
  g_mappings[reinterpret_cast<uintptr_t>(base)] = m;
  g_used += bytes;
  *p = m.ptr;
  return cudaSuccess;
}

cudaError_t device_free(void* p) {
  std::lock_guard<std::recursive_mutex> lock(device_lock());
  const Mapping* m = find(p);
  if (!m || m->ptr != p) return cudaErrorInvalidValue;
  g_used -= std::min(g_used, m->bytes);
  munmap(m->base, m->length);
  g_mappings.erase(reinterpret_cast<uintptr_t>(m->base));
  return cudaSuccess;
}

void device_memmove(void* dst, const void* src, size_t bytes) {
  std::lock_guard<std::recursive_mutex> lock(device_lock());
  const Mapping* md = find(dst);
  const Mapping* ms = find(src);
  if (md) protect(*md, PROT_READ | PROT_WRITE);
  if (ms) protect(*ms, PROT_READ | PROT_WRITE);
  std::memmove(dst, src, bytes);
  if (md) protect(*md, PROT_NONE);
  if (ms) protect(*ms, PROT_NONE);
}

size_t device_total() { return g_total; }
size_t device_used() {
  std::lock_guard<std::recursive_mutex> lock(device_lock());
  return g_used;
}

void device_launch_begin() {
  static const bool track = !env_off("EMU_GLOBAL_RACES");
  g_track_writes = track;
  g_in_launch = true;
  for (auto& kv : g_mappings) protect(kv.second, g_track_writes ? PROT_READ : PROT_READ | PROT_WRITE);
}

void device_block_end(const uint3& block) {
  const int64_t me = linear_block(block);
  for (Dirty& d : g_dirty) {
    const auto* now = reinterpret_cast<const uint32_t*>(d.page);
    const auto* before = reinterpret_cast<const uint32_t*>(d.image.get());
    std::vector<int64_t>* owner = nullptr;
    for (size_t w = 0; w < kWordsPerPage; ++w) {
      if (now[w] == before[w]) continue;
      if (!owner) {
        owner = &g_owner[reinterpret_cast<uintptr_t>(d.page)];
        if (owner->empty()) owner->assign(kWordsPerPage, -1);
      }
      int64_t& o = (*owner)[w];
      if (o >= 0 && o != me) {
        const void* addr = d.page + 4 * w;
        const Mapping* m = find(addr);
        die("blocks " + block_name(o) + " and " + block_name(me) + " of one launch both wrote the global word at " +
            (m ? describe(*m, addr) : std::string("?")) + ": blocks run in no fixed order, so the result depends on timing");
      }
      o = me;
    }
    mprotect(d.page, kPage, PROT_READ);
  }
  g_dirty.clear();
}

void device_launch_end() {
  g_dirty.clear();
  g_owner.clear();
  for (auto& kv : g_mappings) protect(kv.second, PROT_NONE);
  g_in_launch = false;
}

bool device_fault(void* addr, bool write) {
  const Mapping* m = find(addr);
  if (!m) return false;
  char* a = static_cast<char*>(addr);
  if (a >= m->data_end() || a < m->ptr) {
    if (g_in_launch) die(std::string("invalid ") + (write ? "write" : "read") + " at " + describe(*m, addr) + ": past its end");
    print_host_backtrace();
    die(std::string("host code ") + (write ? "wrote" : "read") + " device memory at " + describe(*m, addr) + " (past its end)");
  }
  if (!g_in_launch) {
    print_host_backtrace();
    die(std::string("host code ") + (write ? "wrote" : "read") + " device memory at " + describe(*m, addr) +
        " outside a kernel or a copy (on a GPU this pointer is not host-accessible)");
  }
  if (!write) return false;  // a read of a readable page cannot fault: not ours after all
  char* page = reinterpret_cast<char*>(reinterpret_cast<uintptr_t>(a) & ~(kPage - 1));
  Dirty d{page, std::unique_ptr<char[]>(new char[kPage])};
  std::memcpy(d.image.get(), page, kPage);
  g_dirty.push_back(std::move(d));
  mprotect(page, kPage, PROT_READ | PROT_WRITE);
  return true;
}

}  // namespace emu
