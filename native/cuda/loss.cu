// Softmax cross-entropy (forward and backward) and row-wise argmax, over rows of an (n, k) matrix.
//
// A row is handled by a group of threads: a warp for the usual class counts, a whole block when
// rows are long (k > 1024), so that a batch of 64 rows of 50,000 classes still spreads over the
// GPU. The group's reductions are fixed trees (shuffles, then shared memory), so results are
// deterministic.
//
// Stability: loss = log(sum_j exp(x_j - max)) + max - x_label. exp never overflows, and the
// largest term is exactly 1, so the sum is at least 1 and the log is well-defined.
//
// A batch's summed (or averaged) loss, the form training uses, is one launch when the batch is
// small (softmax_xent_sum_kernel: one block takes every row, then adds the rows' losses in a
// fixed order) and the per-row kernel plus a reduction otherwise: a training step on a small
// batch is a few microseconds of GPU work per kernel, so a launch saved is time saved. Its
// backward takes the one upstream gradient for every row (times the 1/n of a mean), so no
// broadcast of it is needed either. When asked (`grad`), the forward also writes the gradient for
// the upstream value 1, the one backward() starts from: a training step then needs no backward
// launch for its loss at all.
//
// Labels: the binding cannot check labels in GPU memory without a sync per call, so the kernels
// never index a row by a label that is not a class index (an integer in [0, k): not NaN, not
// fractional, not out of range). Such a row gets a NaN loss and NaN gradients, which the caller
// sees at its next read; the TypeScript layer checks labels before they reach the GPU.
#include <cfloat>

#include "common.cuh"

