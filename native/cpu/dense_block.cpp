// dense_block_infer: see inference_blocks.h.
#include "inference_blocks.h"

#include "kg/ops.h"
#include "parallel.h"

namespace kg::cpu {

void dense_block_infer(int64_t m, int64_t n, int64_t k, const float* x, const float* w, const float* bias,
                       const BnInference* bn, bool relu, float* y) {
  if (m == 0 || n == 0) return;
  gemm(false, true, m, n, k, 1.0f, x, w, 0.0f, y);
  if (bias) {
    parallel_range(m * n, kElementwiseGrain, [&](int64_t begin, int64_t end) {
      for (int64_t e = begin; e < end; ++e) y[e] += bias[e % n];
    });
  }
  const BnShape s{m, n, 1};
  if (bn && relu) batchnorm_relu_forward_infer(s, y, bn->gamma, bn->beta, bn->mean, bn->var, bn->eps, y);
  else if (bn) batchnorm_forward_infer(s, y, bn->gamma, bn->beta, bn->mean, bn->var, bn->eps, y);
  else if (relu) relu_forward(m * n, y, y);
}

}  // namespace kg::cpu
