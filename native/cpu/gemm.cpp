// C = alpha * op(A) * op(B) + beta * C on row-major matrices: the packed, blocked driver of
// gemm_driver.h, fed straight from A and B with the strides of the requested transposes.
#include <algorithm>

#include "gemm_driver.h"
#include "gemm_pack.h"
#include "kg/ops.h"

namespace kg::cpu {
namespace {

// C = beta * C, with beta == 0 meaning "overwrite with zeros" (C may hold garbage).
void scale_matrix(int64_t count, float beta, float* c) {
  parallel_range(count, kElementwiseGrain, [&](int64_t begin, int64_t end) {
    if (beta == 0.0f) std::fill(c + begin, c + end, 0.0f);
    else for (int64_t i = begin; i < end; ++i) c[i] *= beta;
  });
}

}  // namespace

void gemm(bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha, const float* A,
          const float* B, float beta, float* C) {
  if (m <= 0 || n <= 0) return;
  if (k == 0 || alpha == 0.0f) {  // no product term (BLAS semantics: A and B are not read)
    scale_matrix(m * n, beta, C);
    return;
  }
  // op(A)(i, p) = A[i * a_rs + p * a_ps] and op(B)(p, j) = B[p * b_ps + j * b_cs].
  const int64_t a_rs = transA ? 1 : k, a_ps = transA ? m : 1;
  const int64_t b_cs = transB ? k : 1, b_ps = transB ? 1 : n;
  run_gemm(
      m, n, k, true,
      [&](float* dst, int64_t i0, int64_t rows, int64_t p0, int64_t kc) {
        pack_panels<kMR>(dst, A + i0 * a_rs + p0 * a_ps, a_rs, a_ps, rows, kc);
      },
      [&](float* dst, int64_t p0, int64_t kc, int64_t j0, int64_t cols) {
        pack_panels<kNR>(dst, B + j0 * b_cs + p0 * b_ps, b_cs, b_ps, cols, kc);
      },
      DenseStore{C, n, alpha, beta});
}

}  // namespace kg::cpu