namespace kg::cuda {
namespace detail {
namespace {

constexpr int kThreads = 256;

// Reductions over a group of kGroup threads (32: a warp; kThreads: the block). `smem` has room
// for kThreads / 32 floats; the block versions end with a barrier.
template <int kGroup>
__device__ __forceinline__ float group_max(float v, float* smem) {
  if constexpr (kGroup == kWarp) {
    return warp_max(v);
  } else {
    static_assert(kGroup == kThreads, "a warp or the whole block");
    v = warp_max(v);
    if (threadIdx.x % kWarp == 0) smem[threadIdx.x / kWarp] = v;
    __syncthreads();
    float m = smem[0];
#pragma unroll
    for (int w = 1; w < kThreads / kWarp; ++w) m = fmaxf(m, smem[w]);
    __syncthreads();
    return m;
  }
}

// The class index a label holds, or -1 when it holds none.
__device__ __forceinline__ int64_t class_index(float label, int64_t k) {
  if (!(label >= 0.0f && label < static_cast<float>(k)) || label != floorf(label)) return -1;
  return static_cast<int64_t>(label);
}

template <int kGroup>
__device__ __forceinline__ float group_sum(float v, float* smem) {
  if constexpr (kGroup == kWarp) {
    return warp_sum(v);
  } else {
    return block_sum<kThreads>(v, smem);
  }
}

// Row max and sum of exp(x - max) of one row, valid in every thread of the group.
template <int kGroup>
__device__ __forceinline__ void row_softmax_stats(const float* row, int64_t k, int lane, float* smem, float& max_out,
                                                  float& sum_out) {
  float m = -INFINITY;
  for (int64_t j = lane; j < k; j += kGroup) m = fmaxf(m, row[j]);
  m = group_max<kGroup>(m, smem);
  float s = 0.0f;
  for (int64_t j = lane; j < k; j += kGroup) s += expf(row[j] - m);
  sum_out = group_sum<kGroup>(s, smem);
  max_out = m;
}

// Row i's gradient (softmax - onehot) * d, d NaN for a row without a class label.
template <int kGroup>
__device__ __forceinline__ void row_gradient(const float* row, int64_t k, int64_t label, float m, float s, float d,
                                             int lane, float* out) {
  if (label < 0) d = nanf("");
  for (int64_t j = lane; j < k; j += kGroup) {
    const float p = expf(row[j] - m) / s;
    out[j] = (p - (j == label ? 1.0f : 0.0f)) * d;
  }
}

// The loss of row i, in lane 0 of its group (the others get garbage). With `grad`, also the
// row's gradient times `scale` (the upstream gradient 1 of a summed loss, times 1/n for a mean):
// what the backward kernel writes for that upstream value, from the same statistics.
template <int kGroup>
__device__ __forceinline__ float row_loss(const float* logits, const float* labels, int64_t k, int64_t i, int lane,
                                          float* smem, float* grad, float scale) {
  const float* row = logits + i * k;
  float m, s;
  row_softmax_stats<kGroup>(row, k, lane, smem, m, s);
  const int64_t label = class_index(labels[i], k);
  if (grad) row_gradient<kGroup>(row, k, label, m, s, 1.0f * scale, lane, grad + i * k);
  return label < 0 ? nanf("") : (logf(s) + m) - row[label];
}

// Rows are distributed over groups: group index = block * groups_per_block + group in block.
// The loop bound is the same for all threads of a group (and of a block when kGroup is the
// block), so every thread reaches every barrier.
template <int kGroup>
__global__ void __launch_bounds__(kThreads)
    softmax_xent_forward_kernel(int64_t n, int64_t k, const float* __restrict__ logits,
                                const float* __restrict__ labels, float* __restrict__ loss, float* __restrict__ grad,
                                float scale) {
  __shared__ float smem[kThreads / kWarp];
  constexpr int kGroups = kThreads / kGroup;
  const int lane = threadIdx.x % kGroup;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kGroups + threadIdx.x / kGroup; i < n;
       i += static_cast<int64_t>(gridDim.x) * kGroups) {
    const float l = row_loss<kGroup>(logits, labels, k, i, lane, smem, grad, scale);
    if (lane == 0) loss[i] = l;
  }
}

// out[0] = scale * the sum of every row's loss, by one block: warp w takes rows w, w + 8, ...
// (lane 0 adding them in row order), then the warps' sums are added in warp order.
__global__ void __launch_bounds__(kThreads)
    softmax_xent_sum_kernel(int64_t n, int64_t k, const float* __restrict__ logits, const float* __restrict__ labels,
                            float scale, float* __restrict__ out, float* __restrict__ grad) {
  __shared__ float smem[kThreads / kWarp];
  const int lane = threadIdx.x % kWarp;
  float total = 0.0f;
  for (int64_t i = threadIdx.x / kWarp; i < n; i += kThreads / kWarp) {
    const float l = row_loss<kWarp>(logits, labels, k, i, lane, smem, grad, scale);
    if (lane == 0) total += l;
  }
  if (lane != 0) total = 0.0f;
  total = block_sum<kThreads>(total, smem);
  if (threadIdx.x == 0) out[0] = total * scale;
}

// dloss holds one value per row (per_row) or one for every row; either is multiplied by scale.
template <int kGroup>
__global__ void __launch_bounds__(kThreads)
    softmax_xent_backward_kernel(int64_t n, int64_t k, const float* __restrict__ logits,
                                 const float* __restrict__ labels, const float* __restrict__ dloss, bool per_row,
                                 float scale, float* __restrict__ dlogits) {
  __shared__ float smem[kThreads / kWarp];
  constexpr int kGroups = kThreads / kGroup;
  const int lane = threadIdx.x % kGroup;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kGroups + threadIdx.x / kGroup; i < n;
       i += static_cast<int64_t>(gridDim.x) * kGroups) {
    const float* row = logits + i * k;
    float m, s;
    row_softmax_stats<kGroup>(row, k, lane, smem, m, s);
    const int64_t label = class_index(labels[i], k);
    row_gradient<kGroup>(row, k, label, m, s, dloss[per_row ? i : 0] * scale, lane, dlogits + i * k);
  }
}

// (value, index) pairs ordered by value, ties to the smaller index: the first maximum.
__device__ __forceinline__ void take_better(float& v, int64_t& idx, float ov, int64_t oidx) {
  if (ov > v || (ov == v && oidx < idx)) {
    v = ov;
    idx = oidx;
  }
}

template <int kGroup>
__global__ void __launch_bounds__(kThreads)
    argmax_rows_kernel(int64_t n, int64_t k, const float* __restrict__ x, float* __restrict__ out) {
  __shared__ float sv[kThreads / kWarp];
  __shared__ int64_t si[kThreads / kWarp];
  constexpr int kGroups = kThreads / kGroup;
  const int lane = threadIdx.x % kGroup;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kGroups + threadIdx.x / kGroup; i < n;
       i += static_cast<int64_t>(gridDim.x) * kGroups) {
    const float* row = x + i * k;
    // Start from the thread's first element (not -inf): a row of -inf still has an argmax.
    float v = -INFINITY;
    int64_t idx = INT64_MAX;
    if (lane < k) {
      v = row[lane];
      idx = lane;
    }
    for (int64_t j = lane + kGroup; j < k; j += kGroup) {
      if (row[j] > v) {  // strict: keeps this thread's first maximum
        v = row[j];
        idx = j;
      }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_down_sync(kFullMask, v, o);
      const int64_t oi = __shfl_down_sync(kFullMask, idx, o);
      take_better(v, idx, ov, oi);
    }
    if constexpr (kGroup == kThreads) {
      if (threadIdx.x % kWarp == 0) {
        sv[threadIdx.x / kWarp] = v;
        si[threadIdx.x / kWarp] = idx;
      }
      __syncthreads();
      if (threadIdx.x == 0) {
        for (int w = 1; w < kThreads / kWarp; ++w) take_better(v, idx, sv[w], si[w]);
      }
      __syncthreads();
    }
    if (lane == 0) out[i] = static_cast<float>(idx);
  }
}

