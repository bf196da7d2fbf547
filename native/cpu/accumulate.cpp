#include "accumulate.h"

#include "simd.h"

namespace kg::cpu {
namespace {

// 16 lanes as four 4-double vectors, added in a fixed tree.
inline double add_lanes(const v4d& a, const v4d& b, const v4d& c, const v4d& d) {
  const v4d s = (a + b) + (c + d);
  return (s[0] + s[1]) + (s[2] + s[3]);
}

// dy[0..3] widened, zero where relu_y <= 0 when Masked. dy is loaded unconditionally so that the
// choice compiles to a blend: a branch on the sign of activations mispredicts half the time.
template <bool Masked>
[[gnu::always_inline]] inline v4d load4_grad(const float* dy, const float* relu_y) {
  if constexpr (!Masked) {
    return load4_widen(dy);
  } else {
    const v4d d = load4_widen(dy), y = load4_widen(relu_y), zero = {};
    return y > zero ? d : zero;
  }
}

template <bool Masked>
[[gnu::always_inline]] inline float grad_at(const float* dy, const float* relu_y, int64_t i) {
  const float d = dy[i];
  if constexpr (Masked) return relu_y[i] > 0.0f ? d : 0.0f;
  return d;
}

// Inlined into the multiversioned entry points below, so each ISA clone gets its own copy.
template <bool Masked>
[[gnu::always_inline]] inline void sum_grad_terms_impl(const float* x, const float* dy, const float* relu_y, int64_t n, double mean,
                                         double* sdy, double* sdyx) {
  v4d g0 = {}, g1 = {}, g2 = {}, g3 = {};
  v4d h0 = {}, h1 = {}, h2 = {}, h3 = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const v4d y0 = load4_grad<Masked>(dy + i, relu_y + i), y1 = load4_grad<Masked>(dy + i + 4, relu_y + i + 4);
    const v4d y2 = load4_grad<Masked>(dy + i + 8, relu_y + i + 8), y3 = load4_grad<Masked>(dy + i + 12, relu_y + i + 12);
    g0 += y0;
    g1 += y1;
    g2 += y2;
    g3 += y3;
    h0 += y0 * (load4_widen(x + i) - mean);
    h1 += y1 * (load4_widen(x + i + 4) - mean);
    h2 += y2 * (load4_widen(x + i + 8) - mean);
    h3 += y3 * (load4_widen(x + i + 12) - mean);
  }
  double g = add_lanes(g0, g1, g2, g3), h = add_lanes(h0, h1, h2, h3);
  for (; i < n; ++i) {
    const float d = grad_at<Masked>(dy, relu_y, i);
    g += d;
    h += double(d) * (double(x[i]) - mean);
  }
  *sdy = g;
  *sdyx = h;
}

template <bool Masked>
[[gnu::always_inline]] inline void add_row_grad_terms_impl(double* __restrict sdy, double* __restrict sdyx, const float* x,
                                             const float* dy, const float* relu_y, const double* mean, int64_t c) {
  for (int64_t j = 0; j < c; ++j) {
    const float d = grad_at<Masked>(dy, relu_y, j);
    sdy[j] += d;
    sdyx[j] += double(d) * (double(x[j]) - mean[j]);
  }
}

}  // namespace

KG_MULTIVERSION
double sum(const float* x, int64_t n) {
  v4d a0 = {}, a1 = {}, a2 = {}, a3 = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    a0 += load4_widen(x + i);
    a1 += load4_widen(x + i + 4);
    a2 += load4_widen(x + i + 8);
    a3 += load4_widen(x + i + 12);
  }
  double s = add_lanes(a0, a1, a2, a3);
  for (; i < n; ++i) s += x[i];
  return s;
}

KG_MULTIVERSION
double sum_squared_deviation(const float* x, int64_t n, double mean) {
  v4d a0 = {}, a1 = {}, a2 = {}, a3 = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const v4d d0 = load4_widen(x + i) - mean, d1 = load4_widen(x + i + 4) - mean;
    const v4d d2 = load4_widen(x + i + 8) - mean, d3 = load4_widen(x + i + 12) - mean;
    a0 += d0 * d0;
    a1 += d1 * d1;
    a2 += d2 * d2;
    a3 += d3 * d3;
  }
  double s = add_lanes(a0, a1, a2, a3);
  for (; i < n; ++i) {
    const double d = double(x[i]) - mean;
    s += d * d;
  }
  return s;
}

KG_MULTIVERSION
void sum_grad_terms(const float* x, const float* dy, int64_t n, double mean, double* sdy, double* sdyx,
                    const float* relu_y) {
  if (relu_y) sum_grad_terms_impl<true>(x, dy, relu_y, n, mean, sdy, sdyx);
  else sum_grad_terms_impl<false>(x, dy, relu_y, n, mean, sdy, sdyx);
}

KG_MULTIVERSION
void add_row(double* acc, const float* x, int64_t c) {
  for (int64_t j = 0; j < c; ++j) acc[j] += x[j];
}

KG_MULTIVERSION
void add_row_squared_deviation(double* acc, const float* x, const double* mean, int64_t c) {
  for (int64_t j = 0; j < c; ++j) {
    const double d = double(x[j]) - mean[j];
    acc[j] += d * d;
  }
}

KG_MULTIVERSION
void add_row_grad_terms(double* sdy, double* sdyx, const float* x, const float* dy, const double* mean, int64_t c,
                        const float* relu_y) {
  if (relu_y) add_row_grad_terms_impl<true>(sdy, sdyx, x, dy, relu_y, mean, c);
  else add_row_grad_terms_impl<false>(sdy, sdyx, x, dy, relu_y, mean, c);
}

}  // namespace kg::cpu
