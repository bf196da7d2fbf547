// Inverted dropout, one elementwise pass; the mask is dropout_uniform(seed, i), the same function
// the CPU kernel uses, so both devices drop the same elements.
#include "common.cuh"
#include "kg/dropout_mask.h"

namespace kg::cuda {
namespace detail {
namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads)
    dropout_kernel(int64_t n, float p, float scale, uint64_t key, const float* __restrict__ x, float* __restrict__ y) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    // Multiplied by 0 rather than replaced: a NaN or an infinity in x still shows in y.
    y[i] = x[i] * (dropout_uniform(key, static_cast<uint64_t>(i)) >= p ? scale : 0.0f);
  }
}

}  // namespace
}  // namespace detail

void dropout_apply(int64_t n, float p, uint64_t seed, const float* x, float* y) {
  using namespace detail;
  if (n <= 0) return;
  dropout_kernel<<<grid_for(n, kThreads), kThreads, 0, stream()>>>(n, p, 1.0f / (1.0f - p), dropout_key(seed), x, y);
  check_launch("launch of dropout_kernel", [&] { return describe("dropout_apply n=", n, " p=", p); });
}

}  // namespace kg::cuda
