// What every CUDA file of kernelgrad shares:
//  - error checks that throw kg::cuda::CudaError instead of exiting: the library runs inside the
//    user's Node process, and a failed launch must become a JS exception, not a dead process;
//  - the library's one stream and launch-size helpers (1-D grids only, grid-stride loops, so no
//    grid-dimension limit is ever hit);
//  - a fast 32-bit integer divider for index arithmetic;
//  - deterministic warp/block reductions: sums, and Welford/Chan merges for batch norm. A
//    reduction is deterministic when its combination order depends only on the shape, never on
//    timing, so everything here is shuffles and shared memory in a fixed tree, never atomics;
//  - Scratch, a block of device memory from the caching allocator for the lifetime of a scope.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <sstream>
#include <string>

#include "kg/cuda_runtime.h"
#include "kg/ops.h"

namespace kg::cuda::detail {

// ---------------------------------------------------------------------------------------------
// Errors

// Throws CudaError "<what> failed: <cudaErrorName>: <description> [<sizes>]". Clears the
// thread's last-error slot first, so that a recoverable error (an out-of-memory, a bad launch
// configuration) is not reported again by the next, unrelated launch check.
[[noreturn]] void fail(cudaError_t err, const char* what, const std::string& sizes);

template <typename... Parts>
std::string describe(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}

// The counters behind kg::cuda::counters() (runtime.cu, graph.cu). note_launch is called once per
// kernel launch, by check_launch; during a capture it counts the kernel into the graph instead
// (note_captured_launch returns true then).
void note_launch();
bool note_captured_launch();
void note_replay(int64_t kernels);
void note_host_sync();
void note_event_wait();

// A launch is checked right after it is issued (configuration errors show up here); faults
// inside kernels surface at the next synchronizing call (a device-to-host copy), which is
// checked too. `sizes` is a callable returning a description of the op's sizes, only evaluated
// on failure so the hot path builds no strings.
template <typename Sizes>
inline void check_launch(const char* kernel, const Sizes& sizes) {
  note_launch();
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) fail(err, kernel, sizes());
}

}  // namespace kg::cuda::detail

