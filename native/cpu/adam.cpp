// The Adam/AdamW step, in place (ops.inc): one pass that reads param, grad, m and v and writes
// param, m and v, 28 bytes per element, so it runs at memory speed once the sqrt and the division
// are vectorized (the v3 clone does 8 lanes with vsqrtps and vdivps; this file is built with
// -fno-math-errno, without which GCC keeps a scalar sqrt to set errno).
#include <cmath>

#include "kg/ops.h"
#include "parallel.h"
#include "simd.h"

namespace kg::cpu {
namespace {

KG_MULTIVERSION
void adam_run(int64_t begin, int64_t end, AdamStep s, float* __restrict param, const float* __restrict grad,
              float* __restrict m, float* __restrict v) {
  const float keep = 1.0f - s.decay, b1 = s.beta1, b2 = s.beta2, c1 = 1.0f - s.beta1, c2 = 1.0f - s.beta2;
  for (int64_t i = begin; i < end; ++i) {
    const float p = param[i];
    const float g = grad[i] + s.l2 * p;
    const float mi = b1 * m[i] + c1 * g;
    const float vi = b2 * v[i] + c2 * (g * g);
    m[i] = mi;
    v[i] = vi;
    param[i] = p * keep - s.step_size * mi / (std::sqrt(vi) + s.eps);
  }
}

}  // namespace

void adam_update(int64_t n, const AdamStep& s, float* param, const float* grad, float* m, float* v) {
  parallel_range(n, kElementwiseGrain, [&](int64_t begin, int64_t end) { adam_run(begin, end, s, param, grad, m, v); });
}

}  // namespace kg::cpu
