// Normalization over the groups of a NormShape: group norm, layer norm and batch renorm share
// these kernels, since each is "mean and variance over a set of axes, then a per-parameter affine
// map"; only the shape (kg/shapes.h) and batch renorm's r and d tell them apart.
//
// Numerics: the statistics are batch norm's (batchnorm.cpp), two passes in double (the mean, then
// the squared deviations around the double mean), so they are exact to fp32 rounding at any mean
// and a constant group gets exactly zero variance; invstd = float(1 / sqrt(double(var) + eps)).
// The mean is kept as a float pair hi + lo and x - mean is formed as (x - hi) - lo: x - hi is
// exact when x is near the mean, so the normalized output keeps full precision even at a mean of
// 1e4 with a spread of 0.1, where x - float(mean) alone would be off by 5e-3 of the spread.
//
// Determinism: a group's sums run in a fixed order over its (o, i) elements; the parameter
// gradients are summed in chunks whose boundaries depend only on the shape, added in chunk order.
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <utility>
#include <vector>

#include "accumulate.h"
#include "kg/ops.h"
#include "parallel.h"

namespace kg::cpu {
namespace {

constexpr int64_t kParallelWork = 32768;
// At most this many chunks of partial parameter gradients (each holds 2 * params doubles).
constexpr int64_t kMaxGradChunks = 64;

int64_t numel(const NormShape& s) { return s.outer * s.groups * s.inner; }

float inv_std(double var, float eps) { return float(1.0 / std::sqrt(var + double(eps))); }

// Calls f(base, len) for each contiguous stretch x[base, base + len) of group g, in order.
template <class F>
void for_each_stretch(const NormShape& s, int64_t g, F&& f) {
  if (s.inner == 0) return;  // no elements, however large outer is (it may be up to 2^53)
  for (int64_t o = 0; o < s.outer; ++o) f((o * s.groups + g) * s.inner, s.inner);
}

// Calls f(step, e0, n, p0) for the spans of x[base, base + len), a stretch inside one group:
// element e0 + j of a span uses parameter p0 + j * step, where step is a compile-time 1 when
// every element has its own parameter (run == 1, layer norm) and 0 when a run of elements shares
// one (group norm, batch renorm). The constant step lets the loops over a span vectorize.
template <class F>
void for_each_span(const NormShape& s, int64_t base, int64_t len, F&& f) {
  int64_t p = base / s.run % s.params;
  if (s.run == 1) {
    for (int64_t e0 = base; e0 < base + len; p = 0) {
      const int64_t n = std::min(base + len - e0, s.params - p);
      f(std::integral_constant<int64_t, 1>{}, e0, n, p);
      e0 += n;
    }
  } else {
    for (int64_t e0 = base; e0 < base + len; e0 += s.run) {
      f(std::integral_constant<int64_t, 0>{}, e0, s.run, p);
      if (++p == s.params) p = 0;
    }
  }
}

// for_each_span over every stretch of group g.
template <class F>
void for_each_group_span(const NormShape& s, int64_t g, F&& f) {
  for_each_stretch(s, g, [&](int64_t base, int64_t len) { for_each_span(s, base, len, f); });
}

// sa += sum of the first terms, sb += sum of the second over j < n, where terms(j) returns the
// pair for element j: in 8 double lanes added in a fixed order (vectorizable without
// reassociating anything, so the result depends only on the data).
template <class Terms>
void lane_sums(int64_t n, Terms&& terms, double& sa, double& sb) {
  constexpr int kLanes = 8;
  double a[kLanes] = {}, b[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const auto [ta, tb] = terms(j + l);
      a[l] += ta;
      b[l] += tb;
    }
  }
  for (; j < n; ++j) {
    const auto [ta, tb] = terms(j);
    a[0] += ta;
    b[0] += tb;
  }
  for (int l = 0; l < kLanes; ++l) {
    sa += a[l];
    sb += b[l];
  }
}

// mean and biased variance of every group, in double.
void group_statistics(const NormShape& s, const float* x, std::vector<double>& mean, std::vector<double>& var) {
  const double m = double(s.outer * s.inner);
  mean.assign(s.groups, 0.0);
  var.assign(s.groups, 0.0);
  if (m == 0) return;
  parallel_for(s.groups, numel(s) > kParallelElements, [&](int64_t g) {
    double total = 0.0, sq = 0.0;
    for_each_stretch(s, g, [&](int64_t base, int64_t len) { total += sum(x + base, len); });
    const double mu = total / m;
    for_each_stretch(s, g, [&](int64_t base, int64_t len) { sq += sum_squared_deviation(x + base, len, mu); });
    mean[g] = mu;
    var[g] = sq / m;
  });
}

// y = ((x - mean) * a + b) * gamma[p] + beta[p] per group, with a = invstd * r and b = d.
void apply(const NormShape& s, const float* x, const float* gamma, const float* beta, const float* mean,
           const float* mean_lo, const float* a, const float* b, float* y) {
  parallel_for(s.groups, numel(s) > kParallelElements, [&](int64_t g) {
    const float mu = mean[g], lo = mean_lo[g], k = a[g], d = b[g];
    for_each_group_span(s, g, [&](auto step, int64_t e0, int64_t n, int64_t p0) {
      const float *gm = gamma + p0, *bt = beta + p0;
      for (int64_t j = 0; j < n; ++j) y[e0 + j] = (((x[e0 + j] - mu) - lo) * k + d) * gm[j * step] + bt[j * step];
    });
  });
}

// Shared by both forwards: statistics, then r and d (identity without renorm), then the map.
void forward(const NormShape& s, const float* x, const float* gamma, const float* beta, float eps,
             const RenormArgs* rn, float* y, float* save_mean, float* save_mean_lo, float* save_invstd) {
  std::vector<double> mean, var;
  group_statistics(s, x, mean, var);
  std::vector<float> a(s.groups), b(s.groups, 0.0f);
  for (int64_t g = 0; g < s.groups; ++g) {
    save_mean[g] = float(mean[g]);
    save_mean_lo[g] = float(mean[g] - double(save_mean[g]));
    const float var_f = float(var[g]);
    // A variance beyond float (values near 1e38) still has a representable invstd.
    save_invstd[g] = inv_std(std::isinf(var_f) ? var[g] : double(var_f), eps);
    float r = 1.0f;
    if (rn) {
      rn->batch_var[g] = var_f;
      const double sigma = std::sqrt(double(rn->running_var[g]) + double(eps));
      const double sigma_batch = 1.0 / double(save_invstd[g]);
      r = float(std::clamp(sigma_batch / sigma, 1.0 / double(rn->r_max), double(rn->r_max)));
      b[g] = float(std::clamp((mean[g] - double(rn->running_mean[g])) / sigma, -double(rn->d_max),
                              double(rn->d_max)));
      rn->r[g] = r;
      rn->d[g] = b[g];
    }
    a[g] = save_invstd[g] * r;
  }
  apply(s, x, gamma, beta, save_mean, save_mean_lo, a.data(), b.data(), y);
}

}  // namespace