// Checks a CUDA runtime call; the extra arguments describe the sizes involved and are only
// formatted on failure.
#define KG_CUDA_CHECK(call, ...)                                                        \
  do {                                                                                  \
    cudaError_t kg_err_ = (call);                                                       \
    if (kg_err_ != cudaSuccess)                                                         \
      ::kg::cuda::detail::fail(kg_err_, #call, ::kg::cuda::detail::describe(__VA_ARGS__)); \
  } while (0)

namespace kg::cuda::detail {

// ---------------------------------------------------------------------------------------------
// Stream and launch geometry

// The library's stream, created on first use (non-blocking with respect to the legacy default
// stream). Every kernel and copy of kernelgrad is ordered on it, which is also what makes the
// caching allocator's immediate reuse of released blocks safe.
cudaStream_t stream();
// Multiprocessors of the current device (cached): sizes grids to fill the GPU.
int sm_count();

constexpr int kWarp = 32;
constexpr unsigned kFullMask = 0xffffffffu;
// A grid never needs more blocks than this: kernels loop over their work (grid-stride).
constexpr int64_t kMaxGrid = int64_t{1} << 30;

template <typename T>
__host__ __device__ constexpr T ceil_div(T a, T b) {
  return (a + b - 1) / b;
}

// Blocks for a grid-stride loop over `work` items with `per_block` items per block and round:
// enough to fill the GPU several times over, never more than the work needs.
inline unsigned int grid_for(int64_t work, int64_t per_block, int64_t waves = 32) {
  int64_t want = ceil_div<int64_t>(work, per_block);
  int64_t cap = static_cast<int64_t>(sm_count()) * waves;
  return static_cast<unsigned int>(std::max<int64_t>(1, std::min(want, cap)));
}

// A grid of exactly `items` blocks (one per item), clamped; kernels still loop over items.
inline unsigned int grid_exact(int64_t items) {
  return static_cast<unsigned int>(std::max<int64_t>(1, std::min(items, kMaxGrid)));
}

__host__ __device__ inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// ---------------------------------------------------------------------------------------------
// Integer division by a run-time constant

// n / d as a multiply-high, an add and a shift (Granlund-Montgomery, as PyTorch's IntDivider):
// a hardware 32-bit division is ~20 instructions, which a memory-bound kernel cannot afford per
// element. Valid for n < 2^31 and 1 <= d < 2^31; kernels that can exceed that use DivU64.
struct DivU32 {
  uint32_t divisor = 1, multiplier = 0, shift = 0;
  DivU32() = default;
  explicit DivU32(uint64_t d) {
    if (d == 0) d = 1;  // callers never divide by an empty extent; stay defined if one does
    divisor = static_cast<uint32_t>(d);
    while ((uint64_t{1} << shift) < d) ++shift;
    multiplier = static_cast<uint32_t>(((uint64_t{1} << 32) * ((uint64_t{1} << shift) - d)) / d + 1);
  }
  __device__ __forceinline__ uint32_t div(uint32_t n) const {
    return (__umulhi(n, multiplier) + n) >> shift;
  }
  __device__ __forceinline__ uint32_t mod(uint32_t n, uint32_t q) const { return n - q * divisor; }
};

struct DivU64 {
  uint64_t divisor = 1;
  DivU64() = default;
  explicit DivU64(uint64_t d) : divisor(d ? d : 1) {}
  __device__ __forceinline__ uint64_t div(uint64_t n) const { return n / divisor; }
  __device__ __forceinline__ uint64_t mod(uint64_t n, uint64_t q) const { return n - q * divisor; }
};

// Index arithmetic in 32 bits when everything fits (the common case, and much cheaper), 64 bits
// otherwise. Kernels are templated on one of these.
template <typename I>
struct IndexTraits;
template <>
struct IndexTraits<uint32_t> {
  using Div = DivU32;
  using Signed = int32_t;
};
template <>
struct IndexTraits<uint64_t> {
  using Div = DivU64;
  using Signed = int64_t;
};

// True when every index and offset up to `largest` is safe for the 32-bit path (DivU32 needs
// dividends below 2^31).
inline bool fits_u32(int64_t largest) { return largest < (int64_t{1} << 31); }

// ---------------------------------------------------------------------------------------------
// Deterministic reductions

// Butterfly sum: after each step lanes i and i^o hold a+b and b+a, which are bitwise equal, so
// every lane ends with the same bits and the result does not depend on which lane reads it.
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}

// Sum over a block of kThreads threads, valid in every thread on return. `smem` holds at least
// kThreads / 32 floats. Ends with a barrier, so the caller may reuse `smem` right away.
template <int kThreads>
__device__ __forceinline__ float block_sum(float v, float* smem) {
  static_assert(kThreads % kWarp == 0 && kThreads <= 1024, "whole warps");
  constexpr int kWarps = kThreads / kWarp;
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  v = warp_sum(v);
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  float total = 0.0f;
#pragma unroll
  for (int w = 0; w < kWarps; ++w) total += smem[w];  // same order in every thread
  __syncthreads();
  return total;
}

// The largest finite float: `!(v <= kFloatMax)` holds for infinities (and NaN), on host and device.
constexpr float kFloatMax = 3.40282347e+38f;

// Welford/Chan running statistics: count, mean and M2 = sum of squared deviations from the mean.
// Counts are floats: they stay exact up to 2^24, and the batch-norm plans keep every partial
// below that; beyond it only the merge weights round (relative 6e-8), never the sums.
// M2 is a double: the squared deviations of values near 1e38 exceed float, and a double M2 is
// only touched once per value on the (rare) single-value path and once per batch otherwise.
struct Welford {
  double m2 = 0.0;
  float mean = 0.0f, count = 0.0f;
};

// One value (Welford's update). delta and (v - new mean) have the same sign, so M2 never
// decreases and never goes negative.
__device__ __forceinline__ void welford_add(Welford& w, float v) {
  w.count += 1.0f;
  const float delta = v - w.mean;
  w.mean += delta / w.count;
  w.m2 = fma(static_cast<double>(delta), static_cast<double>(v) - static_cast<double>(w.mean), w.m2);
}

// Chan et al.'s parallel merge. With delta == 0 (e.g. a constant channel) the mean is kept
// exactly and M2 stays exactly zero.
__device__ __forceinline__ Welford welford_merge(const Welford& a, const Welford& b) {
  if (b.count == 0.0f) return a;
  if (a.count == 0.0f) return b;
  Welford r;
  r.count = a.count + b.count;
  const float wb = b.count / r.count;  // weight of b in the merged mean
  const float delta = b.mean - a.mean;
  r.mean = fmaf(delta, wb, a.mean);
  r.m2 = a.m2 + b.m2 + static_cast<double>(delta) * delta * a.count * wb;
  return r;
}

// Pairwise sum of a power-of-two number of values: equal values sum exactly (2a, 4a, ...), so a
// constant input keeps an exact mean.
template <int N>
__device__ __forceinline__ float pairwise_sum(const float* v) {
  if constexpr (N == 1) {
    return v[0];
  } else {
    return pairwise_sum<N / 2>(v) + pairwise_sum<N / 2>(v + N / 2);
  }
}

// A batch of N values (a power of two) merged at once: its exact-order mean and M2, then one
// Chan merge. That is one division per N values instead of one per value, which matters in a
// kernel that must stream at full memory bandwidth.
template <int N>
__device__ __forceinline__ void welford_add_batch(Welford& w, const float* v) {
  static_assert((N & (N - 1)) == 0, "power of two");
  // Scaled before summing (exact for powers of two), so that values near 1e38 do not overflow
  // the sum: the same bits as scaling the sum, for every sum that does not overflow.
  float scaled[N];
#pragma unroll
  for (int i = 0; i < N; ++i) scaled[i] = v[i] * (1.0f / N);
  const float mean = pairwise_sum<N>(scaled);
  float m2f = 0.0f;
#pragma unroll
  for (int i = 0; i < N; ++i) {
    const float d = v[i] - mean;
    m2f = fmaf(d, d, m2f);
  }
  double m2 = m2f;
  if (!(m2f <= kFloatMax)) {  // deviations beyond ~1e18: again in double, where their squares fit
    m2 = 0.0;
    for (int i = 0; i < N; ++i) {
      const double d = static_cast<double>(v[i]) - static_cast<double>(mean);
      m2 = fma(d, d, m2);
    }
  }
  Welford b;
  b.mean = mean;
  b.m2 = m2;
  b.count = static_cast<float>(N);
  w = welford_merge(w, b);
}

// Tree merge over the warp by shuffles: lane 0 ends with the merge of all 32 lanes, always in
// the same order.
__device__ __forceinline__ Welford warp_welford(Welford w) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    Welford other;
    other.mean = __shfl_down_sync(kFullMask, w.mean, o);
    other.m2 = __shfl_down_sync(kFullMask, w.m2, o);
    other.count = __shfl_down_sync(kFullMask, w.count, o);
    w = welford_merge(w, other);
  }
  return w;
}

