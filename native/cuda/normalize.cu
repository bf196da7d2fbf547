// Normalization over the groups of a NormShape (group norm, layer norm, batch renorm) on the GPU,
// the same kernels for all three as on the CPU (native/cpu/normalize.cpp), with its numerics:
// statistics in double, two passes (the mean, then squared deviations around it); the mean kept as
// a float pair hi + lo so x - mean = (x - hi) - lo stays exact when |mean| >> std; invstd =
// float(1 / sqrt(double(var) + eps)); r and d clipped in double and rounded once.
//
// Forward: a statistics kernel (one block per group, grid-stride over groups) that also writes
// the per-group outputs, then an elementwise kernel. Backward: a kernel of per-group sums that
// turns them into dx's coefficients, an elementwise kernel for dx, and one block per parameter
// for dgamma and dbeta. Every sum runs over a fixed thread/element assignment and a fixed shuffle
// tree: deterministic, no atomics; every block writes only its own group's or parameter's words.
#include <cmath>

#include "common.cuh"

namespace kg::cuda {
namespace detail {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / kWarp;

struct Sums {
  double a, b;
};

// The sum over the block, valid in every thread. `smem` holds kWarps Sums; ends with a barrier.
__device__ __forceinline__ Sums block_sums(Sums v, Sums* smem) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    v.a += __shfl_xor_sync(kFullMask, v.a, o);
    v.b += __shfl_xor_sync(kFullMask, v.b, o);
  }
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  Sums total{0.0, 0.0};
  for (int w = 0; w < kWarps; ++w) {  // the same order in every thread
    total.a += smem[w].a;
    total.b += smem[w].b;
  }
  __syncthreads();
  return total;
}

// The index of the t-th of the m = outer * inner elements of group g.
__device__ __forceinline__ int64_t group_element(const NormShape& s, int64_t g, int64_t t) {
  const int64_t o = t / s.inner;
  return (o * s.groups + g) * s.inner + (t - o * s.inner);
}

struct Forward {
  const float* x;
  float eps;
  const float* running_mean;  // null without renorm
  const float* running_var;
  float r_max, d_max;
  float* batch_var;  // renorm only
  float* r;
  float* d;
  float* mean;
  float* mean_lo;
  float* invstd;
};

__global__ void __launch_bounds__(kThreads) statistics_kernel(NormShape s, Forward f) {
  __shared__ Sums smem[kWarps];
  const int64_t m = s.outer * s.inner;
  for (int64_t g = blockIdx.x; g < s.groups; g += gridDim.x) {
    double sum = 0.0;
    for (int64_t t = threadIdx.x; t < m; t += kThreads) sum += double(f.x[group_element(s, g, t)]);
    const double mean = m ? block_sums({sum, 0.0}, smem).a / double(m) : 0.0;
    double sq = 0.0;
    for (int64_t t = threadIdx.x; t < m; t += kThreads) {
      const double dev = double(f.x[group_element(s, g, t)]) - mean;
      sq += dev * dev;
    }
    const double var = m ? block_sums({sq, 0.0}, smem).a / double(m) : 0.0;
    if (threadIdx.x == 0) {
      const float hi = float(mean), var_f = float(var);
      // A variance beyond float (values near 1e38) still has a representable invstd.
      const float invstd = float(1.0 / sqrt((var_f <= kFloatMax ? double(var_f) : var) + double(f.eps)));
      f.mean[g] = hi;
      f.mean_lo[g] = float(mean - double(hi));
      f.invstd[g] = invstd;
      if (f.running_mean) {
        const double sigma = sqrt(double(f.running_var[g]) + double(f.eps));
        const double r = (1.0 / double(invstd)) / sigma;
        const double d = (mean - double(f.running_mean[g])) / sigma;
        f.batch_var[g] = var_f;
        f.r[g] = float(fmin(fmax(r, 1.0 / double(f.r_max)), double(f.r_max)));
        f.d[g] = float(fmin(fmax(d, -double(f.d_max)), double(f.d_max)));
      }
    }
  }
}

// y = (((x - hi) - lo) * invstd * r + d) * gamma[p] + beta[p]
struct ApplyOp {
  NormShape s;
  const float *x, *gamma, *beta, *mean, *mean_lo, *invstd, *r, *d;
  float* y;
  __device__ void one(int64_t e) const {
    const int64_t g = e / s.inner % s.groups, p = e / s.run % s.params;
    const float k = invstd[g] * (r ? r[g] : 1.0f), shift = d ? d[g] : 0.0f;
    y[e] = (((x[e] - mean[g]) - mean_lo[g]) * k + shift) * gamma[p] + beta[p];
  }
  __device__ void vec4(int64_t e) const {
    for (int64_t j = e; j < e + 4; ++j) one(j);
  }
};

struct Backward {
  const float *x, *dy, *gamma, *mean, *mean_lo, *invstd, *r, *d;
  float* coef;  // per group: k, s1 / m, invstd^2 * s2 / m
};

// Per group, with g = dy * gamma[p]: s1 = sum g and s2 = sum g * (x - mean), as dx's coefficients.
__global__ void __launch_bounds__(kThreads) grad_sums_kernel(NormShape s, Backward b) {
  __shared__ Sums smem[kWarps];
  const int64_t m = s.outer * s.inner;
  for (int64_t g = blockIdx.x; g < s.groups; g += gridDim.x) {
    const double mean = double(b.mean[g]) + double(b.mean_lo[g]);
    Sums acc{0.0, 0.0};
    for (int64_t t = threadIdx.x; t < m; t += kThreads) {
      const int64_t e = group_element(s, g, t);
      const double v = double(b.dy[e]) * double(b.gamma[e / s.run % s.params]);
      acc.a += v;
      acc.b += v * (double(b.x[e]) - mean);
    }
    const Sums total = block_sums(acc, smem);
    if (threadIdx.x == 0) {
      const double invstd = b.invstd[g];
      b.coef[3 * g] = b.invstd[g] * (b.r ? b.r[g] : 1.0f);
      b.coef[3 * g + 1] = m ? float(total.a / double(m)) : 0.0f;
      b.coef[3 * g + 2] = m ? float(invstd * invstd * total.b / double(m)) : 0.0f;
    }
  }
}

