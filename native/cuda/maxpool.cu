// Max pooling with padding, forward and backward.
//
// Backward is a gather, as for average pooling (pool.cu): each input pixel sums, in a fixed
// order, the gradients of the windows that cover it and chose it as their maximum. Scattering
// from the outputs would need float atomics wherever windows overlap, and their order (hence the
// rounding) would depend on timing.
#include <cmath>

#include "common.cuh"

namespace kg::cuda {
namespace detail {
namespace {

constexpr int kThreads = 256;

template <typename I>
struct MaxPoolIndex {
  using Div = typename IndexTraits<I>::Div;
  I total;
  Div w, h, ow, oh, sh, sw;
  I kh, kw, ph, pw, hsz, wsz, ohsz, owsz, stride_h, stride_w;
};

template <typename I>
MaxPoolIndex<I> maxpool_index(const MaxPoolShape& s, int64_t total) {
  using Div = typename IndexTraits<I>::Div;
  MaxPoolIndex<I> p{};
  p.total = static_cast<I>(total);
  p.w = Div(s.w);
  p.h = Div(s.h);
  p.ow = Div(s.ow);
  p.oh = Div(s.oh);
  p.sh = Div(s.sh);
  p.sw = Div(s.sw);
  p.kh = static_cast<I>(s.kh);
  p.kw = static_cast<I>(s.kw);
  p.ph = static_cast<I>(s.ph);
  p.pw = static_cast<I>(s.pw);
  p.hsz = static_cast<I>(s.h);
  p.wsz = static_cast<I>(s.w);
  p.ohsz = static_cast<I>(s.oh);
  p.owsz = static_cast<I>(s.ow);
  p.stride_h = static_cast<I>(s.sh);
  p.stride_w = static_cast<I>(s.sw);
  return p;
}

// The window's rows [r0, r1) inside the input, for a window starting at padded row `start`.
template <typename I>
__device__ __forceinline__ void clip(I start, I pad, I k, I size, I& r0, I& r1) {
  r0 = start >= pad ? start - pad : 0;
  r1 = min(start + k - pad, size);  // start + k > pad: padding is at most half the window
}

template <typename I>
__global__ void __launch_bounds__(kThreads)
    maxpool_forward_kernel(const MaxPoolIndex<I> p, const float* __restrict__ x, float* __restrict__ y,
                           float* __restrict__ argmax) {
  const I step = static_cast<I>(gridDim.x) * blockDim.x;
  for (I idx = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; idx < p.total; idx += step) {
    const I t = p.ow.div(idx), oj = p.ow.mod(idx, t);
    const I nc = p.oh.div(t), oi = p.oh.mod(t, nc);
    I r0, r1, c0, c1;
    clip(oi * p.stride_h, p.ph, p.kh, p.hsz, r0, r1);
    clip(oj * p.stride_w, p.pw, p.kw, p.wsz, c0, c1);
    const float* plane = x + nc * p.hsz * p.wsz;
    float best = -INFINITY;
    I where = r0 * p.wsz + c0;
    for (I r = r0; r < r1; ++r) {
      for (I c = c0; c < c1; ++c) {
        const float v = plane[r * p.wsz + c];
        // Strictly greater keeps the first of equal maxima; the first NaN (v != v) wins and stays.
        if (v > best || (v != v && best == best)) {
          best = v;
          where = r * p.wsz + c;
        }
      }
    }
    y[idx] = best;
    argmax[idx] = static_cast<float>(where);
  }
}

// Output rows whose window covers padded row i: o * stride <= i < o * stride + k, 0 <= o < out.
template <typename I, typename Div>
__device__ __forceinline__ void covering(I i, I k, const Div& stride, I out, I& lo, I& hi) {
  lo = i >= k ? stride.div(i - k) + 1 : 0;
  hi = min(stride.div(i), out - 1);
}

template <typename I>
__global__ void __launch_bounds__(kThreads)
    maxpool_backward_kernel(const MaxPoolIndex<I> p, const float* __restrict__ dy, const float* __restrict__ argmax,
                            float* __restrict__ dx) {
  const I step = static_cast<I>(gridDim.x) * blockDim.x;
  for (I idx = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; idx < p.total; idx += step) {
    const I t = p.w.div(idx), j = p.w.mod(idx, t);
    const I nc = p.h.div(t), i = p.h.mod(t, nc);
    I oi_lo, oi_hi, oj_lo, oj_hi;
    covering(i + p.ph, p.kh, p.sh, p.ohsz, oi_lo, oi_hi);
    covering(j + p.pw, p.kw, p.sw, p.owsz, oj_lo, oj_hi);
    const I offset = nc * p.ohsz * p.owsz;
    const float me = static_cast<float>(i * p.wsz + j);
    float sum = 0.0f;
    for (I oi = oi_lo; oi <= oi_hi; ++oi) {  // empty when lo > hi
      for (I oj = oj_lo; oj <= oj_hi; ++oj) {
        const I o = offset + oi * p.owsz + oj;
        if (argmax[o] == me) sum += dy[o];
      }
    }
    dx[idx] = sum;
  }
}

std::string sizes_of(const char* op, const MaxPoolShape& s) {
  return describe(op, " n=", s.n, " c=", s.c, " h=", s.h, " w=", s.w, " k=", s.kh, "x", s.kw, " s=", s.sh, "x", s.sw,
                  " p=", s.ph, "x", s.pw);
}

}  // namespace
}  // namespace detail

void maxpool2d_forward(const MaxPoolShape& s, const float* x, float* y, float* argmax) {
  using namespace detail;
  const int64_t total = s.n * s.c * s.oh * s.ow;
  if (total <= 0) return;
  if (fits_u32(std::max(total, s.n * s.c * s.h * s.w))) {
    maxpool_forward_kernel<uint32_t><<<grid_for(total, kThreads), kThreads, 0, stream()>>>(
        maxpool_index<uint32_t>(s, total), x, y, argmax);
  } else {
    maxpool_forward_kernel<uint64_t><<<grid_for(total, kThreads), kThreads, 0, stream()>>>(
        maxpool_index<uint64_t>(s, total), x, y, argmax);
  }
  check_launch("launch of maxpool_forward_kernel", [&] { return sizes_of("maxpool2d_forward", s); });
}

void maxpool2d_backward(const MaxPoolShape& s, const float* dy, const float* argmax, float* dx) {
  using namespace detail;
  const int64_t total = s.n * s.c * s.h * s.w;
  if (total <= 0) return;
  if (fits_u32(std::max(total, s.n * s.c * s.oh * s.ow))) {
    maxpool_backward_kernel<uint32_t><<<grid_for(total, kThreads), kThreads, 0, stream()>>>(
        maxpool_index<uint32_t>(s, total), dy, argmax, dx);
  } else {
    maxpool_backward_kernel<uint64_t><<<grid_for(total, kThreads), kThreads, 0, stream()>>>(
        maxpool_index<uint64_t>(s, total), dy, argmax, dx);
  }
  check_launch("launch of maxpool_backward_kernel", [&] { return sizes_of("maxpool2d_backward", s); });
}

}  // namespace kg::cuda
