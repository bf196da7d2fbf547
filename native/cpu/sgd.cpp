// The SGD step, in place: g' = grad + weight_decay * param; v = momentum * v + g';
// param -= lr * v (heavy ball) or lr * (g' + momentum * v) (Nesterov, as PyTorch writes it).
// The arrays are distinct (the binding checks it), so each loop vectorizes without alias checks,
// in an AVX2 and a baseline clone.
#include "kg/ops.h"
#include "parallel.h"
#include "simd.h"

namespace kg::cpu {
namespace {

enum class Mode { Plain, HeavyBall, Nesterov };

template <Mode kMode>
KG_MULTIVERSION void sgd_run(int64_t begin, int64_t end, float lr, float momentum, float weight_decay,
                             float* __restrict param, const float* __restrict grad, float* __restrict velocity) {
  for (int64_t i = begin; i < end; ++i) {
    const float g = grad[i] + weight_decay * param[i];
    if constexpr (kMode == Mode::Plain) {
      param[i] -= lr * g;
    } else {
      const float v = momentum * velocity[i] + g;
      velocity[i] = v;
      param[i] -= lr * (kMode == Mode::Nesterov ? g + momentum * v : v);
    }
  }
}

// Momentum 0 with a velocity buffer: the buffer receives g' and its old contents are not read
// (momentum * v is skipped so that an uninitialized buffer cannot inject NaN).
KG_MULTIVERSION void sgd_run_recording(int64_t begin, int64_t end, float lr, float weight_decay, float* __restrict param,
                                       const float* __restrict grad, float* __restrict velocity) {
  for (int64_t i = begin; i < end; ++i) {
    const float g = grad[i] + weight_decay * param[i];
    velocity[i] = g;
    param[i] -= lr * g;
  }
}

}  // namespace

void sgd_update(int64_t n, float lr, float momentum, float weight_decay, bool nesterov, float* param,
                const float* grad, float* velocity) {
  parallel_range(n, kElementwiseGrain, [&](int64_t begin, int64_t end) {
    if (momentum == 0.0f) {  // plain SGD; Nesterov without momentum is the same
      if (velocity) sgd_run_recording(begin, end, lr, weight_decay, param, grad, velocity);
      else sgd_run<Mode::Plain>(begin, end, lr, 0.0f, weight_decay, param, grad, nullptr);
    } else if (nesterov) {
      sgd_run<Mode::Nesterov>(begin, end, lr, momentum, weight_decay, param, grad, velocity);
    } else {
      sgd_run<Mode::HeavyBall>(begin, end, lr, momentum, weight_decay, param, grad, velocity);
    }
  });
}

void sgd_update_many(const SgdGroup& g, const float* lr) {
  for (int i = 0; i < g.count; ++i) {
    const SgdTensor& t = g.items[i];
    sgd_update(t.n, lr[0], g.momentum, t.weight_decay, g.nesterov, t.param, t.grad, t.velocity);
  }
}

}  // namespace kg::cpu
