#include "accumulate.h"

#include "isa.h"
#include "simd.h"

// The contiguous sums come in three builds, picked once by cpu_isa() (so KG_CPU_ISA can select a
// narrower one, and the tests run each): AVX-512, AVX2 + FMA, and the baseline. Their 16 lanes
// are two 8-double vectors, one zmm each with AVX-512, where double precision otherwise halves
// the width of the float data: the statistics of batch norm cost half as much there. Each lane
// takes the same elements in the same order in every build, and the lanes are added in the same
// tree, so the AVX-512 and AVX2 builds agree bit for bit (both contract y * (x - mean) + h into an
// FMA; the baseline has none, and rounds that product separately). The row forms at the end,
// which add across c columns, are multiversioned loops (simd.h).
namespace kg::cpu {
namespace {

typedef double v8d __attribute__((vector_size(64)));

inline v8d load8_widen(const float* p) { return __builtin_convertvector(load8(p), v8d); }

// 16 lanes, lo = 0..7 and hi = 8..15, added in a fixed tree: (0..3 + 4..7) + (8..11 + 12..15),
// then those four lanes pairwise.
inline double add_lanes(const v8d& lo, const v8d& hi) {
  const v4d a = __builtin_shufflevector(lo, lo, 0, 1, 2, 3), b = __builtin_shufflevector(lo, lo, 4, 5, 6, 7);
  const v4d c = __builtin_shufflevector(hi, hi, 0, 1, 2, 3), d = __builtin_shufflevector(hi, hi, 4, 5, 6, 7);
  const v4d s = (a + b) + (c + d);
  return (s[0] + s[1]) + (s[2] + s[3]);
}

// dy[0..7] widened, zero where relu_y <= 0 when Masked. dy is loaded unconditionally so that the
// choice compiles to a blend: a branch on the sign of activations mispredicts half the time.
template <bool Masked>
[[gnu::always_inline]] inline v8d load8_grad(const float* dy, const float* relu_y) {
  if constexpr (!Masked) {
    return load8_widen(dy);
  } else {
    const v8d d = load8_widen(dy), y = load8_widen(relu_y), zero = {};
    return y > zero ? d : zero;
  }
}

template <bool Masked>
[[gnu::always_inline]] inline float grad_at(const float* dy, const float* relu_y, int64_t i) {
  const float d = dy[i];
  if constexpr (Masked) return relu_y[i] > 0.0f ? d : 0.0f;
  return d;
}

[[gnu::always_inline]] inline double sum_impl(const float* x, int64_t n) {
  v8d lo = {}, hi = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    lo += load8_widen(x + i);
    hi += load8_widen(x + i + 8);
  }
  double s = add_lanes(lo, hi);
  for (; i < n; ++i) s += x[i];
  return s;
}

[[gnu::always_inline]] inline double sum_squared_deviation_impl(const float* x, int64_t n, double mean) {
  v8d lo = {}, hi = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const v8d d0 = load8_widen(x + i) - mean, d1 = load8_widen(x + i + 8) - mean;
    lo += d0 * d0;
    hi += d1 * d1;
  }
  double s = add_lanes(lo, hi);
  for (; i < n; ++i) {
    const double d = double(x[i]) - mean;
    s += d * d;
  }
  return s;
}

template <bool Masked>
[[gnu::always_inline]] inline void sum_grad_terms_impl(const float* x, const float* dy, const float* relu_y, int64_t n,
                                                       double mean, double* sdy, double* sdyx) {
  v8d g_lo = {}, g_hi = {}, h_lo = {}, h_hi = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const v8d y0 = load8_grad<Masked>(dy + i, relu_y + i), y1 = load8_grad<Masked>(dy + i + 8, relu_y + i + 8);
    g_lo += y0;
    g_hi += y1;
    h_lo += y0 * (load8_widen(x + i) - mean);
    h_hi += y1 * (load8_widen(x + i + 8) - mean);
  }
  double g = add_lanes(g_lo, g_hi), h = add_lanes(h_lo, h_hi);
  for (; i < n; ++i) {
    const float d = grad_at<Masked>(dy, relu_y, i);
    g += d;
    h += double(d) * (double(x[i]) - mean);
  }
  *sdy = g;
  *sdyx = h;
}

[[gnu::always_inline]] inline void grad_terms_impl(const float* x, const float* dy, int64_t n, double mean, double* sdy,
                                                   double* sdyx, const float* relu_y) {
  if (relu_y) sum_grad_terms_impl<true>(x, dy, relu_y, n, mean, sdy, sdyx);
  else sum_grad_terms_impl<false>(x, dy, relu_y, n, mean, sdy, sdyx);
}

template <bool Masked>
[[gnu::always_inline]] inline void add_row_grad_terms_impl(double* __restrict sdy, double* __restrict sdyx, const float* x,
                                                           const float* dy, const float* relu_y, const double* mean,
                                                           int64_t c) {
  for (int64_t j = 0; j < c; ++j) {
    const float d = grad_at<Masked>(dy, relu_y, j);
    sdy[j] += d;
    sdyx[j] += double(d) * (double(x[j]) - mean[j]);
  }
}

// The three builds of each contiguous sum, and the table of the one cpu_isa() picks.
struct Sums {
  double (*sum)(const float*, int64_t);
  double (*squared_deviation)(const float*, int64_t, double);
  void (*grad_terms)(const float*, const float*, int64_t, double, double*, double*, const float*);
};

#define KG_SUMS(TARGET, suffix)                                                                                  \
  TARGET double sum_##suffix(const float* x, int64_t n) { return sum_impl(x, n); }                              \
  TARGET double squared_deviation_##suffix(const float* x, int64_t n, double mean) {                            \
    return sum_squared_deviation_impl(x, n, mean);                                                               \
  }                                                                                                              \
  TARGET void grad_terms_##suffix(const float* x, const float* dy, int64_t n, double mean, double* sdy,         \
                                  double* sdyx, const float* relu_y) {                                           \
    grad_terms_impl(x, dy, n, mean, sdy, sdyx, relu_y);                                                          \
  }
KG_SUMS(KG_AVX512, avx512)
KG_SUMS(KG_AVX2, avx2)
KG_SUMS(, baseline)
#undef KG_SUMS

const Sums& sums() {
  static const Sums table = [] {
    switch (cpu_isa()) {
      case Isa::Avx512: return Sums{sum_avx512, squared_deviation_avx512, grad_terms_avx512};
      case Isa::Avx2: return Sums{sum_avx2, squared_deviation_avx2, grad_terms_avx2};
      default: return Sums{sum_baseline, squared_deviation_baseline, grad_terms_baseline};
    }
  }();
  return table;
}

}  // namespace

double sum(const float* x, int64_t n) { return sums().sum(x, n); }

double sum_squared_deviation(const float* x, int64_t n, double mean) { return sums().squared_deviation(x, n, mean); }

void sum_grad_terms(const float* x, const float* dy, int64_t n, double mean, double* sdy, double* sdyx,
                    const float* relu_y) {
  sums().grad_terms(x, dy, n, mean, sdy, sdyx, relu_y);
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
