// Elementwise kernels: broadcasting binary ops, fill, copy, axpby and ReLU. All are memory-bound
// loops, split into fixed chunks for the threads (results never depend on the split).
#include <algorithm>
#include <cstring>

#include "kg/ops.h"
#include "parallel.h"

namespace kg::cpu {
namespace {

// A broadcast shape with size-1 dimensions dropped and neighbours merged wherever both operands
// step through them as through one dimension. Common cases come out as 1-3 dims with a long,
// unit-or-zero-stride innermost dimension: same-shape operands become one flat run, a bias over
// the last dim becomes (rows, cols) with b's row stride 0, a per-channel value over (n, c, h, w)
// becomes (n, c, h*w) with b's innermost stride 0.
BroadcastShape collapse(const BroadcastShape& in) {
  BroadcastShape out{};
  out.ndim = 0;
  for (int d = 0; d < in.ndim; ++d) {
    if (in.shape[d] == 1) continue;
    const int last = out.ndim - 1;
    if (last >= 0 && out.astride[last] == in.astride[d] * in.shape[d] &&
        out.bstride[last] == in.bstride[d] * in.shape[d]) {
      out.shape[last] *= in.shape[d];  // the previous dimension steps over this one
      out.astride[last] = in.astride[d];
      out.bstride[last] = in.bstride[d];
      continue;
    }
    out.shape[out.ndim] = in.shape[d];
    out.astride[out.ndim] = in.astride[d];
    out.bstride[out.ndim] = in.bstride[d];
    ++out.ndim;
  }
  if (out.ndim == 0) {  // a single element
    out.ndim = 1;
    out.shape[0] = 1;
    out.astride[0] = out.bstride[0] = 0;
  }
  return out;
}

struct Add { float operator()(float a, float b) const { return a + b; } };
struct Sub { float operator()(float a, float b) const { return a - b; } };
struct Mul { float operator()(float a, float b) const { return a * b; } };
struct Div { float operator()(float a, float b) const { return a / b; } };

// One innermost run, with a loop the compiler vectorizes for each common stride pattern.
template <class Op>
void binary_run(Op op, int64_t n, const float* a, int64_t as, const float* b, int64_t bs, float* out) {
  if (as == 1 && bs == 1) {
    for (int64_t i = 0; i < n; ++i) out[i] = op(a[i], b[i]);
  } else if (as == 1 && bs == 0) {
    const float bv = *b;
    for (int64_t i = 0; i < n; ++i) out[i] = op(a[i], bv);
  } else if (as == 0 && bs == 1) {
    const float av = *a;
    for (int64_t i = 0; i < n; ++i) out[i] = op(av, b[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = op(a[i * as], b[i * bs]);
  }
}

template <class Op>
void binary_impl(Op op, const BroadcastShape& s, const float* a, const float* b, float* out) {
  const int inner_dim = s.ndim - 1;
  const int64_t inner = s.shape[inner_dim];
  int64_t rows = 1;
  for (int d = 0; d < inner_dim; ++d) rows *= s.shape[d];
  parallel_range(rows, std::max<int64_t>(1, kElementwiseGrain / inner), [&](int64_t begin, int64_t end) {
    // The multi-index of row `begin` over the outer dims, then stepped like an odometer.
    int64_t idx[kMaxDims] = {};
    int64_t aoff = 0, boff = 0;
    int64_t r = begin;
    for (int d = inner_dim - 1; d >= 0; --d) {
      idx[d] = r % s.shape[d];
      r /= s.shape[d];
      aoff += idx[d] * s.astride[d];
      boff += idx[d] * s.bstride[d];
    }
    for (int64_t row = begin; row < end; ++row) {
      binary_run(op, inner, a + aoff, s.astride[inner_dim], b + boff, s.bstride[inner_dim], out + row * inner);
      for (int d = inner_dim - 1; d >= 0; --d) {
        aoff += s.astride[d];
        boff += s.bstride[d];
        if (++idx[d] < s.shape[d]) break;
        aoff -= idx[d] * s.astride[d];
        boff -= idx[d] * s.bstride[d];
        idx[d] = 0;
      }
    }
  });
}

}  // namespace

void binary(BinaryOp op, const BroadcastShape& shape, const float* a, const float* b, float* out) {
  for (int d = 0; d < shape.ndim; ++d) {
    if (shape.shape[d] == 0) return;
  }
  const BroadcastShape s = collapse(shape);
  switch (op) {
    case BinaryOp::Add: return binary_impl(Add{}, s, a, b, out);
    case BinaryOp::Sub: return binary_impl(Sub{}, s, a, b, out);
    case BinaryOp::Mul: return binary_impl(Mul{}, s, a, b, out);
    case BinaryOp::Div: return binary_impl(Div{}, s, a, b, out);
  }
}

void fill(int64_t n, float value, float* out) {
  parallel_range(n, kElementwiseGrain, [&](int64_t begin, int64_t end) { std::fill(out + begin, out + end, value); });
}

void copy(int64_t n, const float* x, float* out) {
  if (x == out) return;
  parallel_range(n, kElementwiseGrain, [&](int64_t begin, int64_t end) {
    std::memmove(out + begin, x + begin, size_t(end - begin) * sizeof(float));
  });
}

void axpby(int64_t n, float alpha, const float* x, float beta, float* y) {
  parallel_range(n, kElementwiseGrain, [&](int64_t begin, int64_t end) {
    if (beta == 0.0f) {
      for (int64_t i = begin; i < end; ++i) y[i] = alpha * x[i];
    } else {
      for (int64_t i = begin; i < end; ++i) y[i] = alpha * x[i] + beta * y[i];
    }
  });
}

// max(x, 0) that lets NaN through (so a diverging network shows up as NaN, not as zeros).
void relu_forward(int64_t n, const float* x, float* y) {
  parallel_range(n, kElementwiseGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) y[i] = (x[i] > 0.0f || x[i] != x[i]) ? x[i] : 0.0f;
  });
}

void relu_backward(int64_t n, const float* x, const float* dy, float* dx) {
  parallel_range(n, kElementwiseGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float g = dy[i];  // read unconditionally, so the select vectorizes (no branch)
      dx[i] = x[i] > 0.0f ? g : 0.0f;
    }
  });
}

}  // namespace kg::cpu
