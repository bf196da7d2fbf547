// The GEMM micro-kernel and the register/cache blocking built around it (see gemm_driver.h).
#pragma once
#include <cstdint>

namespace kg::cpu {

// One micro-tile of C is kMR x kNR: 6 x 16 floats = 12 AVX accumulators, which with the two B
// vectors and the broadcast A value uses 15 of the 16 ymm registers.
constexpr int kMR = 6;
constexpr int kNR = 16;

// Cache blocking. A k-block of one B micro-panel (kKC x kNR = 32 KiB) stays in L1 while the
// micro-kernel sweeps the A block (kMC x kKC = 192 KiB, in L2); each thread's packed B panel
// (kKC x kNC, up to 8 MiB) lives in L3. C is read and written once per k block, so a long k block
// halves that traffic: kKC 256 -> 512 took SGEMM 2048^3 from 205 to 219 GFLOP/s on one core with
// AVX-512, although the AVX-512 kernel's group of B micro-panels (up to 128 KiB) then overflows
// a 48 KiB L1.
constexpr int64_t kKC = 512;
constexpr int64_t kMC = 96;  // a multiple of kMR
constexpr int64_t kNC = 4096;

// acc[t * kMR * kNR + r * kNR + c] = sum_p a(r, p) * b[t * kc * kNR + p * kNR + c] over p < kc,
// for the tiles t < g <= kGroup of g adjacent B micro-panels (kc x kNR each, kc * kNR floats
// apart, 64-byte aligned) with one A micro-panel, for its first `rows` (<= kMR) rows; acc's
// other rows hold garbage. A is either a packed micro-panel (kc x kMR), a(r, p) = a[p * kMR + r],
// or (_rows_group) rows of a row-major A read in place, a(r, p) = a[r * lda + p].
// Each element of C gets the same operations whichever the grouping, the row count, the kind of
// A or the instruction set (AVX-512 and AVX2 agree bit for bit), so neither changes a result.
// With AVX-512 a group is one kernel: each broadcast A value then feeds g FMAs instead of one,
// which takes the kernel from bound by loads to bound by FMAs.
constexpr int kGroup = 4;
void gemm_micro_kernel_group(int g, int64_t kc, const float* a, const float* b, float* acc, int rows);
void gemm_micro_kernel_rows_group(int g, int64_t kc, const float* a, int64_t lda, int rows, const float* b, float* acc);
// The same with a packed A and B read in place: tile t's row p is base[off[p] + t * kNR + c], c < kNR
// (no alignment needed).
void gemm_micro_kernel_shifted_group(int g, int64_t kc, const float* a, const float* base, const int64_t* off,
                                     float* acc, int rows);
// The same with packed B micro-panels and A's rows read in place through an offset table:
// a(r, p) = a[r][off[p]] for r < rows.
void gemm_micro_kernel_offset_rows_group(int g, int64_t kc, const float* const* a, int rows, const int64_t* off,
                                         const float* b, float* acc);

}  // namespace kg::cpu
