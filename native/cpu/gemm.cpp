// C = alpha * op(A) * op(B) + beta * C on row-major matrices: the packed, blocked driver of
// gemm_driver.h, fed straight from A and B with the strides of the requested transposes. The
// dense layer's forward (linear_forward) is the same product with its bias added where the
// tiles are written.
#include <algorithm>

#include "gemm_driver.h"
#include "gemm_pack.h"
#include "kg/ops.h"

namespace kg::cpu {
namespace {

// C (rows x n) = beta * C + bias, with beta == 0 meaning "overwrite" (C may hold garbage) and
// bias (one per column) optional.
void scale_matrix(int64_t rows, int64_t n, float beta, const float* bias, float* c) {
  parallel_range(rows * n, kElementwiseGrain, [&](int64_t begin, int64_t end) {
    if (beta == 0.0f) std::fill(c + begin, c + end, 0.0f);
    else for (int64_t i = begin; i < end; ++i) c[i] *= beta;
    if (bias) {
      for (int64_t i = begin; i < end; ++i) c[i] += bias[i % n];
    }
  });
}

// Rows of A per call of the small-m path below.
constexpr int64_t kDotRows = 2;
// Outputs per parallel task of the small-m path.
constexpr int64_t kDotColumnsPerTask = 16;

// C (m x n) = alpha * A (m x k) * B^T + beta * C for B stored n x k (a dense layer's weight) and
// m = M <= kDotRows: each element one dot product of two contiguous rows, J of them at a time so
// that J * M independent chains of 8 lanes hide the latency of the multiply-adds, summed in a fixed
// order. For a single input row the packed path would spend more time packing the whole of B (a
// strided transpose) than multiplying it.
template <int M, int J>
inline __attribute__((always_inline)) void dot_block(int64_t j, int64_t k, float alpha, const float* A,
                                                     const float* B, float beta, const float* bias, float* C,
                                                     int64_t n) {
  v8f acc[M][J] = {};
  int64_t p = 0;
  for (; p + 8 <= k; p += 8) {
    // Fully unrolled (M * J <= 8), so that the accumulators live in registers: left as a loop,
    // GCC kept them in memory and each multiply-add waited on a store and a reload.
    v8f a[M];
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) a[i] = load8(A + i * k + p);
#pragma GCC unroll 8
    for (int c = 0; c < J; ++c) {
      const v8f b = load8(B + (j + c) * k + p);
#pragma GCC unroll 8
      for (int i = 0; i < M; ++i) acc[i][c] += a[i] * b;
    }
  }
  for (int i = 0; i < M; ++i) {
    for (int c = 0; c < J; ++c) {
      const v8f& v = acc[i][c];
      float total = ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
      for (int64_t q = p; q < k; ++q) total += A[i * k + q] * B[(j + c) * k + q];
      float& out = C[i * n + j + c];
      float result = beta == 0.0f ? alpha * total : alpha * total + beta * out;
      if (bias) result += bias[j + c];
      out = result;
    }
  }
}

// J outputs at a time: M * J = 8 independent chains of multiply-adds, enough to keep two FMA
// units busy through their 4-cycle latency (4 chains for a single row left half the time idle).
// J changes which outputs run together, never an output's own sum.
template <int M>
inline __attribute__((always_inline)) void dot_rows(int64_t j0, int64_t j1, int64_t k, float alpha, const float* A,
                                                    const float* B, float beta, const float* bias, float* C,
                                                    int64_t n) {
  constexpr int J = 8 / M;
  int64_t j = j0;
  for (; j + J <= j1; j += J) dot_block<M, J>(j, k, alpha, A, B, beta, bias, C, n);
  for (; j < j1; ++j) dot_block<M, 1>(j, k, alpha, A, B, beta, bias, C, n);
}

// Outputs j0 .. j1 - 1 of every row, through the instance of dot_rows for m.
KG_MULTIVERSION void dot_columns(int64_t m, int64_t j0, int64_t j1, int64_t k, float alpha, const float* A,
                                 const float* B, float beta, const float* bias, float* C, int64_t n) {
  switch (m) {
    case 1: return dot_rows<1>(j0, j1, k, alpha, A, B, beta, bias, C, n);
    default: return dot_rows<kDotRows>(j0, j1, k, alpha, A, B, beta, bias, C, n);
  }
}

// C = alpha * op(A) * op(B) + beta * C + bias, bias one per column of C (or null). The bias is
// added to each element once its sum is complete: bitwise the GEMM followed by an addition.
void product(bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha, const float* A,
             const float* B, float beta, const float* bias, float* C) {
  if (m <= 0 || n <= 0) return;
  if (k == 0 || alpha == 0.0f) {  // no product term (BLAS semantics: A and B are not read)
    scale_matrix(m, n, beta, bias, C);
    return;
  }
  if (!transA && transB && m <= kDotRows) {
    const int64_t tasks = ceil_div(n, kDotColumnsPerTask);
    parallel_for(tasks, 2.0 * double(m) * double(n) * double(k) >= kGemmParallelFlops, [&](int64_t t) {
      dot_columns(m, t * kDotColumnsPerTask, std::min(n, (t + 1) * kDotColumnsPerTask), k, alpha, A, B, beta, bias,
                  C, n);
    });
    return;
  }
  // op(B)(p, j) = B[p * b_ps + j * b_cs]; op(A) is row-major (A itself) or A's transpose.
  const int64_t b_cs = transB ? k : 1, b_ps = transB ? 1 : n;
  const auto pack_b = [&](float* dst, int64_t p0, int64_t kc, int64_t j0, int64_t cols) {
    pack_panels<kNR>(dst, B + j0 * b_cs + p0 * b_ps, b_cs, b_ps, cols, kc);
  };
  const DenseStore store{C, n, alpha, beta, bias, m};
  if (!transA) return run_gemm(m, n, k, true, RowMajorA{A, k}, pack_b, store);
  run_gemm(
      m, n, k, true,
      [&](float* dst, int64_t i0, int64_t rows, int64_t p0, int64_t kc) {
        pack_panels<kMR>(dst, A + i0 + p0 * m, 1, m, rows, kc);
      },
      pack_b, store);
}

}  // namespace

void gemm(bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha, const float* A,
          const float* B, float beta, float* C) {
  product(transA, transB, m, n, k, alpha, A, B, beta, nullptr, C);
}

void linear_forward(int64_t m, int64_t n, int64_t k, const float* x, const float* w, const float* bias, float* y) {
  product(false, true, m, n, k, 1.0f, x, w, 0.0f, bias, y);
}

// The bias gradient is a separate column sum here: the CPU has no launch to save.
void linear_backward_weight(int64_t m, int64_t n, int64_t k, const float* dy, const float* x, float* dw, float* db) {
  gemm(true, false, n, k, m, 1.0f, dy, x, 0.0f, dw);
  if (db) reduce_sum(1, m, n, 1.0f, dy, db);
}

}  // namespace kg::cpu