// A warp per row up to 1024 classes (32 values per lane), a block per row beyond.
constexpr int64_t kWarpRowLimit = 1024;

template <template <int> class Launch, class... Args>
void by_row_length(int64_t n, int64_t k, Args... args) {
  if (k <= kWarpRowLimit) {
    Launch<kWarp>::run(grid_exact(ceil_div<int64_t>(n, kThreads / kWarp)), n, k, args...);
  } else {
    Launch<kThreads>::run(grid_exact(n), n, k, args...);
  }
}

template <int G>
struct ForwardLaunch {
  static void run(unsigned grid, int64_t n, int64_t k, const float* logits, const float* labels, float* loss,
                  float* grad, float scale) {
    softmax_xent_forward_kernel<G><<<grid, kThreads, 0, stream()>>>(n, k, logits, labels, loss, grad, scale);
  }
};
template <int G>
struct BackwardLaunch {
  static void run(unsigned grid, int64_t n, int64_t k, const float* logits, const float* labels, const float* dloss,
                  bool per_row, float scale, float* dlogits) {
    softmax_xent_backward_kernel<G><<<grid, kThreads, 0, stream()>>>(n, k, logits, labels, dloss, per_row, scale,
                                                                      dlogits);
  }
};
template <int G>
struct ArgmaxLaunch {
  static void run(unsigned grid, int64_t n, int64_t k, const float* x, float* out) {
    argmax_rows_kernel<G><<<grid, kThreads, 0, stream()>>>(n, k, x, out);
  }
};

// Batches up to this many logits (with warp-sized rows) take the one-block sum: for them one SM
// finishes in about the time a second launch would cost.
constexpr int64_t kOneBlockLogits = int64_t{1} << 16;

}  // namespace
}  // namespace detail

void softmax_xent_forward(int64_t n, int64_t k, const float* logits, const float* labels, float* loss) {
  using namespace detail;
  if (n <= 0 || k <= 0) return;
  by_row_length<ForwardLaunch>(n, k, logits, labels, loss, static_cast<float*>(nullptr), 1.0f);
  check_launch("launch of softmax_xent_forward_kernel", [&] { return describe("softmax_xent n=", n, " k=", k); });
}

void softmax_xent_forward_sum(int64_t n, int64_t k, const float* logits, const float* labels, float scale,
                              float* out, float* grad) {
  using namespace detail;
  if (k <= 0) return;
  auto sizes = [&] { return describe("softmax_xent_forward_sum n=", n, " k=", k); };
  if (n <= 0) {
    fill(1, 0.0f, out);  // an empty sum, as reduce_sum writes it
    return;
  }
  if (k <= kWarpRowLimit && n * k <= kOneBlockLogits) {
    softmax_xent_sum_kernel<<<1, kThreads, 0, stream()>>>(n, k, logits, labels, scale, out, grad);
    check_launch("launch of softmax_xent_sum_kernel", sizes);
    return;
  }
  Scratch losses(static_cast<size_t>(n) * sizeof(float));
  by_row_length<ForwardLaunch>(n, k, logits, labels, losses.as<float>(), grad, scale);
  check_launch("launch of softmax_xent_forward_kernel", sizes);
  reduce_sum(1, n, 1, scale, losses.as<float>(), out);
}

void softmax_xent_backward(int64_t n, int64_t k, const float* logits, const float* labels, const float* dloss,
                           bool per_row, float scale, float* dlogits) {
  using namespace detail;
  if (n <= 0 || k <= 0) return;
  by_row_length<BackwardLaunch>(n, k, logits, labels, dloss, per_row, scale, dlogits);
  check_launch("launch of softmax_xent_backward_kernel", [&] { return describe("softmax_xent n=", n, " k=", k); });
}

void argmax_rows(int64_t n, int64_t k, const float* x, float* out) {
  using namespace detail;
  if (n <= 0 || k <= 0) return;
  by_row_length<ArgmaxLaunch>(n, k, x, out);
  check_launch("launch of argmax_rows_kernel", [&] { return describe("argmax_rows n=", n, " k=", k); });
}

}  // namespace kg::cuda
