// The SGD step, in place: g' = grad + weight_decay * param; v = momentum * v + g';
// param -= lr * v (heavy ball) or lr * (g' + momentum * v) (Nesterov, as PyTorch writes it).
#include "kg/ops.h"
#include "parallel.h"

namespace kg::cpu {

void sgd_update(int64_t n, float lr, float momentum, float weight_decay, bool nesterov, float* param,
                const float* grad, float* velocity) {
  parallel_range(n, kElementwiseGrain, [&](int64_t begin, int64_t end) {
    if (momentum == 0.0f) {
      // Plain SGD (Nesterov with no momentum is the same). A velocity buffer, if given, still
      // receives g' (momentum * v is skipped so that an uninitialized buffer cannot inject NaN).
      for (int64_t i = begin; i < end; ++i) {
        const float g = grad[i] + weight_decay * param[i];
        if (velocity) velocity[i] = g;
        param[i] -= lr * g;
      }
    } else if (nesterov) {
      for (int64_t i = begin; i < end; ++i) {
        const float g = grad[i] + weight_decay * param[i];
        const float v = momentum * velocity[i] + g;
        velocity[i] = v;
        param[i] -= lr * (g + momentum * v);
      }
    } else {
      for (int64_t i = begin; i < end; ++i) {
        const float g = grad[i] + weight_decay * param[i];
        const float v = momentum * velocity[i] + g;
        velocity[i] = v;
        param[i] -= lr * v;
      }
    }
  });
}

}  // namespace kg::cpu
