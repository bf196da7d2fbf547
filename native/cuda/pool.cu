// Average pooling without padding, forward and backward.
//
// Backward is a gather: each input pixel sums the output gradients of the windows that cover it
// (several when stride < kernel) in a fixed order, then divides by the window area. A scatter
// (each output adding into its window) would need atomics wherever windows overlap, and float
// atomics make the result depend on timing.
#include "common.cuh"

namespace kg::cuda {
namespace detail {
namespace {

constexpr int kThreads = 256;

template <typename I>
struct PoolIndex {
  using Div = typename IndexTraits<I>::Div;
  I total;
  Div w, h, ow, oh, sh, sw;  // dividers
  I kh, kw, hsz, wsz, ohsz, owsz, stride_h, stride_w;
  float area;
};

template <typename I>
PoolIndex<I> pool_index(const PoolShape& s, int64_t total) {
  using Div = typename IndexTraits<I>::Div;
  PoolIndex<I> p{};
  p.total = static_cast<I>(total);
  p.w = Div(s.w);
  p.h = Div(s.h);
  p.ow = Div(s.ow);
  p.oh = Div(s.oh);
  p.sh = Div(s.sh);
  p.sw = Div(s.sw);
  p.kh = static_cast<I>(s.kh);
  p.kw = static_cast<I>(s.kw);
  p.hsz = static_cast<I>(s.h);
  p.wsz = static_cast<I>(s.w);
  p.ohsz = static_cast<I>(s.oh);
  p.owsz = static_cast<I>(s.ow);
  p.stride_h = static_cast<I>(s.sh);
  p.stride_w = static_cast<I>(s.sw);
  p.area = static_cast<float>(s.kh * s.kw);
  return p;
}

template <typename I>
__global__ void __launch_bounds__(kThreads)
    avgpool_forward_kernel(const PoolIndex<I> p, const float* __restrict__ x, float* __restrict__ y) {
  const I step = static_cast<I>(gridDim.x) * blockDim.x;
  for (I idx = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; idx < p.total; idx += step) {
    const I t = p.ow.div(idx), oj = p.ow.mod(idx, t);
    const I nc = p.oh.div(t), oi = p.oh.mod(t, nc);
    const float* win = x + (nc * p.hsz + oi * p.stride_h) * p.wsz + oj * p.stride_w;
    float sum = 0.0f;
    for (I a = 0; a < p.kh; ++a) {
      for (I b = 0; b < p.kw; ++b) sum += win[a * p.wsz + b];
    }
    y[idx] = sum / p.area;
  }
}

// Output rows covering input row i: o * stride <= i < o * stride + k, and 0 <= o < out.
template <typename I, typename Div>
__device__ __forceinline__ void covering(I i, I k, const Div& stride, I out, I& lo, I& hi) {
  lo = i >= k ? stride.div(i - k) + 1 : 0;
  hi = min(stride.div(i), out - 1);
}

template <typename I>
__global__ void __launch_bounds__(kThreads)
    avgpool_backward_kernel(const PoolIndex<I> p, const float* __restrict__ dy, float* __restrict__ dx) {
  const I step = static_cast<I>(gridDim.x) * blockDim.x;
  for (I idx = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; idx < p.total; idx += step) {
    const I t = p.w.div(idx), j = p.w.mod(idx, t);
    const I nc = p.h.div(t), i = p.h.mod(t, nc);
    I oi_lo, oi_hi, oj_lo, oj_hi;
    covering(i, p.kh, p.sh, p.ohsz, oi_lo, oi_hi);
    covering(j, p.kw, p.sw, p.owsz, oj_lo, oj_hi);
    const float* g = dy + nc * p.ohsz * p.owsz;
    float sum = 0.0f;
    for (I oi = oi_lo; oi <= oi_hi; ++oi) {  // empty when lo > hi (a pixel no window covers)
      for (I oj = oj_lo; oj <= oj_hi; ++oj) sum += g[oi * p.owsz + oj];
    }
    dx[idx] = sum / p.area;
  }
}

}  // namespace
}  // namespace detail

void avgpool2d_forward(const PoolShape& s, const float* x, float* y) {
  using namespace detail;
  const int64_t total = s.n * s.c * s.oh * s.ow;
  if (total <= 0) return;
  auto sizes = [&] {
    return describe("avgpool2d_forward n=", s.n, " c=", s.c, " h=", s.h, " w=", s.w, " k=", s.kh, "x", s.kw, " s=", s.sh,
                    "x", s.sw);
  };
  if (fits_u32(std::max(total, s.n * s.c * s.h * s.w))) {
    avgpool_forward_kernel<uint32_t><<<grid_for(total, kThreads), kThreads, 0, stream()>>>(
        pool_index<uint32_t>(s, total), x, y);
  } else {
    avgpool_forward_kernel<uint64_t><<<grid_for(total, kThreads), kThreads, 0, stream()>>>(
        pool_index<uint64_t>(s, total), x, y);
  }
  check_launch("launch of avgpool_forward_kernel", sizes);
}

void avgpool2d_backward(const PoolShape& s, const float* dy, float* dx) {
  using namespace detail;
  const int64_t total = s.n * s.c * s.h * s.w;
  if (total <= 0) return;
  auto sizes = [&] {
    return describe("avgpool2d_backward n=", s.n, " c=", s.c, " h=", s.h, " w=", s.w, " k=", s.kh, "x", s.kw, " s=",
                    s.sh, "x", s.sw);
  };
  if (fits_u32(std::max(total, s.n * s.c * s.oh * s.ow))) {
    avgpool_backward_kernel<uint32_t><<<grid_for(total, kThreads), kThreads, 0, stream()>>>(
        pool_index<uint32_t>(s, total), dy, dx);
  } else {
    avgpool_backward_kernel<uint64_t><<<grid_for(total, kThreads), kThreads, 0, stream()>>>(
        pool_index<uint64_t>(s, total), dy, dx);
  }
  check_launch("launch of avgpool_backward_kernel", sizes);
}

}  // namespace kg::cuda