// Merge over a block of kThreads threads: warps first, then warp 0 merges the per-warp results
// in warp order. Valid in thread 0. `smem` holds kThreads / 32 Welfords; ends with a barrier.
template <int kThreads>
__device__ __forceinline__ Welford block_welford(Welford w, Welford* smem) {
  constexpr int kWarps = kThreads / kWarp;
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  w = warp_welford(w);
  if (lane == 0) smem[warp] = w;
  __syncthreads();
  if (warp == 0) {
    w = lane < kWarps ? smem[lane] : Welford{};
    w = warp_welford(w);
  }
  __syncthreads();
  return w;
}

// ---------------------------------------------------------------------------------------------
// Small vectors: a float4 or a float, so a kernel can be written once for both widths.

template <int VW>
struct Pack {
  float v[VW];
};

template <int VW>
__device__ __forceinline__ Pack<VW> load_pack(const float* p) {
  Pack<VW> r;
  if constexpr (VW == 4) {
    const float4 t = *reinterpret_cast<const float4*>(p);
    r.v[0] = t.x;
    r.v[1] = t.y;
    r.v[2] = t.z;
    r.v[3] = t.w;
  } else {
    static_assert(VW == 1, "widths 1 and 4");
    r.v[0] = *p;
  }
  return r;
}

template <int VW>
__device__ __forceinline__ void store_pack(float* p, const Pack<VW>& r) {
  if constexpr (VW == 4) {
    *reinterpret_cast<float4*>(p) = make_float4(r.v[0], r.v[1], r.v[2], r.v[3]);
  } else {
    *p = r.v[0];
  }
}

// ---------------------------------------------------------------------------------------------
// Elementwise maps

constexpr int kMapThreads = 256;

// Grid-stride loop over n elements as n/4 float4s plus a scalar tail, or all scalar when some
// pointer is not 16-byte aligned. The functor sees one index at a time (op.vec4(i) handles
// i..i+3, op.one(i) a single element) and holds its own pointers, so an op is written once for
// both paths.
// The loop of map_kernel, for kernels that run several maps (one per blockIdx.y, say).
template <class Op>
__device__ __forceinline__ void map_loop(int64_t n, bool vec, const Op& op) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  int64_t done = 0;
  if (vec) {
    const int64_t n4 = n / 4;
    for (int64_t i = first; i < n4; i += stride) op.vec4(i * 4);
    done = n4 * 4;
  }
  for (int64_t i = done + first; i < n; i += stride) op.one(i);
}

