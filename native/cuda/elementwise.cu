// Elementwise ops: broadcasting binary ops, fill, axpby, ReLU forward and backward.
//
// All are memory-bound, so the aim is to move bytes: float4 accesses when every pointer is
// 16-byte aligned, grid-stride loops sized to a few waves, and for broadcasting, as little
// index arithmetic as possible (dimensions are merged on the host first, and the general kernel
// uses 32-bit multiply-shift division whenever the sizes allow).
//
// No __restrict__ here: several of these run in place (out == a, y == x), which is fine for an
// elementwise op, where each element is read and then written by the same thread.
#include "common.cuh"

namespace kg::cuda {
namespace detail {
namespace {

constexpr int kThreads = 256;

template <BinaryOp kOp>
__device__ __forceinline__ float binary_op(float a, float b) {
  if constexpr (kOp == BinaryOp::Add) return a + b;
  else if constexpr (kOp == BinaryOp::Sub) return a - b;
  else if constexpr (kOp == BinaryOp::Mul) return a * b;
  else return a / b;  // IEEE division (no fast-math), bitwise like the CPU
}

// a (op) b where each operand is either a full contiguous array or one broadcast scalar.
template <BinaryOp kOp, bool kScalarA, bool kScalarB>
struct ContiguousBinary {
  const float* a;
  const float* b;
  float* out;
  __device__ __forceinline__ float4 get4(const float* p, int64_t i, bool scalar) const {
    if (scalar) {
      const float v = *p;
      return make_float4(v, v, v, v);
    }
    return ld4(p + i);
  }
  __device__ __forceinline__ void vec4(int64_t i) const {
    const float4 x = get4(a, i, kScalarA), y = get4(b, i, kScalarB);
    st4(out + i, make_float4(binary_op<kOp>(x.x, y.x), binary_op<kOp>(x.y, y.y), binary_op<kOp>(x.z, y.z),
                             binary_op<kOp>(x.w, y.w)));
  }
  __device__ __forceinline__ void one(int64_t i) const {
    out[i] = binary_op<kOp>(kScalarA ? *a : a[i], kScalarB ? *b : b[i]);
  }
};

// The general case: up to kMaxDims dimensions with arbitrary (0 = broadcast) strides. The flat
// output index is split into coordinates from the innermost dimension out.
template <typename I>
struct BroadcastIndex {
  int ndim;
  typename IndexTraits<I>::Div div[kMaxDims];  // by shape[d]
  I astride[kMaxDims], bstride[kMaxDims];
};

template <BinaryOp kOp, typename I>
__global__ void __launch_bounds__(kThreads)
    broadcast_binary_kernel(I total, BroadcastIndex<I> ix, const float* a, const float* b, float* out) {
  const I stride = static_cast<I>(gridDim.x) * blockDim.x;
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    I rest = i, ao = 0, bo = 0;
#pragma unroll
    for (int d = kMaxDims - 1; d >= 0; --d) {
      if (d < ix.ndim) {
        const I q = ix.div[d].div(rest), coord = ix.div[d].mod(rest, q);
        ao += coord * ix.astride[d];
        bo += coord * ix.bstride[d];
        rest = q;
      }
    }
    out[i] = binary_op<kOp>(a[ao], b[bo]);
  }
}

// The shape with size-1 dimensions dropped and neighbours merged wherever both operands (and the
// contiguous output) step through them as one: (2, 3, 4) + (2, 3, 4) is one dimension of 24,
// (64, 10) + (1, 10) is (64, 10) with a's strides (10, 1) and b's (0, 1).
struct Collapsed {
  int ndim = 0;
  int64_t shape[kMaxDims], astride[kMaxDims], bstride[kMaxDims];
};

Collapsed collapse(const BroadcastShape& s) {
  Collapsed c;
  for (int d = 0; d < s.ndim; ++d) {
    if (s.shape[d] == 1) continue;
    if (c.ndim > 0) {
      const int last = c.ndim - 1;
      if (c.astride[last] == s.astride[d] * s.shape[d] && c.bstride[last] == s.bstride[d] * s.shape[d]) {
        c.shape[last] *= s.shape[d];
        c.astride[last] = s.astride[d];
        c.bstride[last] = s.bstride[d];
        continue;
      }
    }
    c.shape[c.ndim] = s.shape[d];
    c.astride[c.ndim] = s.astride[d];
    c.bstride[c.ndim] = s.bstride[d];
    ++c.ndim;
  }
  return c;
}

template <BinaryOp kOp, typename I, class Sizes>
void launch_broadcast(const Collapsed& c, int64_t total, const float* a, const float* b, float* out,
                      const Sizes& sizes) {
  BroadcastIndex<I> ix{};
  ix.ndim = c.ndim;
  for (int d = 0; d < c.ndim; ++d) {
    ix.div[d] = typename IndexTraits<I>::Div(static_cast<uint64_t>(c.shape[d]));
    ix.astride[d] = static_cast<I>(c.astride[d]);
    ix.bstride[d] = static_cast<I>(c.bstride[d]);
  }
  broadcast_binary_kernel<kOp, I><<<grid_for(total, kThreads), kThreads, 0, stream()>>>(static_cast<I>(total), ix, a,
                                                                                         b, out);
  check_launch("launch of broadcast_binary_kernel", sizes);
}

template <BinaryOp kOp, class Sizes>
void binary_typed(const BroadcastShape& s, const float* a, const float* b, float* out, const Sizes& sizes) {
  int64_t total = 1;
  for (int d = 0; d < s.ndim; ++d) total *= s.shape[d];
  if (total <= 0) return;
  const Collapsed c = collapse(s);

  // One dimension left (or none): contiguous operands or broadcast scalars, the fast paths.
  if (c.ndim <= 1) {
    const bool scalar_a = c.ndim == 0 || c.astride[0] == 0, scalar_b = c.ndim == 0 || c.bstride[0] == 0;
    const bool unit_a = c.ndim == 0 || c.astride[0] == 1, unit_b = c.ndim == 0 || c.bstride[0] == 1;
    if ((scalar_a || unit_a) && (scalar_b || unit_b)) {
      const bool vec = aligned16(out) && (scalar_a || aligned16(a)) && (scalar_b || aligned16(b));
      const char* name = "launch of map_kernel<binary>";
      if (!scalar_a && !scalar_b) run_map(total, vec, ContiguousBinary<kOp, false, false>{a, b, out}, name, sizes);
      else if (!scalar_a) run_map(total, vec, ContiguousBinary<kOp, false, true>{a, b, out}, name, sizes);
      else if (!scalar_b) run_map(total, vec, ContiguousBinary<kOp, true, false>{a, b, out}, name, sizes);
      else run_map(total, vec, ContiguousBinary<kOp, true, true>{a, b, out}, name, sizes);
      return;
    }
  }
  // Largest offset either operand reaches decides whether 32-bit index arithmetic is safe.
  int64_t amax = 0, bmax = 0;
  for (int d = 0; d < c.ndim; ++d) {
    amax += (c.shape[d] - 1) * c.astride[d];
    bmax += (c.shape[d] - 1) * c.bstride[d];
  }
  if (fits_u32(std::max({total, amax + 1, bmax + 1}))) launch_broadcast<kOp, uint32_t>(c, total, a, b, out, sizes);
  else launch_broadcast<kOp, uint64_t>(c, total, a, b, out, sizes);
}

struct Fill {
  float value;
  float* out;
  __device__ __forceinline__ void vec4(int64_t i) const { st4(out + i, make_float4(value, value, value, value)); }
  __device__ __forceinline__ void one(int64_t i) const { out[i] = value; }
};

// y = alpha * x + beta * y; with beta == 0, y is only written (it may hold garbage or NaNs).
template <bool kReadY>
struct Axpby {
  float alpha, beta;
  const float* x;
  float* y;
  __device__ __forceinline__ float f(float xv, float yv) const { return kReadY ? alpha * xv + beta * yv : alpha * xv; }
  __device__ __forceinline__ void vec4(int64_t i) const {
    const float4 xv = ld4(x + i);
    const float4 yv = kReadY ? ld4(y + i) : make_float4(0.f, 0.f, 0.f, 0.f);
    st4(y + i, make_float4(f(xv.x, yv.x), f(xv.y, yv.y), f(xv.z, yv.z), f(xv.w, yv.w)));
  }
  __device__ __forceinline__ void one(int64_t i) const { y[i] = f(x[i], kReadY ? y[i] : 0.0f); }
};

// max(x, 0) written as a comparison: NaN maps to 0 like the CPU's `x > 0 ? x : 0`.
__device__ __forceinline__ float relu(float v) { return v > 0.0f ? v : 0.0f; }

struct ReluForward {
  const float* x;
  float* y;
  __device__ __forceinline__ void vec4(int64_t i) const {
    const float4 v = ld4(x + i);
    st4(y + i, make_float4(relu(v.x), relu(v.y), relu(v.z), relu(v.w)));
  }
  __device__ __forceinline__ void one(int64_t i) const { y[i] = relu(x[i]); }
};

struct ReluBackward {
  const float* x;
  const float* dy;
  float* dx;
  __device__ __forceinline__ static float g(float xv, float d) { return xv > 0.0f ? d : 0.0f; }
  __device__ __forceinline__ void vec4(int64_t i) const {
    const float4 v = ld4(x + i), d = ld4(dy + i);
    st4(dx + i, make_float4(g(v.x, d.x), g(v.y, d.y), g(v.z, d.z), g(v.w, d.w)));
  }
  __device__ __forceinline__ void one(int64_t i) const { dx[i] = g(x[i], dy[i]); }
};

}  // namespace
}  // namespace detail

