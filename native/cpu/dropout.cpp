// Inverted dropout: one pass, the mask recomputed from (seed, index) by dropout_uniform. A dropped
// value is multiplied by 0 rather than replaced, so a NaN or an infinity in x still shows in y.
#include "kg/dropout_mask.h"
#include "kg/ops.h"
#include "parallel.h"

namespace kg::cpu {

void dropout_apply(int64_t n, float p, uint64_t seed, const float* x, float* y) {
  const float scale = 1.0f / (1.0f - p);
  const uint64_t key = dropout_key(seed);
  parallel_range(n, kElementwiseGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      y[i] = x[i] * (dropout_uniform(key, static_cast<uint64_t>(i)) >= p ? scale : 0.0f);
    }
  });
}

}  // namespace kg::cpu
