// dense_block_infer: see inference_blocks.h.
#include "inference_blocks.h"

#include "kg/ops.h"

namespace kg::cpu {

void dense_block_infer(int64_t m, int64_t n, int64_t k, const float* x, const float* w, const float* bias,
                       const BnInference* bn, bool relu, float* y) {
  if (m == 0 || n == 0) return;
  linear_forward(m, n, k, x, w, bias, y);
  const BnShape s{m, n, 1};
  if (bn && relu) batchnorm_relu_forward_infer(s, y, bn->gamma, bn->beta, bn->mean, bn->var, bn->eps, y);
  else if (bn) batchnorm_forward_infer(s, y, bn->gamma, bn->beta, bn->mean, bn->var, bn->eps, y);
  else if (relu) relu_forward(m * n, y, y);
}

}  // namespace kg::cpu