void binary(BinaryOp op, const BroadcastShape& s, const float* a, const float* b, float* out) {
  using namespace detail;
  if (s.ndim < 0 || s.ndim > kMaxDims) {
    throw CudaError(describe("binary: ndim must be 0..", kMaxDims, ", got ", s.ndim));
  }
  auto sizes = [&] {
    std::ostringstream d;
    d << "binary op " << static_cast<int>(op) << " shape (";
    for (int i = 0; i < s.ndim; ++i) d << (i ? "," : "") << s.shape[i];
    d << ")";
    return d.str();
  };
  switch (op) {
    case BinaryOp::Add: return binary_typed<BinaryOp::Add>(s, a, b, out, sizes);
    case BinaryOp::Sub: return binary_typed<BinaryOp::Sub>(s, a, b, out, sizes);
    case BinaryOp::Mul: return binary_typed<BinaryOp::Mul>(s, a, b, out, sizes);
    case BinaryOp::Div: return binary_typed<BinaryOp::Div>(s, a, b, out, sizes);
  }
  throw CudaError(describe("binary: unknown op ", static_cast<int>(op)));
}

void fill(int64_t n, float value, float* out) {
  using namespace detail;
  run_map(n, aligned16(out), Fill{value, out}, "launch of map_kernel<fill>", [&] { return describe("fill n=", n); });
}

void axpby(int64_t n, float alpha, const float* x, float beta, float* y) {
  using namespace detail;
  auto sizes = [&] { return describe("axpby n=", n); };
  const bool vec = aligned16(x) && aligned16(y);
  if (beta == 0.0f) run_map(n, vec, Axpby<false>{alpha, beta, x, y}, "launch of map_kernel<axpby>", sizes);
  else run_map(n, vec, Axpby<true>{alpha, beta, x, y}, "launch of map_kernel<axpby>", sizes);
}

void relu_forward(int64_t n, const float* x, float* y) {
  using namespace detail;
  run_map(n, aligned16(x) && aligned16(y), ReluForward{x, y}, "launch of map_kernel<relu_forward>",
          [&] { return describe("relu_forward n=", n); });
}

void relu_backward(int64_t n, const float* x, const float* dy, float* dx) {
  using namespace detail;
  run_map(n, aligned16(x) && aligned16(dy) && aligned16(dx), ReluBackward{x, dy, dx},
          "launch of map_kernel<relu_backward>", [&] { return describe("relu_backward n=", n); });
}

}  // namespace kg::cuda
