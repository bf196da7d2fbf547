#include "accumulate.h"

#include "isa.h"
#include "simd.h"

// The contiguous sums come in three builds, picked once by cpu_isa() (so KG_CPU_ISA can select a
// narrower one, and the tests run each): AVX-512, AVX2 + FMA, and the baseline. Their 16 lanes
// are two 8-double vectors with AVX-512 (one zmm each), where double precision otherwise halves
// the width of the float data: the statistics of batch norm cost half as much there. Each lane
// takes the same elements in the same order in every build, and the lanes are added in the same
// tree, so the AVX-512 and AVX2 builds agree bit for bit (both contract y * (x - mean) + h into an
// FMA; the baseline has none, and rounds that product separately). The row forms at the end,
// which add across c columns, are multiversioned loops (simd.h).
namespace kg::cpu {
namespace {

typedef double v8d __attribute__((vector_size(64)));

// The 16 lanes as vectors of the build's width: two v8d with AVX-512 (one zmm each), four v4d
// otherwise. (v8d in a build without 512-bit registers is lowered by GCC through memory, lane by
// lane: the AVX2 statistics ran four times slower than with v4d.) Lane j is element j of the
// vectors laid end to end, so every build adds the same elements into the same lanes.
template <class V>
struct Lanes {
  static constexpr int kVectors = 16 / int(sizeof(V) / sizeof(double));
  V v[kVectors] = {};
};

// With 4 doubles the conversion is written element by element, which GCC compiles to one vcvtps2pd
// of 4 floats: its __builtin_convertvector from 4 floats to 4 doubles (GCC 12) converts two
// halves and joins them (in the loops, through the stack), which held the AVX2 batch-norm gradient
// sums to half their speed.
template <class V>
[[gnu::always_inline]] inline V widen(const float* p) {
  if constexpr (sizeof(V) == sizeof(v8d)) return __builtin_convertvector(load8(p), v8d);
  else return V{double(p[0]), double(p[1]), double(p[2]), double(p[3])};
}

// Elements p[0..15] widened, vector by vector.
template <class V>
[[gnu::always_inline]] inline Lanes<V> widen16(const float* p) {
  Lanes<V> out;
  constexpr int n = int(sizeof(V) / sizeof(double));
#pragma GCC unroll 4
  for (int k = 0; k < Lanes<V>::kVectors; ++k) out.v[k] = widen<V>(p + k * n);
  return out;
}

// The 16 lanes added in a fixed tree: (0..3 + 4..7) + (8..11 + 12..15), then those four lanes
// pairwise.
template <class V>
[[gnu::always_inline]] inline double add_lanes(const Lanes<V>& l) {
  v4d a, b, c, d;
  if constexpr (sizeof(V) == sizeof(v8d)) {
    a = __builtin_shufflevector(l.v[0], l.v[0], 0, 1, 2, 3);
    b = __builtin_shufflevector(l.v[0], l.v[0], 4, 5, 6, 7);
    c = __builtin_shufflevector(l.v[1], l.v[1], 0, 1, 2, 3);
    d = __builtin_shufflevector(l.v[1], l.v[1], 4, 5, 6, 7);
  } else {
    a = l.v[0], b = l.v[1], c = l.v[2], d = l.v[3];
  }
  const v4d s = (a + b) + (c + d);
  return (s[0] + s[1]) + (s[2] + s[3]);
}

// dy[0..15] widened, zero where relu_y <= 0 when Masked. dy is loaded unconditionally so that the
// choice compiles to a blend: a branch on the sign of activations mispredicts half the time.
template <class V, bool Masked>
[[gnu::always_inline]] inline Lanes<V> widen16_grad(const float* dy, const float* relu_y) {
  Lanes<V> d = widen16<V>(dy);
  if constexpr (Masked) {
    const Lanes<V> y = widen16<V>(relu_y);
    const V zero = {};
#pragma GCC unroll 4
    for (int k = 0; k < Lanes<V>::kVectors; ++k) d.v[k] = y.v[k] > zero ? d.v[k] : zero;
  }
  return d;
}

template <bool Masked>
[[gnu::always_inline]] inline float grad_at(const float* dy, const float* relu_y, int64_t i) {
  const float d = dy[i];
  if constexpr (Masked) return relu_y[i] > 0.0f ? d : 0.0f;
  return d;
}

template <class V>
[[gnu::always_inline]] inline double sum_impl(const float* x, int64_t n) {
  Lanes<V> acc;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const Lanes<V> e = widen16<V>(x + i);
#pragma GCC unroll 4
    for (int k = 0; k < Lanes<V>::kVectors; ++k) acc.v[k] += e.v[k];
  }
  double s = add_lanes(acc);
  for (; i < n; ++i) s += x[i];
  return s;
}

template <class V>
[[gnu::always_inline]] inline double sum_squared_deviation_impl(const float* x, int64_t n, double mean) {
  Lanes<V> acc;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const Lanes<V> e = widen16<V>(x + i);
#pragma GCC unroll 4
    for (int k = 0; k < Lanes<V>::kVectors; ++k) {
      const V d = e.v[k] - mean;
      acc.v[k] += d * d;
    }
  }
  double s = add_lanes(acc);
  for (; i < n; ++i) {
    const double d = double(x[i]) - mean;
    s += d * d;
  }
  return s;
}

template <class V, bool Masked>
[[gnu::always_inline]] inline void sum_grad_terms_impl(const float* x, const float* dy, const float* relu_y, int64_t n,
                                                       double mean, double* sdy, double* sdyx) {
  Lanes<V> g_acc, h_acc;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const Lanes<V> y = widen16_grad<V, Masked>(dy + i, relu_y + i), e = widen16<V>(x + i);
#pragma GCC unroll 4
    for (int k = 0; k < Lanes<V>::kVectors; ++k) {
      g_acc.v[k] += y.v[k];
      h_acc.v[k] += y.v[k] * (e.v[k] - mean);
    }
  }
  double g = add_lanes(g_acc), h = add_lanes(h_acc);
  for (; i < n; ++i) {
    const float d = grad_at<Masked>(dy, relu_y, i);
    g += d;
    h += double(d) * (double(x[i]) - mean);
  }
  *sdy = g;
  *sdyx = h;
}

template <class V>
[[gnu::always_inline]] inline void grad_terms_impl(const float* x, const float* dy, int64_t n, double mean, double* sdy,
                                                   double* sdyx, const float* relu_y) {
  if (relu_y) sum_grad_terms_impl<V, true>(x, dy, relu_y, n, mean, sdy, sdyx);
  else sum_grad_terms_impl<V, false>(x, dy, relu_y, n, mean, sdy, sdyx);
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

#define KG_SUMS(TARGET, V, suffix)                                                                               \
  TARGET double sum_##suffix(const float* x, int64_t n) { return sum_impl<V>(x, n); }                           \
  TARGET double squared_deviation_##suffix(const float* x, int64_t n, double mean) {                            \
    return sum_squared_deviation_impl<V>(x, n, mean);                                                            \
  }                                                                                                              \
  TARGET void grad_terms_##suffix(const float* x, const float* dy, int64_t n, double mean, double* sdy,         \
                                  double* sdyx, const float* relu_y) {                                           \
    grad_terms_impl<V>(x, dy, n, mean, sdy, sdyx, relu_y);                                                       \
  }
KG_SUMS(KG_AVX512, v8d, avx512)
KG_SUMS(KG_AVX2, v4d, avx2)
KG_SUMS(, v4d, baseline)
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