void norm_forward(const NormShape& s, const float* x, const float* gamma, const float* beta, float eps, float* y,
                  float* save_mean, float* save_mean_lo, float* save_invstd) {
  forward(s, x, gamma, beta, eps, nullptr, y, save_mean, save_mean_lo, save_invstd);
}

void renorm_forward(const NormShape& s, const float* x, const float* gamma, const float* beta, float eps,
                    const RenormArgs& rn, float* y, float* save_mean, float* save_mean_lo, float* save_invstd) {
  forward(s, x, gamma, beta, eps, &rn, y, save_mean, save_mean_lo, save_invstd);
}

// With g = dy * gamma[p] and the group's sums s1 = sum g, s2 = sum g * (x - mean) over m values:
//   dx = k * ((g - s1 / m) - (x - mean) * invstd^2 * s2 / m),  k = invstd * r,
// batch norm's gradient through the statistics, scaled by the constant r (d adds nothing).
// dgamma[p] = sum dy * xhat with xhat = (x - mean) * invstd * r + d as in forward; dbeta[p] = sum dy.
void norm_backward(const NormShape& s, const float* x, const float* dy, const float* gamma, const float* save_mean,
                   const float* save_mean_lo, const float* save_invstd, const float* r, const float* d, float* dx, float* dgamma,
                   float* dbeta) {
  const int64_t total = numel(s), m = s.outer * s.inner;
  std::vector<float> a(s.groups), b(s.groups);
  for (int64_t g = 0; g < s.groups; ++g) {
    a[g] = save_invstd[g] * (r ? r[g] : 1.0f);
    b[g] = d ? d[g] : 0.0f;
  }

  // Parameter gradients, in chunks of whole repetitions of the params * run pattern, each chunk
  // walked group stretch by group stretch.
  const int64_t width = s.params * s.run, blocks = width ? total / width : 0;
  const int64_t chunks = std::clamp<int64_t>(total / kParallelWork, 1, std::min(kMaxGradChunks, std::max<int64_t>(1, blocks)));
  const int64_t per_chunk = ceil_div(std::max<int64_t>(blocks, 1), chunks) * width;
  std::vector<double> partial(size_t(chunks * 2 * s.params), 0.0);
  parallel_for(chunks, chunks > 1, [&](int64_t ck) {
    double* sg = &partial[size_t(ck * 2 * s.params)];
    double* sb = sg + s.params;
    const int64_t end = std::min(total, (ck + 1) * per_chunk);
    for (int64_t e = ck * per_chunk; e < end;) {
      const int64_t g = e / s.inner % s.groups, len = std::min(end, (e / s.inner + 1) * s.inner) - e;
      const float mu = save_mean[g], lo = save_mean_lo[g], k = a[g], d = b[g];
      for_each_span(s, e, len, [&](auto step, int64_t e0, int64_t n, int64_t p0) {
        if constexpr (decltype(step)::value == 0) {
          lane_sums(
              n,
              [&](int64_t j) {
                const double g = dy[e0 + j];
                return std::pair{g * double(((x[e0 + j] - mu) - lo) * k + d), g};
              },
              sg[p0], sb[p0]);
        } else {
          for (int64_t j = 0; j < n; ++j) {
            sg[p0 + j] += double(dy[e0 + j]) * double(((x[e0 + j] - mu) - lo) * k + d);
            sb[p0 + j] += double(dy[e0 + j]);
          }
        }
      });
      e += len;
    }
  });
  for (int64_t p = 0; p < s.params; ++p) {
    double tg = 0.0, tb = 0.0;
    for (int64_t ck = 0; ck < chunks; ++ck) {
      tg += partial[size_t(ck * 2 * s.params + p)];
      tb += partial[size_t(ck * 2 * s.params + s.params + p)];
    }
    dgamma[p] = float(tg);
    dbeta[p] = float(tb);
  }
  if (!dx || m == 0) return;

  parallel_for(s.groups, total > kParallelElements, [&](int64_t g) {
    const double mu = double(save_mean[g]) + double(save_mean_lo[g]);
    double s1 = 0.0, s2 = 0.0;
    for_each_group_span(s, g, [&](auto step, int64_t e0, int64_t n, int64_t p0) {
      lane_sums(
          n,
          [&](int64_t j) {
            const double t = double(dy[e0 + j]) * double(gamma[p0 + j * step]);
            return std::pair{t, t * (double(x[e0 + j]) - mu)};
          },
          s1, s2);
    });
    const double invstd = save_invstd[g];
    const float k = a[g], ca = float(s1 / double(m)), cb = float(invstd * invstd * s2 / double(m));
    const float hi = save_mean[g], lo = save_mean_lo[g];
    for_each_group_span(s, g, [&](auto step, int64_t e0, int64_t n, int64_t p0) {
      const float* gm = gamma + p0;
      for (int64_t j = 0; j < n; ++j) {
        dx[e0 + j] = k * ((dy[e0 + j] * gm[j * step] - ca) - ((x[e0 + j] - hi) - lo) * cb);
      }
    });
  });
}

}  // namespace kg::cpu
