// The GEMM micro-kernel and the register/cache blocking built around it (see gemm_driver.h).
#pragma once
#include <cstdint>

namespace kg::cpu {

// One micro-tile of C is kMR x kNR: 6 x 16 floats = 12 AVX accumulators, which with the two B
// vectors and the broadcast A value uses 15 of the 16 ymm registers.
constexpr int kMR = 6;
constexpr int kNR = 16;

// Cache blocking. A k-block of one B micro-panel (kKC x kNR = 16 KiB) stays in L1 while the
// micro-kernel sweeps the A block (kMC x kKC = 96 KiB, in L2); the packed B panel (kKC x kNC,
// up to 4 MiB) lives in L3 and is shared by all threads.
constexpr int64_t kKC = 256;
constexpr int64_t kMC = 96;  // a multiple of kMR
constexpr int64_t kNC = 4096;

// acc[r * kNR + c] = sum_p a[p * kMR + r] * b[p * kNR + c] over p < kc, for packed micro-panels
// a (kc x kMR) and b (kc x kNR, 64-byte aligned). acc is overwritten.
void gemm_micro_kernel(int64_t kc, const float* a, const float* b, float* acc);

// The same with A read in place instead of from a packed panel: a(r, p) = a[r * lda + p] for the
// tile's rows r < rows (<= kMR). acc's rows from `rows` on hold garbage. Each element of acc gets
// the same operations as from the packed panel of those rows, so the two agree bit for bit.
void gemm_micro_kernel_rows(int64_t kc, const float* a, int64_t lda, int rows, const float* b, float* acc);

// Two adjacent B micro-panels at once: acc0 = the tile of b0, acc1 = the tile of b1, each with the
// operations gemm_micro_kernel (or _rows) would give it, so pairing never changes a result. With
// AVX-512 the pair is one kernel: each broadcast A value then feeds two FMAs instead of one, which
// takes the kernel from bound by loads to bound by FMAs. Other builds run the two tiles in turn.
void gemm_micro_kernel_pair(int64_t kc, const float* a, const float* b0, const float* b1, float* acc0, float* acc1);
void gemm_micro_kernel_rows_pair(int64_t kc, const float* a, int64_t lda, int rows, const float* b0, const float* b1,
                                 float* acc0, float* acc1);

}  // namespace kg::cpu
