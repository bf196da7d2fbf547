// The emulator's fault handlers. Device memory and the shared-memory arena are made inaccessible
// (or read-only) on purpose, so that a kernel reading past a buffer, host code touching device
// memory, a block's writes or, under EMU_RACECHECK=1, every shared-memory access fault and can be
// checked. Such a fault is handled (or reported) here; every other fault belongs to the process
// (Node's own handlers, V8's WebAssembly traps) and is passed on to the handler installed before.
#include <execinfo.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "internal.h"

namespace emu {
namespace {

struct sigaction g_old_segv, g_old_bus, g_old_trap;
bool g_stepping = false;

void pass_on(int sig, siginfo_t* info, void* uc, const struct sigaction& old) {
  if (old.sa_flags & SA_SIGINFO) {
    if (old.sa_sigaction) old.sa_sigaction(sig, info, uc);
    return;
  }
  if (old.sa_handler == SIG_IGN) return;
  if (old.sa_handler == SIG_DFL) {
    // Restore the default action; returning re-executes the access, which then kills the process
    // as it would have without the emulator.
    signal(sig, SIG_DFL);
    return;
  }
  old.sa_handler(sig);
}

void on_fault(int sig, siginfo_t* info, void* ctx) {
  auto* uc = static_cast<ucontext_t*>(ctx);
  const bool write = (uc->uc_mcontext.gregs[REG_ERR] & 2) != 0;  // the page-fault error code
  if (shared_fault(info->si_addr, write, uc)) return;
  if (device_fault(info->si_addr, write)) return;
  pass_on(sig, info, ctx, sig == SIGBUS ? g_old_bus : g_old_segv);
}

void on_trap(int sig, siginfo_t* info, void* ctx) {
  auto* uc = static_cast<ucontext_t*>(ctx);
  if (!g_stepping) {
    pass_on(sig, info, ctx, g_old_trap);
    return;
  }
  shared_step_done(uc);
}

struct Install {
  Install() {
    struct sigaction sa {};
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &g_old_segv);
    sigaction(SIGBUS, &sa, &g_old_bus);
    sa.sa_sigaction = on_trap;
    sigaction(SIGTRAP, &sa, &g_old_trap);
  }
} g_install;

}  // namespace

// The trap flag: the CPU runs one instruction, then raises SIGTRAP.
void request_single_step(ucontext_t* uc) {
  g_stepping = true;
  uc->uc_mcontext.gregs[REG_EFL] |= 0x100;
}
void end_single_step(ucontext_t* uc) {
  g_stepping = false;
  uc->uc_mcontext.gregs[REG_EFL] &= ~0x100LL;
}

void print_host_backtrace() {
  void* frames[32];
  const int n = backtrace(frames, 32);
  std::fprintf(stderr, "emu: host stack:\n");
  backtrace_symbols_fd(frames, n, 2);
}

}  // namespace emu