// dx = k * ((dy * gamma[p] - s1 / m) - (x - mean) * invstd^2 * s2 / m)
struct DxOp {
  NormShape s;
  const float *x, *dy, *gamma, *mean, *mean_lo, *coef;
  float* dx;
  __device__ void one(int64_t e) const {
    const int64_t g = e / s.inner % s.groups, p = e / s.run % s.params;
    const float* c = coef + 3 * g;
    dx[e] = c[0] * ((dy[e] * gamma[p] - c[1]) - ((x[e] - mean[g]) - mean_lo[g]) * c[2]);
  }
  __device__ void vec4(int64_t e) const {
    for (int64_t j = e; j < e + 4; ++j) one(j);
  }
};

// dgamma[p] = sum dy * xhat, dbeta[p] = sum dy over the elements of parameter p: x is `blocks`
// repetitions of params * run elements, p's are the run at offset p * run of each.
__global__ void __launch_bounds__(kThreads) param_grads_kernel(NormShape s, Backward b, float* dgamma, float* dbeta) {
  __shared__ Sums smem[kWarps];
  const int64_t count = s.outer * s.groups * s.inner / s.params;  // blocks * run
  for (int64_t p = blockIdx.x; p < s.params; p += gridDim.x) {
    Sums acc{0.0, 0.0};
    for (int64_t t = threadIdx.x; t < count; t += kThreads) {
      const int64_t k = t / s.run, e = (k * s.params + p) * s.run + (t - k * s.run);
      const int64_t g = e / s.inner % s.groups;
      const float xhat = ((b.x[e] - b.mean[g]) - b.mean_lo[g]) * (b.invstd[g] * (b.r ? b.r[g] : 1.0f)) + (b.d ? b.d[g] : 0.0f);
      acc.a += double(b.dy[e]) * double(xhat);
      acc.b += double(b.dy[e]);
    }
    const Sums total = block_sums(acc, smem);
    if (threadIdx.x == 0) {
      dgamma[p] = float(total.a);
      dbeta[p] = float(total.b);
    }
  }
}

std::string sizes(const NormShape& s) {
  return describe("outer=", s.outer, " groups=", s.groups, " inner=", s.inner, " params=", s.params, " run=", s.run);
}

void forward(const NormShape& s, const float* x, const float* gamma, const float* beta, const Forward& f, float* y) {
  auto what = [&] { return sizes(s); };
  if (s.groups == 0) return;
  statistics_kernel<<<grid_exact(s.groups), kThreads, 0, stream()>>>(s, f);
  check_launch("launch of statistics_kernel", what);
  const int64_t n = s.outer * s.groups * s.inner;
  ApplyOp op{s, x, gamma, beta, f.mean, f.mean_lo, f.invstd, f.r, f.d, y};
  run_map(n, false, op, "launch of normalize apply", what);
}

}  // namespace
}  // namespace detail

void norm_forward(const NormShape& s, const float* x, const float* gamma, const float* beta, float eps, float* y,
                  float* save_mean, float* save_mean_lo, float* save_invstd) {
  detail::Forward f{x, eps, nullptr, nullptr, 1.0f, 0.0f, nullptr, nullptr, nullptr, save_mean, save_mean_lo, save_invstd};
  detail::forward(s, x, gamma, beta, f, y);
}

void renorm_forward(const NormShape& s, const float* x, const float* gamma, const float* beta, float eps,
                    const RenormArgs& rn, float* y, float* save_mean, float* save_mean_lo, float* save_invstd) {
  detail::Forward f{x,         eps,  rn.running_mean, rn.running_var, rn.r_max,   rn.d_max,
                    rn.batch_var, rn.r, rn.d,           save_mean,      save_mean_lo, save_invstd};
  detail::forward(s, x, gamma, beta, f, y);
}

void norm_backward(const NormShape& s, const float* x, const float* dy, const float* gamma, const float* save_mean,
                   const float* save_mean_lo, const float* save_invstd, const float* r, const float* d, float* dx,
                   float* dgamma, float* dbeta) {
  using namespace detail;
  auto what = [&] { return sizes(s); };
  Scratch coef(static_cast<size_t>(std::max<int64_t>(s.groups, 1)) * 3 * sizeof(float));
  Backward b{x, dy, gamma, save_mean, save_mean_lo, save_invstd, r, d, coef.as<float>()};
  param_grads_kernel<<<grid_exact(s.params), kThreads, 0, stream()>>>(s, b, dgamma, dbeta);
  check_launch("launch of param_grads_kernel", what);
  const int64_t n = s.outer * s.groups * s.inner;
  if (!dx || n == 0) return;
  grad_sums_kernel<<<grid_exact(s.groups), kThreads, 0, stream()>>>(s, b);
  check_launch("launch of grad_sums_kernel", what);
  DxOp op{s, x, dy, gamma, save_mean, save_mean_lo, coef.as<float>(), dx};
  run_map(n, false, op, "launch of normalize dx", what);
}

}  // namespace kg::cuda
