#include "accumulate.h"

#include "simd.h"

namespace kg::cpu {
namespace {

// 16 lanes as four 4-double vectors, added in a fixed tree.
inline double add_lanes(const v4d& a, const v4d& b, const v4d& c, const v4d& d) {
  const v4d s = (a + b) + (c + d);
  return (s[0] + s[1]) + (s[2] + s[3]);
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
void sum_grad_terms(const float* x, const float* dy, int64_t n, double mean, double* sdy, double* sdyx) {
  v4d g0 = {}, g1 = {}, g2 = {}, g3 = {};
  v4d h0 = {}, h1 = {}, h2 = {}, h3 = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const v4d y0 = load4_widen(dy + i), y1 = load4_widen(dy + i + 4);
    const v4d y2 = load4_widen(dy + i + 8), y3 = load4_widen(dy + i + 12);
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
    g += dy[i];
    h += double(dy[i]) * (double(x[i]) - mean);
  }
  *sdy = g;
  *sdyx = h;
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
void add_row_grad_terms(double* __restrict sdy, double* __restrict sdyx, const float* x, const float* dy,
                        const double* mean, int64_t c) {
  for (int64_t j = 0; j < c; ++j) {
    sdy[j] += dy[j];
    sdyx[j] += double(dy[j]) * (double(x[j]) - mean[j]);
  }
}

}  // namespace kg::cpu
