// Emulated shared memory: one arena (static __shared__ arrays are at most 48 KiB a block), with each
// launch's variables placed in it in the order threads first reach them. Filled with NaN bytes at
// every block's start, so a read of a word no thread of this block wrote yields NaN instead of
// the zero or the previous block's value that a C++ static would hold.
//
// EMU_RACECHECK=1 checks every access, as compute-sanitizer's racecheck does: the arena is made
// inaccessible, each access faults, is recorded (thread, read or write, epochs), and the
// instruction is single-stepped with the page open. Two threads touching a word, one of them
// writing, with no __syncthreads between them (or, within a warp, no shuffle) is a hazard; so is
// reading a word that no thread of the block has written. Hazards are printed with the kernel,
// block, thread and word, and the process aborts when the launch ends. It is slow (two signals
// per access): meant for small shapes and the emulator's tests. Accesses are recorded at the
// faulting address; the rest of a float2/float4 access is seen only when it changes the words.
#include <signal.h>
#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "internal.h"

namespace emu {
namespace {

constexpr size_t kPage = 4096;
constexpr size_t kLimit = 48 * 1024;                 // static shared memory a block may declare
constexpr size_t kArena = kLimit + kPage;             // one page beyond, never accessible
constexpr size_t kWords = kLimit / 4;

char* arena() {
  static char* a = [] {
    void* p = mmap(nullptr, kArena, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) std::abort();
    mprotect(static_cast<char*>(p) + kLimit, kPage, PROT_NONE);
    return static_cast<char*>(p);
  }();
  return a;
}

unsigned g_generation = 0;  // launches so far: a variable placed in an older launch is placed again
size_t g_used = 0;          // bytes placed in this launch
bool g_racecheck = false;

struct Shadow {
  int writer = -1, reader = -1;
  unsigned write_epoch = 0, write_warp_epoch = 0, read_epoch = 0, read_warp_epoch = 0;
  bool other_reader = false;  // a second thread read it in read_epoch
};
std::vector<Shadow> g_shadow;
long g_hazards = 0;
constexpr long kPrinted = 20;

// The single-stepped access.
struct Step {
  char* page = nullptr;
  char* addr = nullptr;
  bool write = false;
  unsigned char before[32];
};
Step g_step;

// The bytes after the access's address that one instruction may change, within its page.
size_t step_span() { return std::min<size_t>(sizeof g_step.before, g_step.page + kPage - g_step.addr); }

void set_access(int prot) { mprotect(arena(), kLimit, prot); }

// True when the access by `thread` now cannot be ordered after the one recorded as (t, epoch, warp_epoch).
bool unordered(int t, unsigned epoch, unsigned wepoch) {
  const int me = current_thread();
  if (t < 0 || t == me || epoch != block_epoch()) return false;
  return !(t / 32 == me / 32 && wepoch != warp_epoch(me / 32));
}

void hazard(const char* kind, size_t word, int other) {
  ++g_hazards;
  if (g_hazards > kPrinted) return;
  std::fprintf(stderr, "emu racecheck: %s hazard at shared word %zu (byte %zu): %s; the other thread is %d\n", kind,
               word, word * 4, where().c_str(), other);
}

void record(size_t word, bool write) {
  if (word >= g_shadow.size()) return;
  Shadow& s = g_shadow[word];
  const int me = current_thread();
  const unsigned e = block_epoch(), we = warp_epoch(me / 32);
  if (write) {
    if (unordered(s.writer, s.write_epoch, s.write_warp_epoch)) hazard("write-after-write", word, s.writer);
    if (unordered(s.reader, s.read_epoch, s.read_warp_epoch)) hazard("write-after-read", word, s.reader);
    else if (s.other_reader && s.read_epoch == e) hazard("write-after-read", word, -1);
    s.writer = me;
    s.write_epoch = e;
    s.write_warp_epoch = we;
  } else {
    if (s.writer < 0) {
      ++g_hazards;
      if (g_hazards <= kPrinted)
        std::fprintf(stderr, "emu racecheck: read of uninitialized shared word %zu (byte %zu): %s\n", word, word * 4,
                     where().c_str());
    } else if (unordered(s.writer, s.write_epoch, s.write_warp_epoch)) {
      hazard("read-after-write", word, s.writer);
    }
    if (s.read_epoch == e && s.reader >= 0 && s.reader != me) s.other_reader = true;
    if (s.read_epoch != e) s.other_reader = false;
    s.reader = me;
    s.read_epoch = e;
    s.read_warp_epoch = we;
  }
}

}  // namespace

void* shared_alloc(size_t bytes, size_t align, unsigned* generation, size_t* offset) {
  if (*generation != g_generation) {
    const size_t at = (g_used + align - 1) / align * align;
    if (at + bytes > kLimit) die("more than 48 KiB of static shared memory in one block");
    *offset = at;
    *generation = g_generation;
    g_used = at + bytes;
  }
  return arena() + *offset;
}

void* shared_base() { return arena(); }

void shared_launch_begin() {
  static const bool racecheck = [] {
    const char* v = std::getenv("EMU_RACECHECK");
    return v && *v && std::string(v) != "0";
  }();
  g_racecheck = racecheck;
  ++g_generation;
  g_used = 0;
  g_hazards = 0;
}

void shared_block_begin() {
  set_access(PROT_READ | PROT_WRITE);
  // The whole arena: this launch's variables may not all be placed yet.
  std::memset(arena(), 0xff, kLimit);
  if (g_racecheck) {
    g_shadow.assign(kWords, Shadow{});
    set_access(PROT_NONE);
  }
}

void shared_launch_end() {
  if (g_racecheck) set_access(PROT_READ | PROT_WRITE);
  if (g_hazards > 0) die(std::to_string(g_hazards) + " shared-memory hazard(s) in this launch (see above)");
}

bool shared_fault(void* addr, bool write, ucontext_t* uc) {
  char* a = static_cast<char*>(addr);
  if (a < arena() || a >= arena() + kArena) return false;
  if (a >= arena() + kLimit) die("shared-memory access past the 48 KiB a block may declare");
  if (!g_racecheck) return false;
  record(static_cast<size_t>(a - arena()) / 4, write);
  g_step.page = reinterpret_cast<char*>(reinterpret_cast<uintptr_t>(a) & ~(kPage - 1));
  g_step.addr = a;
  g_step.write = write;
  mprotect(g_step.page, kPage, PROT_READ | PROT_WRITE);
  std::memcpy(g_step.before, a, step_span());
  request_single_step(uc);
  return true;
}

void shared_step_done(ucontext_t* uc) {
  end_single_step(uc);
  if (g_step.write) {
    // Words after the first that the access changed were written too (float2/float4 stores).
    const size_t span = step_span();
    for (size_t i = 4; i + 4 <= span; i += 4) {
      if (std::memcmp(g_step.before + i, g_step.addr + i, 4) != 0) record((g_step.addr + i - arena()) / 4, true);
    }
  }
  mprotect(g_step.page, kPage, PROT_NONE);
}

}  // namespace emu
