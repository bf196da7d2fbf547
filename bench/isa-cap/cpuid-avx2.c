// An AVX2-only CPU for whatever runs with this library preloaded (LD_PRELOAD), on an AVX-512 CPU.
//
// Why: `npm run bench -- --isa avx2` compares every side as on a CPU without AVX-512. kernelgrad,
// OpenBLAS, oneDNN and ATen each take a variable that narrows their instruction set, but
// onnxruntime's MLAS reads the CPUID instruction and has no such switch. So the process is made to
// see a CPU without AVX-512: Linux's CPUID faulting (arch_prctl ARCH_SET_CPUID, where the CPU and
// kernel support it: the `cpuid_fault` flag in /proc/cpuinfo) turns every CPUID into a SIGSEGV,
// and the handler below answers it as the CPU would, with the AVX-512 feature bits cleared.
//
// The setting is per thread and inherited by threads created later; the constructor runs before
// main, so every thread of the process has it. The dynamic loader has read CPUID by then (glibc's
// own string functions are narrowed by GLIBC_TUNABLES instead, which the bench sets too).
//
// Other SIGSEGV handlers (Node's and V8's, for WebAssembly traps) are kept: `sigaction` is
// interposed so that they are recorded rather than installed, and a fault that is not a CPUID goes
// on to the recorded handler, or to the default action, as it would have without this library.
//
// Build: cc -O2 -shared -fPIC -o cpuid-avx2.so cpuid-avx2.c -ldl
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

typedef int (*sigaction_fn)(int, const struct sigaction*, struct sigaction*);

static sigaction_fn real_sigaction;
static struct sigaction next_segv;  // the SIGSEGV disposition the process asked for
static int active;

static int set_cpuid_faulting(int on) { return (int)syscall(SYS_arch_prctl, ARCH_SET_CPUID, on ? 0 : 1); }

// CPUID with faulting lifted for the one instruction.
static void real_cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
  set_cpuid_faulting(0);
  __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
  set_cpuid_faulting(1);
}

// The feature bits of an AVX2 CPU: everything AVX-512 (and AVX10, AMX) cleared.
static void mask_avx512(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
  if (leaf == 7 && sub == 0) {
    // EBX: F, DQ, IFMA, PF, ER, CD, BW, VL.
    r[1] &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 30) | (1u << 31));
    // ECX: VBMI, VBMI2, VNNI, BITALG, VPOPCNTDQ.
    r[2] &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
    // EDX: 4VNNIW, 4FMAPS, VP2INTERSECT, AMX-BF16, FP16, AMX-TILE, AMX-INT8.
    r[3] &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) | (1u << 25));
  } else if (leaf == 7 && sub == 1) {
    r[0] &= ~(1u << 5);   // EAX: AVX512_BF16
    r[3] &= ~(1u << 19);  // EDX: AVX10
  } else if (leaf == 0x24) {
    r[0] = r[1] = r[2] = r[3] = 0;  // the AVX10 leaf
  }
}

static void chain(int sig, siginfo_t* info, void* ctx) {
  if (next_segv.sa_flags & SA_SIGINFO) {
    if (next_segv.sa_sigaction) return next_segv.sa_sigaction(sig, info, ctx);
  } else if (next_segv.sa_handler != SIG_DFL && next_segv.sa_handler != SIG_IGN) {
    return next_segv.sa_handler(sig);
  }
  // The default action, restored: a fault's instruction runs again and ends the process; a signal
  // sent by kill or raise (si_code <= 0) is sent again, delivered as this handler returns.
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  real_sigaction(SIGSEGV, &dfl, NULL);
  if (info->si_code <= 0) raise(sig);
}

static void on_segv(int sig, siginfo_t* info, void* ctx) {
  ucontext_t* uc = (ucontext_t*)ctx;
  greg_t* g = uc->uc_mcontext.gregs;
  const unsigned char* ip = (const unsigned char*)g[REG_RIP];
  if (sig != SIGSEGV || info->si_code != SI_KERNEL || ip[0] != 0x0f || ip[1] != 0xa2) return chain(sig, info, ctx);
  uint32_t r[4];
  const uint32_t leaf = (uint32_t)g[REG_RAX], sub = (uint32_t)g[REG_RCX];
  real_cpuid(leaf, sub, r);
  mask_avx512(leaf, sub, r);
  g[REG_RAX] = r[0];
  g[REG_RBX] = r[1];
  g[REG_RCX] = r[2];
  g[REG_RDX] = r[3];
  g[REG_RIP] += 2;  // past the two-byte instruction
}

int sigaction(int sig, const struct sigaction* act, struct sigaction* old) {
  if (!real_sigaction) real_sigaction = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
  if (!active || sig != SIGSEGV) return real_sigaction(sig, act, old);
  if (old) *old = next_segv;
  if (act) next_segv = *act;
  return 0;
}

__attribute__((constructor)) static void install(void) {
  real_sigaction = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_segv;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  if (!real_sigaction || real_sigaction(SIGSEGV, &sa, &next_segv) != 0) return;
  if (set_cpuid_faulting(1) != 0) {
    real_sigaction(SIGSEGV, &next_segv, NULL);
    if (getenv("KG_CPUID_CAP_CHECK")) fprintf(stderr, "cpuid-avx2: no CPUID faulting here, nothing capped\n");
    return;
  }
  active = 1;
  if (getenv("KG_CPUID_CAP_CHECK")) {  // the bench's check: a CPUID of this process, answered above
    uint32_t a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(0));
    fprintf(stderr, "cpuid-avx2: AVX2 %s, AVX512F %s\n", (b >> 5) & 1 ? "on" : "off", (b >> 16) & 1 ? "on" : "off");
  }
}
