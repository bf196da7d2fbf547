// l2_norm: the Euclidean norm of a vector, for gradient clipping. Two passes, squares summed in
// double: each block of the first adds its grid-stride share of x into one partial sum, the
// second (one block) adds the partials and writes the square root. The grid size depends only on
// n and the GPU's multiprocessor count, so the order of every addition is fixed: deterministic.
#include "common.cuh"

namespace kg::cuda {
namespace detail {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / kWarp;
// A block is not worth starting for fewer values than this per thread.
constexpr int64_t kMinPerThread = 16;

__device__ __forceinline__ double warp_sum_double(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

// The sum over the block, in thread 0. `smem` holds kWarps doubles.
__device__ __forceinline__ double block_sum_double(double v, double* smem) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  v = warp_sum_double(v);
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  double total = 0.0;
  if (threadIdx.x == 0) {
    for (int w = 0; w < kWarps; ++w) total += smem[w];
  }
  return total;
}

__global__ void __launch_bounds__(kThreads)
    partial_squares_kernel(int64_t n, bool vec, const float* __restrict__ x, double* __restrict__ partial) {
  __shared__ double smem[kWarps];
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  double acc = 0.0;
  int64_t done = 0;
  if (vec) {
    const int64_t n4 = n / 4;
    for (int64_t i = first; i < n4; i += stride) {
      const float4 q = ld4(x + i * 4);
      acc += (double(q.x) * q.x + double(q.y) * q.y) + (double(q.z) * q.z + double(q.w) * q.w);
    }
    done = n4 * 4;
  }
  for (int64_t i = done + first; i < n; i += stride) acc += double(x[i]) * x[i];
  const double total = block_sum_double(acc, smem);
  if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

__global__ void __launch_bounds__(kThreads)
    finish_norm_kernel(int64_t blocks, const double* __restrict__ partial, float* __restrict__ out) {
  __shared__ double smem[kWarps];
  double acc = 0.0;
  for (int64_t b = threadIdx.x; b < blocks; b += kThreads) acc += partial[b];
  const double total = block_sum_double(acc, smem);
  if (threadIdx.x == 0) *out = static_cast<float>(sqrt(total));
}

}  // namespace
}  // namespace detail

void l2_norm(int64_t n, const float* x, float* out) {
  using namespace detail;
  auto sizes = [&] { return describe("l2_norm n=", n); };
  // A few blocks per multiprocessor at most: the partials are then a short second pass.
  const int64_t blocks = n == 0 ? 0 : grid_for(ceil_div<int64_t>(n, kMinPerThread), kThreads, 4);
  Scratch partial(static_cast<size_t>(std::max<int64_t>(blocks, 1)) * sizeof(double));
  if (blocks > 0) {
    partial_squares_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream()>>>(n, aligned16(x), x,
                                                                                     partial.as<double>());
    check_launch("launch of partial_squares_kernel", sizes);
  }
  finish_norm_kernel<<<1, kThreads, 0, stream()>>>(blocks, partial.as<double>(), out);
  check_launch("launch of finish_norm_kernel", sizes);
}

}  // namespace kg::cuda
