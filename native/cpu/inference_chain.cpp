// inference_chain: see inference_blocks.h.
#include <algorithm>

#include "host_allocator.h"
#include "inference_blocks.h"

namespace kg::cpu {
namespace {

void run_step(const ChainStep& st, int64_t n, const float* in, float* out) {
  const BnInference* bn = st.normalized ? &st.bn : nullptr;
  if (!st.conv) return dense_block_infer(n, st.out_features, st.in_features, in, st.w, st.bias, bn, st.relu, out);
  ConvShape shape = st.shape;
  PoolShape pool = st.pool;
  shape.n = pool.n = n;
  const ConvBlock block{shape, bn, st.relu, st.pooled ? &pool : nullptr};
  conv_block_infer(block, in, st.w, st.bias, out);
}

}  // namespace

void inference_chain(const ChainStep* steps, int64_t count, int64_t n, const float* x, float* y) {
  if (count == 0 || n == 0) return;
  // The steps' outputs alternate between two buffers, each as large as the largest of them.
  int64_t largest = 0;
  for (int64_t i = 0; i + 1 < count; ++i) largest = std::max(largest, steps[i].out_per_sample);
  HostBuffer even(count > 1 ? n * largest : 0), odd(count > 2 ? n * largest : 0);
  const float* in = x;
  for (int64_t i = 0; i < count; ++i) {
    float* out = i + 1 == count ? y : i % 2 == 0 ? even.get() : odd.get();
    run_step(steps[i], n, in, out);
    in = out;
  }
}

}  // namespace kg::cpu