template <class Op>
__global__ void __launch_bounds__(kMapThreads) map_kernel(int64_t n, bool vec, Op op) {
  map_loop(n, vec, op);
}

template <class Op, class Sizes>
void run_map(int64_t n, bool vec, const Op& op, const char* name, const Sizes& sizes) {
  if (n <= 0) return;
  const int64_t work = vec ? ceil_div<int64_t>(n, 4) : n;
  map_kernel<Op><<<grid_for(work, kMapThreads), kMapThreads, 0, stream()>>>(n, vec, op);
  check_launch(name, sizes);
}

__device__ __forceinline__ float4 ld4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ void st4(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }

// ---------------------------------------------------------------------------------------------
// Scratch memory

// Device memory from the caching allocator for the duration of a scope. Released when the scope
// ends, usually while kernels that use it are still queued: that is safe because the only user
// of a released block is a later request on the same (only) stream, ordered after them.
class Scratch {
 public:
  Scratch() = default;
  explicit Scratch(size_t bytes) : ptr_(bytes ? kg::cuda::alloc(bytes) : nullptr) {}
  ~Scratch() { kg::cuda::release(ptr_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

 private:
  void* ptr_ = nullptr;
};

// ---------------------------------------------------------------------------------------------
// Entry points shared between files

// C[b] = alpha * sum over r < terms of op(A[b, r]) * op(B[b, r]) + beta * C[b] + bias, for
// b < batch, with explicit leading dimensions and strides: A[b, r] starts at
// a + b * stride_a + r * term_stride_a, likewise B, and C[b] at c + b * stride_c (a stride of 0
// shares one matrix). The public gemm, linear_forward and the convolutions are built on it.
//
// The sum over terms runs inside the GEMM's k loop, in term order, so that a convolution's weight
// gradient reduces over its samples without first laying them side by side in memory.
// The bias, when not null, is added after the product and beta terms, as the epilogue writes C:
// bias[row] (bias_per_row: a convolution's output channels) or bias[col] (a dense layer's
// outputs), at bias + b * stride_bias for batch entry b.
//
// patches, when not null, makes B an implicit im2col matrix (see PatchGeometry): B[b, r] is the
// patch matrix of the image at b + b * stride_b + r * term_stride_b (ldb unused), read as stored
// (forward: k = patch rows, n = pixels) or transposed (trans_b, a weight gradient: k = pixels,
// n = patch rows). trans_a must be false there (the only uses).
// The patch matrix of im2col, for a GEMM that gathers its B operand straight from an image
// instead of reading a materialized col buffer (GemmBatch::patches; conv2d.cu builds it).
// Element (r, p) of one image x (channels of h x w planes) is, with r = (c, dh, dw) and
// p = (i, j), x[c, i * sh + dh - ph, j * sw + dw - pw], 0 in the padding. 32-bit indices: one
// image's floats, its patch rows and its output pixels are all below 2^31 (DivU32's range).
struct PatchGeometry {
  DivU32 kw, kh, ow;  // split r into (c, dh, dw) and p into (i, j)
  int32_t h, w, plane;  // plane = h * w
  int32_t sh, sw, ph, pw;
};

struct GemmBatch {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  float alpha = 1.0f, beta = 0.0f;
  const float* a = nullptr;
  int64_t lda = 0, stride_a = 0;
  const float* b = nullptr;
  int64_t ldb = 0, stride_b = 0;
  float* c = nullptr;
  int64_t ldc = 0, stride_c = 0;
  int64_t batch = 1;
  int64_t terms = 1, term_stride_a = 0, term_stride_b = 0;
  const float* bias = nullptr;
  int64_t stride_bias = 0;
  bool bias_per_row = false;
  const PatchGeometry* patches = nullptr;
  // When not null: row_sums[b * stride_row_sums + row] = the sum of op(A[b, r])[row, k] over every
  // term r and k (not scaled by alpha; written, not accumulated). A bias gradient, computed from
  // the A operand the weight gradient's GEMM already loads.
  float* row_sums = nullptr;
  int64_t stride_row_sums = 0;
};
void gemm_batched(const GemmBatch& g);

}  // namespace kg::cuda::detail
