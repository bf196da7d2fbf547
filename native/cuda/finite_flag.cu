// flag_nonfinite_stats (ops.inc): the batch-norm statistics check as one small kernel, so that a
// training step on the GPU never waits to read statistics back. One warp scans the channels; the
// first failing channel wins (a warp minimum), so the flag does not depend on the thread order.
#include "common.cuh"

namespace kg::cuda {
namespace detail {
namespace {

__device__ __forceinline__ int stat_failure(int64_t ch, const float* mean, const float* invstd, const float* var) {
  if (!(fabsf(mean[ch]) <= kFloatMax)) return 1;
  const float s = invstd[ch];
  if (s > kFloatMax) return 2;
  if (!(s > 0.0f)) return 3;
  if (var && !(fabsf(var[ch]) <= kFloatMax)) return 4;
  return 0;
}

__global__ void flag_stats_kernel(int64_t c, const float* mean, const float* invstd, const float* var, float layer,
                                  float* flag) {
  int64_t first = c;  // this lane's first failing channel
  int kind = 0;
  for (int64_t ch = threadIdx.x; ch < c; ch += kWarp) {
    const int k = stat_failure(ch, mean, invstd, var);
    if (k) {
      first = ch;
      kind = k;
      break;
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const int64_t other = __shfl_xor_sync(kFullMask, first, o);
    const int other_kind = __shfl_xor_sync(kFullMask, kind, o);
    if (other < first) {
      first = other;
      kind = other_kind;
    }
  }
  if (threadIdx.x == 0 && kind && flag[0] == 0.0f) {
    flag[0] = static_cast<float>(kind);
    flag[1] = static_cast<float>(first);
    flag[2] = layer;
  }
}

}  // namespace
}  // namespace detail

void flag_nonfinite_stats(int64_t c, const float* mean, const float* invstd, const float* var, float layer,
                          float* flag) {
  using namespace detail;
  if (c <= 0) return;
  flag_stats_kernel<<<1, kWarp, 0, stream()>>>(c, mean, invstd, var, layer, flag);
  check_launch("launch of flag_stats_kernel", [&] { return describe("flag_nonfinite_stats c=", c); });
}

}  // namespace kg::cuda
