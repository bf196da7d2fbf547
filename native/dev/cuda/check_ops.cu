// Standalone correctness checks and timings of every kg::cuda op, against plain double-precision
// references written here. Not part of the addon (CMake compiles native/cuda/*.cu only).
//
// Build and run on a GPU machine, from the repository root:
//   make -C native/dev/cuda && native/dev/cuda/build/check_ops [--quick]
// or directly (one line):
//   nvcc -std=c++17 -O3 -arch=sm_90 -lineinfo -Inative/include -DKG_WITH_CUDA=1
//        native/dev/cuda/check_ops.cu native/cuda/*.cu -o check_ops && ./check_ops
// --quick skips the timings (use it under compute-sanitizer); --only bn (or gemm, which includes
// linear_forward, conv, pool, elementwise, reduce, loss, sgd, allocator) runs the checks of one op
// family, without timings.
//
// For each op: random shapes including odd and degenerate sizes, the first mismatches printed as
// in llm.c's validate_result (|got - ref| <= atol + rtol * |ref|, plus a term proportional to the
// sum of absolute values of the terms for long reductions), and a second run whose output must be
// bitwise identical (determinism). Then batch-norm robustness cases, the caching allocator, and
// timings (GB/s for batch norm, GFLOP/s for GEMM) with CUDA events on the library's stream.
// Exit status: 0 when every check passed.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common.cuh"  // native/cuda: the library's stream, for timing with events
#include "kg/cuda_runtime.h"
#include "kg/dropout_mask.h"
#include "kg/ops.h"

namespace cu = kg::cuda;
using kg::BinaryOp;
using kg::BnShape;
using kg::BroadcastShape;
using kg::ConvShape;
using kg::MaxPoolShape;
using kg::PoolShape;
using Vec = std::vector<float>;
using DVec = std::vector<double>;

// ---------------------------------------------------------------------------------------------
// Plumbing

static int g_checks = 0, g_failures = 0;

class DevBuf {
 public:
  DevBuf() = default;
  explicit DevBuf(size_t n) : n_(n), p_(static_cast<float*>(cu::alloc(n * sizeof(float)))) {}
  explicit DevBuf(const Vec& h) : DevBuf(h.size()) { upload(h); }
  ~DevBuf() { cu::release(p_); }
  DevBuf(DevBuf&& o) noexcept : n_(o.n_), p_(o.p_) { o.p_ = nullptr; o.n_ = 0; }
  DevBuf& operator=(DevBuf&& o) noexcept {
    std::swap(n_, o.n_);
    std::swap(p_, o.p_);
    return *this;
  }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;

  float* get() const { return p_; }
  size_t size() const { return n_; }
  void upload(const Vec& h) { cu::copy_h2d(p_, h.data(), h.size() * sizeof(float)); }
  Vec download() const {
    Vec h(n_);
    cu::copy_d2h(h.data(), p_, n_ * sizeof(float));
    return h;
  }
  // Garbage the output first, so a kernel that skips elements is caught.
  void poison() { upload(Vec(n_, std::nanf(""))); }

 private:
  size_t n_ = 0;
  float* p_ = nullptr;
};

static std::mt19937_64 g_rng(12345);

static Vec randn(size_t n, double mean = 0.0, double std = 1.0) {
  std::normal_distribution<double> d(mean, std);
  Vec v(n);
  for (auto& x : v) x = static_cast<float>(d(g_rng));
  return v;
}
static Vec uniform(size_t n, double lo, double hi) {
  std::uniform_real_distribution<double> d(lo, hi);
  Vec v(n);
  for (auto& x : v) x = static_cast<float>(d(g_rng));
  return v;
}
static int64_t rand_int(int64_t lo, int64_t hi) {  // inclusive
  return std::uniform_int_distribution<int64_t>(lo, hi)(g_rng);
}
static DVec to_double(const Vec& v) { return DVec(v.begin(), v.end()); }
// Quick uniform(-1, 1) data for the big timing tensors (the distribution does not matter there).
static Vec fast_uniform(size_t n) {
  Vec v(n);
  uint64_t state = 0x9e3779b97f4a7c15ull;
  for (auto& x : v) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    x = static_cast<float>(static_cast<int32_t>(state >> 32)) * (1.0f / 2147483648.0f);
  }
  return v;
}

// |got - ref| <= atol + rtol * |ref| + abs_factor * absref (absref: sum of |terms|, may be empty).
static bool validate(const std::string& what, const Vec& got, const DVec& ref, double atol, double rtol,
                     const DVec& absref = {}, double abs_factor = 0.0) {
  ++g_checks;
  size_t bad = 0;
  double worst = 0.0;
  if (got.size() != ref.size()) {
    std::printf("FAIL %s: %zu values, expected %zu\n", what.c_str(), got.size(), ref.size());
    ++g_failures;
    return false;
  }
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - ref[i]);
    const double tol = atol + rtol * std::fabs(ref[i]) + (absref.empty() ? 0.0 : abs_factor * absref[i]);
    if (!(err <= tol)) {  // NaN fails too
      if (bad < 5) {
        std::printf("  %s: mismatch at %zu: got %.9g, want %.9g (error %.3g, tolerance %.3g)\n", what.c_str(), i,
                    got[i], ref[i], err, tol);
      }
      ++bad;
    }
    if (std::isfinite(err)) worst = std::max(worst, err / (tol > 0 ? tol : 1.0));
  }
  if (bad) {
    std::printf("FAIL %s: %zu of %zu values out of tolerance\n", what.c_str(), bad, got.size());
    ++g_failures;
  } else {
    std::printf("ok   %s (worst error %.2f of tolerance)\n", what.c_str(), worst);
  }
  return bad == 0;
}

static bool check(bool cond, const std::string& what) {
  ++g_checks;
  std::printf("%s %s\n", cond ? "ok  " : "FAIL", what.c_str());
  if (!cond) ++g_failures;
  return cond;
}

static bool same_bits(const Vec& a, const Vec& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

static void check_deterministic(const std::string& what, const Vec& first, const Vec& second) {
  check(same_bits(first, second), what + ": second run bitwise identical");
}

static std::string shape_str(std::initializer_list<int64_t> dims) {
  std::string s = "(";
  bool firstdim = true;
  for (int64_t d : dims) {
    s += (firstdim ? "" : ",") + std::to_string(d);
    firstdim = false;
  }
  return s + ")";
}

// ---------------------------------------------------------------------------------------------
// GEMM

static void gemm_ref(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const Vec& A, const Vec& B,
                     double beta, const Vec& C0, DVec& C, DVec& absC) {
  C.assign(m * n, 0.0);
  absC.assign(m * n, 0.0);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double s = 0.0, a = 0.0;
      for (int64_t p = 0; p < k; ++p) {
        const double av = ta ? A[p * m + i] : A[i * k + p];
        const double bv = tb ? B[j * k + p] : B[p * n + j];
        s += av * bv;
        a += std::fabs(av * bv);
      }
      const double c0 = beta != 0.0 ? beta * C0[i * n + j] : 0.0;
      C[i * n + j] = alpha * s + c0;
      absC[i * n + j] = std::fabs(alpha) * a + std::fabs(c0);
    }
  }
}

static void test_gemm() {
  std::printf("\n== gemm\n");
  struct Case {
    int64_t m, n, k;
  };
  // The last case has enough tiles for the 128 x 128 tile (on 132 multiprocessors), with edge
  // tiles that end inside a warp's tile along m and n, and k not a multiple of the slice depth.
  // Then few rows (m <= 32: the 32 x 128 tile) and just more (33, 50) against many columns.
  std::vector<Case> cases = {{1, 1, 1},      {3, 5, 7},     {17, 33, 65},   {128, 128, 8},  {129, 257, 63},
                             {64, 1, 5000},  {1000, 3, 2},  {250, 300, 1037}, {20, 25, 36864}, {2, 2, 0},
                             {300, 260, 260}, {1300, 1650, 11},
                             {1, 2051, 9},   {7, 1500, 37}, {20, 2705, 9},  {32, 389, 131}, {33, 1030, 21},
                             {50, 771, 50}};
  for (int r = 0; r < 3; ++r) cases.push_back({rand_int(1, 300), rand_int(1, 300), rand_int(1, 700)});
  for (const Case& c : cases) {
    for (int t = 0; t < 4; ++t) {
      const bool ta = t & 1, tb = t & 2;
      for (int ab = 0; ab < 2; ++ab) {
        const float alpha = ab ? 0.5f : 1.0f, beta = ab ? -2.0f : 0.0f;
        const Vec A = randn(c.m * c.k), B = randn(c.k * c.n), C0 = randn(c.m * c.n);
        DVec ref, absref;
        gemm_ref(ta, tb, c.m, c.n, c.k, alpha, A, B, beta, C0, ref, absref);
        DevBuf dA(A), dB(B), dC(c.m * c.n), dC2(c.m * c.n);
        if (beta == 0.0f) {
          dC.poison();  // beta == 0 must ignore C, NaNs included
          dC2.poison();
        } else {
          dC.upload(C0);
          dC2.upload(C0);
        }
        cu::gemm(ta, tb, c.m, c.n, c.k, alpha, dA.get(), dB.get(), beta, dC.get());
        cu::gemm(ta, tb, c.m, c.n, c.k, alpha, dA.get(), dB.get(), beta, dC2.get());
        const std::string name = "gemm " + std::string(ta ? "T" : "N") + (tb ? "T" : "N") +
                                 shape_str({c.m, c.n, c.k}) + (beta != 0.0f ? " alpha=0.5 beta=-2" : "");
        const Vec got = dC.download();
        validate(name, got, ref, 1e-6, 1e-5, absref, 2e-6);
        check_deterministic(name, got, dC2.download());
      }
    }
  }
  // Misaligned operands (offset by one float) take the scalar load paths.
  {
    const int64_t m = 67, n = 45, k = 93;
    const Vec A = randn(m * k + 1), B = randn(k * n + 1);
    DevBuf dA(A), dB(B), dC(m * n + 1);
    const Vec Ao(A.begin() + 1, A.end()), Bo(B.begin() + 1, B.end());
    DVec ref, absref;
    gemm_ref(false, false, m, n, k, 1.0, Ao, Bo, 0.0, Vec(m * n), ref, absref);
    cu::gemm(false, false, m, n, k, 1.0f, dA.get() + 1, dB.get() + 1, 0.0f, dC.get() + 1);
    Vec got = dC.download();
    got.erase(got.begin());
    validate("gemm NN misaligned pointers (67,45,93)", got, ref, 1e-6, 1e-5, absref, 2e-6);
  }
  // Batched sums of products (GemmBatch::terms) with a bias and row sums, few rows against many
  // columns: split over terms (few tiles, several terms), k split inside a term (one term), and
  // neither (enough tiles).
  struct Sum {
    int64_t m, n, k, terms, batch;
  };
  const std::vector<Sum> sums = {{1, 700, 37, 3, 2},  {7, 500, 300, 3, 2}, {20, 1337, 45, 4, 2},
                                 {20, 131, 3000, 1, 1}, {33, 650, 19, 2, 3}, {50, 700, 9, 2, 40}};
  for (const Sum& c : sums) {
    for (int t = 0; t < 4; ++t) {
      const bool ta = t & 1, tb = t & 2, per_row = t % 3 == 0;
      const float alpha = t == 1 ? 0.5f : 1.0f, beta = t == 1 ? -2.0f : 0.0f;
      const int64_t sa = c.m * c.k, sb = c.k * c.n, mn = c.m * c.n, nbias = per_row ? c.m : c.n;
      const Vec A = randn(c.batch * c.terms * sa), B = randn(c.batch * c.terms * sb), C0 = randn(c.batch * mn),
                bias = randn(c.batch * nbias);
      DVec ref(c.batch * mn), absref(c.batch * mn), rows(c.batch * c.m, 0.0), rowsabs(c.batch * c.m, 0.0);
      for (int64_t b = 0; b < c.batch; ++b)
        for (int64_t i = 0; i < c.m; ++i)
          for (int64_t j = 0; j < c.n; ++j) {
            double acc = 0.0, aacc = 0.0;
            for (int64_t r = 0; r < c.terms; ++r) {
              const float* a = A.data() + (b * c.terms + r) * sa;
              const float* bb = B.data() + (b * c.terms + r) * sb;
              for (int64_t p = 0; p < c.k; ++p) {
                const double av = ta ? a[p * c.m + i] : a[i * c.k + p], bv = tb ? bb[j * c.k + p] : bb[p * c.n + j];
                acc += av * bv;
                aacc += std::fabs(av * bv);
                if (j == 0) {
                  rows[b * c.m + i] += av;
                  rowsabs[b * c.m + i] += std::fabs(av);
                }
              }
            }
            const double c0 = beta != 0.0f ? beta * double(C0[b * mn + i * c.n + j]) : 0.0;
            const double bv = bias[b * nbias + (per_row ? i : j)];
            ref[b * mn + i * c.n + j] = alpha * acc + c0 + bv;
            absref[b * mn + i * c.n + j] = std::fabs(alpha) * aacc + std::fabs(c0) + std::fabs(bv);
          }
      DevBuf dA(A), dB(B), dBias(bias), dC(c.batch * mn), dC2(c.batch * mn), dR(c.batch * c.m), dR2(c.batch * c.m);
      dR.poison();
      cu::detail::GemmBatch g;
      g.trans_a = ta;
      g.trans_b = tb;
      g.m = c.m;
      g.n = c.n;
      g.k = c.k;
      g.alpha = alpha;
      g.beta = beta;
      g.a = dA.get();
      g.lda = ta ? c.m : c.k;
      g.stride_a = c.terms * sa;
      g.b = dB.get();
      g.ldb = tb ? c.k : c.n;
      g.stride_b = c.terms * sb;
      g.ldc = c.n;
      g.stride_c = mn;
      g.batch = c.batch;
      g.terms = c.terms;
      g.term_stride_a = sa;
      g.term_stride_b = sb;
      g.bias = dBias.get();
      g.stride_bias = nbias;
      g.bias_per_row = per_row;
      g.stride_row_sums = c.m;
      for (int run = 0; run < 2; ++run) {
        DevBuf& out = run ? dC2 : dC;
        if (beta != 0.0f) out.upload(C0);
        else out.poison();
        g.c = out.get();
        g.row_sums = run ? dR2.get() : dR.get();
        cu::detail::gemm_batched(g);
      }
      const std::string name = "gemm terms " + std::string(ta ? "T" : "N") + (tb ? "T" : "N") +
                               shape_str({c.m, c.n, c.k}) + " terms=" + std::to_string(c.terms) +
                               " batch=" + std::to_string(c.batch) + (per_row ? " bias/row" : " bias/col") +
                               (beta != 0.0f ? " alpha=0.5 beta=-2" : "");
      const Vec got = dC.download(), gotr = dR.download();
      validate(name, got, ref, 1e-6, 1e-5, absref, 2e-6);
      validate(name + " row sums", gotr, rows, 1e-6, 1e-5, rowsabs, 2e-6);
      check_deterministic(name, got, dC2.download());
      check_deterministic(name + " row sums", gotr, dR2.download());
    }
  }
}

// linear_forward: the GEMM with its bias added in the epilogue (one per column of y), or in the
// split-K reduction when k is split, or alone when k == 0.
static void test_linear() {
  std::printf("\n== linear_forward\n");
  struct Case {
    int64_t m, n, k;
  };
  // Odd sizes; one row; k long enough that the small output splits it (64 x 10 x 5000, 1 x 10 x
  // 800); more tiles than a split would pay for (300 x 260); no inputs at all (k = 0).
  std::vector<Case> cases = {{1, 1, 1},       {3, 5, 7},      {37, 19, 50}, {1, 10, 800},
                             {64, 10, 5000},  {300, 260, 29}, {5, 3, 0},    {129, 67, 515}};
  for (int r = 0; r < 2; ++r) cases.push_back({rand_int(1, 200), rand_int(1, 200), rand_int(1, 900)});
  for (const Case& c : cases) {
    const Vec x = randn(c.m * c.k), w = randn(c.n * c.k), b = randn(c.n);
    DVec ref, absref;
    gemm_ref(false, true, c.m, c.n, c.k, 1.0, x, w, 0.0, Vec(c.m * c.n), ref, absref);
    DevBuf dX(x), dW(w), dB(b);
    for (int with_bias = 0; with_bias < 2; ++with_bias) {
      DVec want = ref, wantabs = absref;
      if (with_bias) {
        for (int64_t i = 0; i < c.m * c.n; ++i) {
          want[i] += b[i % c.n];
          wantabs[i] += std::fabs(b[i % c.n]);
        }
      }
      DevBuf dY(c.m * c.n), dY2(c.m * c.n);
      dY.poison();
      dY2.poison();
      cu::linear_forward(c.m, c.n, c.k, dX.get(), dW.get(), with_bias ? dB.get() : nullptr, dY.get());
      cu::linear_forward(c.m, c.n, c.k, dX.get(), dW.get(), with_bias ? dB.get() : nullptr, dY2.get());
      const std::string name = "linear_forward " + shape_str({c.m, c.n, c.k}) + (with_bias ? " +bias" : "");
      const Vec got = dY.download();
      validate(name, got, want, 1e-6, 1e-5, wantabs, 2e-6);
      check_deterministic(name, got, dY2.download());
    }
  }
  // Misaligned y and bias (offset by one float): the scalar stores and bias reads.
  {
    const int64_t m = 21, n = 13, k = 40;
    const Vec x = randn(m * k), w = randn(n * k), b = randn(n + 1);
    DevBuf dX(x), dW(w), dB(b), dY(m * n + 1);
    DVec ref, absref;
    gemm_ref(false, true, m, n, k, 1.0, x, w, 0.0, Vec(m * n), ref, absref);
    for (int64_t i = 0; i < m * n; ++i) {
      ref[i] += b[1 + i % n];
      absref[i] += std::fabs(b[1 + i % n]);
    }
    cu::linear_forward(m, n, k, dX.get(), dW.get(), dB.get() + 1, dY.get() + 1);
    Vec got = dY.download();
    got.erase(got.begin());
    validate("linear_forward misaligned y and bias (21,13,40)", got, ref, 1e-6, 1e-5, absref, 2e-6);
  }
  // linear_backward_weight: dw = dy^T x and db = the column sums of dy, inside the same GEMM (its
  // A operand's row sums): one tile, several m tiles, k split over many samples, no inputs (k = 0),
  // an empty batch (m = 0).
  std::printf("\n== linear_backward_weight\n");
  const std::vector<Case> back = {{1, 1, 1}, {7, 3, 5}, {64, 100, 800}, {1000, 10, 100}, {5000, 3, 7},
                                  {33, 200, 9}, {9, 4, 0}, {0, 5, 3}};
  for (const Case& c : back) {  // (m, n, k) of the dense layer: m samples, n outputs, k inputs
    const Vec dy = randn(c.m * c.n), x = randn(c.m * c.k);
    DVec dw, dwabs, db(c.n, 0.0), dbabs(c.n, 0.0);
    gemm_ref(true, false, c.n, c.k, c.m, 1.0, dy, x, 0.0, Vec(c.n * c.k), dw, dwabs);
    for (int64_t i = 0; i < c.m * c.n; ++i) {
      db[i % c.n] += dy[i];
      dbabs[i % c.n] += std::fabs(dy[i]);
    }
    DevBuf dDY(dy), dX(x), dDW(c.n * c.k), dDW2(c.n * c.k), dDW3(c.n * c.k), dDB(c.n), dDB2(c.n);
    dDW.poison();
    dDB.poison();
    cu::linear_backward_weight(c.m, c.n, c.k, dDY.get(), dX.get(), dDW.get(), dDB.get());
    cu::linear_backward_weight(c.m, c.n, c.k, dDY.get(), dX.get(), dDW2.get(), dDB2.get());
    cu::linear_backward_weight(c.m, c.n, c.k, dDY.get(), dX.get(), dDW3.get(), nullptr);
    const std::string name = "linear_backward_weight " + shape_str({c.m, c.n, c.k});
    const Vec gw = dDW.download(), gb = dDB.download();
    validate(name + " dw", gw, dw, 1e-6, 1e-5, dwabs, 2e-6);
    validate(name + " db", gb, db, 1e-6, 1e-5, dbabs, 2e-6);
    check_deterministic(name, gw, dDW2.download());
    check_deterministic(name + " db", gb, dDB2.download());
    check(same_bits(gw, dDW3.download()), name + ": dw the same without db");
  }
}

// ---------------------------------------------------------------------------------------------
// Convolution and pooling

static ConvShape conv_shape(int64_t n, int64_t c, int64_t h, int64_t w, int64_t k, int64_t kh, int64_t kw,
                            int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t groups = 1) {
  ConvShape s{n, c, h, w, k, kh, kw, sh, sw, ph, pw, 0, 0, groups};
  s.oh = (h + 2 * ph - kh) / sh + 1;
  s.ow = (w + 2 * pw - kw) / sw + 1;
  return s;
}

// The explicit path the convolutions took before the GEMM gathered its patches: im2col (here on
// the host) into col buffers, then the same GEMMs reading them densely. The gathering GEMM must
// reproduce it bit for bit: same products, same order.
static Vec im2col_host(const ConvShape& s, const Vec& x) {
  const int64_t rows = s.c * s.kh * s.kw, pixels = s.oh * s.ow;
  Vec col(s.n * rows * pixels);
  for (int64_t b = 0; b < s.n; ++b)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t pix = 0; pix < pixels; ++pix) {
        const int64_t c = r / (s.kh * s.kw), dh = r / s.kw % s.kh, dw = r % s.kw;
        const int64_t ih = pix / s.ow * s.sh + dh - s.ph, iw = pix % s.ow * s.sw + dw - s.pw;
        const bool inside = ih >= 0 && ih < s.h && iw >= 0 && iw < s.w;
        col[(b * rows + r) * pixels + pix] = inside ? x[((b * s.c + c) * s.h + ih) * s.w + iw] : 0.0f;
      }
  return col;
}

static Vec conv_forward_explicit(const ConvShape& s, const DevBuf& col, const DevBuf& w, const float* bias) {
  const int64_t rows = s.c * s.kh * s.kw, grows = rows / s.groups, kg = s.k / s.groups, pixels = s.oh * s.ow;
  DevBuf y(s.n * s.k * pixels);
  cu::detail::GemmBatch g;
  g.m = kg;
  g.n = pixels;
  g.k = grows;
  g.a = w.get();
  g.lda = grows;
  g.b = col.get();
  g.ldb = pixels;
  g.stride_b = rows * pixels;
  g.c = y.get();
  g.ldc = pixels;
  g.stride_c = s.k * pixels;
  g.batch = s.n;
  g.bias = bias;
  g.bias_per_row = true;
  // conv2d.cu's gemm_groups: a loop over whichever of groups and samples is shorter.
  const int64_t da = kg * grows, db = grows * pixels, dc = kg * pixels, dbias = kg;
  if (s.groups == 1) {
    cu::detail::gemm_batched(g);
  } else {
    const bool loop_groups = s.groups <= s.n;
    cu::detail::GemmBatch each = g;
    if (!loop_groups) {
      each.batch = s.groups;
      each.stride_a = da;
      each.stride_b = db;
      each.stride_c = dc;
      each.stride_bias = dbias;
    }
    for (int64_t i = 0; i < (loop_groups ? s.groups : s.n); ++i) {
      each.a = g.a + i * (loop_groups ? da : g.stride_a);
      each.b = g.b + i * (loop_groups ? db : g.stride_b);
      each.c = g.c + i * (loop_groups ? dc : g.stride_c);
      if (bias) each.bias = bias + i * (loop_groups ? dbias : g.stride_bias);
      cu::detail::gemm_batched(each);
    }
  }
  return y.download();
}

static Vec conv_weight_explicit(const ConvShape& s, const DevBuf& col, const DevBuf& dy) {
  const int64_t rows = s.c * s.kh * s.kw, grows = rows / s.groups, kg = s.k / s.groups, pixels = s.oh * s.ow;
  DevBuf dw(s.k * grows);
  cu::detail::GemmBatch g;
  g.trans_b = true;
  g.m = kg;
  g.n = grows;
  g.k = pixels;
  g.a = dy.get();
  g.lda = pixels;
  g.stride_a = kg * pixels;
  g.b = col.get();
  g.ldb = pixels;
  g.stride_b = grows * pixels;
  g.c = dw.get();
  g.ldc = grows;
  g.stride_c = kg * grows;
  g.batch = s.groups;
  g.terms = s.n;
  g.term_stride_a = s.k * pixels;
  g.term_stride_b = rows * pixels;
  cu::detail::gemm_batched(g);
  return dw.download();
}

static void test_conv() {
  std::printf("\n== conv2d\n");
  std::vector<ConvShape> cases = {
      conv_shape(2, 3, 7, 9, 4, 3, 3, 1, 1, 1, 1),      conv_shape(2, 3, 8, 8, 5, 2, 2, 2, 2, 0, 0),
      conv_shape(3, 5, 11, 13, 6, 5, 5, 2, 3, 2, 1),    conv_shape(4, 7, 6, 5, 3, 1, 1, 1, 1, 0, 0),  // 1x1 fast path
      conv_shape(2, 4, 9, 9, 3, 1, 1, 2, 2, 0, 0),      conv_shape(1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0),
      conv_shape(16, 20, 12, 12, 50, 5, 5, 1, 1, 0, 0),  // the tutorial's conv2 (split-K weight gradient)
      conv_shape(8, 1, 28, 28, 20, 3, 3, 1, 1, 0, 0),    conv_shape(2, 3, 5, 5, 2, 5, 5, 1, 1, 2, 2),
      // Grouped: groups looped (fewer than samples) or batched, depthwise, 1x1, split-K weight gradient.
      conv_shape(5, 6, 9, 7, 9, 3, 3, 1, 1, 1, 1, 3),   conv_shape(1, 6, 9, 7, 4, 3, 2, 2, 1, 1, 0, 2),
      conv_shape(3, 8, 10, 11, 8, 3, 3, 1, 2, 1, 1, 8), conv_shape(2, 5, 7, 7, 10, 5, 5, 2, 2, 2, 2, 5),
      conv_shape(4, 6, 5, 6, 9, 1, 1, 1, 1, 0, 0, 3),   conv_shape(16, 20, 12, 12, 50, 5, 5, 1, 1, 0, 0, 10),
      // Forward with k = 576 on one small tile: split k, the bias added by the split-K reduction.
      conv_shape(1, 64, 6, 6, 8, 3, 3, 1, 1, 1, 1),
      // Weight gradient of one or two large images: more splits than samples, so each sample's
      // pixels are split too; of many small samples: whole samples per split.
      conv_shape(1, 2, 40, 40, 3, 3, 3, 1, 1, 1, 1),    conv_shape(2, 3, 37, 41, 5, 3, 3, 1, 1, 0, 0),
      conv_shape(40, 3, 6, 6, 5, 3, 3, 1, 1, 1, 1),     conv_shape(33, 6, 7, 5, 6, 1, 1, 1, 1, 0, 0, 2),
      // Bias gradient over more than 2^18 values per channel: the two-stage reduction.
      conv_shape(3, 1, 300, 300, 2, 1, 1, 1, 1, 0, 0),
      // The gathered patches: odd sizes with stride 2 and padding from one input channel;
      // depthwise, strided, with a non-square window; several samples' pixels inside one
      // forward tile (small planes); the large tile forward (many samples) and backward weight
      // (many groups); padding wider than the window's reach on one side.
      conv_shape(7, 1, 9, 11, 5, 3, 3, 2, 2, 1, 1),     conv_shape(3, 12, 13, 7, 12, 3, 5, 2, 1, 2, 1, 12),
      conv_shape(6, 4, 3, 3, 7, 2, 2, 1, 1, 0, 0),      conv_shape(140, 3, 5, 5, 4, 3, 3, 1, 1, 0, 0),
      conv_shape(2, 132, 6, 6, 132, 3, 3, 1, 1, 1, 1, 132), conv_shape(2, 3, 4, 5, 4, 2, 3, 3, 2, 3, 2),
  };
  for (int r = 0; r < 3; ++r) {
    const int64_t kh = rand_int(1, 4), kw = rand_int(1, 4), groups = rand_int(1, 3);
    cases.push_back(conv_shape(rand_int(1, 5), groups * rand_int(1, 3), rand_int(kh, 15), rand_int(kw, 15),
                               groups * rand_int(1, 3), kh, kw, rand_int(1, 3), rand_int(1, 3), rand_int(0, 2),
                               rand_int(0, 2), groups));
  }
  for (const ConvShape& s : cases) {
    const int64_t cg = s.c / s.groups, kg = s.k / s.groups;  // channels and filters per group
    const std::string tag = "x" + shape_str({s.n, s.c, s.h, s.w}) + " w" + shape_str({s.k, cg, s.kh, s.kw}) +
                            " s" + shape_str({s.sh, s.sw}) + " p" + shape_str({s.ph, s.pw}) +
                            (s.groups > 1 ? " groups=" + std::to_string(s.groups) : "");
    const int64_t xn = s.n * s.c * s.h * s.w, wn = s.k * cg * s.kh * s.kw, yn = s.n * s.k * s.oh * s.ow;
    const Vec x = randn(xn), w = randn(wn), b = randn(s.k), dy = randn(yn);
    // References: direct loops over the definition.
    DVec y(yn), yabs(yn), dx(xn, 0.0), dxabs(xn, 0.0), dw(wn, 0.0), dwabs(wn, 0.0), db(s.k, 0.0), dbabs(s.k, 0.0);
    for (int64_t i = 0; i < s.n; ++i)
      for (int64_t o = 0; o < s.k; ++o)
        for (int64_t oi = 0; oi < s.oh; ++oi)
          for (int64_t oj = 0; oj < s.ow; ++oj) {
            const int64_t yi = ((i * s.k + o) * s.oh + oi) * s.ow + oj;
            double acc = b[o], aacc = std::fabs(b[o]);
            const double g = dy[yi];
            db[o] += g;
            dbabs[o] += std::fabs(g);
            for (int64_t ci = 0; ci < cg; ++ci)
              for (int64_t p = 0; p < s.kh; ++p)
                for (int64_t q = 0; q < s.kw; ++q) {
                  const int64_t ih = oi * s.sh + p - s.ph, iw = oj * s.sw + q - s.pw;
                  if (ih < 0 || ih >= s.h || iw < 0 || iw >= s.w) continue;
                  const int64_t ch = o / kg * cg + ci;  // the input channel, in filter o's group
                  const int64_t xi = ((i * s.c + ch) * s.h + ih) * s.w + iw, wi = ((o * cg + ci) * s.kh + p) * s.kw + q;
                  acc += double(x[xi]) * w[wi];
                  aacc += std::fabs(double(x[xi]) * w[wi]);
                  dx[xi] += g * w[wi];
                  dxabs[xi] += std::fabs(g * w[wi]);
                  dw[wi] += g * x[xi];
                  dwabs[wi] += std::fabs(g * x[xi]);
                }
            y[yi] = acc;
            yabs[yi] = aacc;
          }
    DevBuf dX(x), dW(w), dB(b), dDY(dy), dCol(im2col_host(s, x));
    for (int with_bias = 0; with_bias < 2; ++with_bias) {
      DevBuf dY(yn), dY2(yn);
      dY.poison();
      cu::conv2d_forward(s, dX.get(), dW.get(), with_bias ? dB.get() : nullptr, dY.get());
      cu::conv2d_forward(s, dX.get(), dW.get(), with_bias ? dB.get() : nullptr, dY2.get());
      DVec ref = y, refabs = yabs;
      if (!with_bias) {
        for (int64_t i = 0; i < yn; ++i) {
          const int64_t o = (i / (s.oh * s.ow)) % s.k;
          ref[i] -= b[o];
          refabs[i] -= std::fabs(b[o]);
        }
      }
      const Vec got = dY.download();
      validate("conv2d_forward " + tag + (with_bias ? " +bias" : ""), got, ref, 1e-6, 1e-5, refabs, 2e-6);
      check_deterministic("conv2d_forward " + tag, got, dY2.download());
      check(same_bits(got, conv_forward_explicit(s, dCol, dW, with_bias ? dB.get() : nullptr)),
            "conv2d_forward " + tag + ": bitwise equal to the GEMM over an im2col buffer");
    }
    {
      DevBuf dDX(xn), dDX2(xn);
      dDX.poison();
      cu::conv2d_backward_data(s, dDY.get(), dW.get(), dDX.get());
      cu::conv2d_backward_data(s, dDY.get(), dW.get(), dDX2.get());
      const Vec got = dDX.download();
      validate("conv2d_backward_data " + tag, got, dx, 1e-6, 1e-5, dxabs, 2e-6);
      check_deterministic("conv2d_backward_data " + tag, got, dDX2.download());
    }
    {
      DevBuf dDW(wn), dDW2(wn);
      dDW.poison();
      cu::conv2d_backward_weight(s, dX.get(), dDY.get(), dDW.get(), nullptr);
      cu::conv2d_backward_weight(s, dX.get(), dDY.get(), dDW2.get(), nullptr);
      const Vec got = dDW.download();
      validate("conv2d_backward_weight " + tag, got, dw, 1e-6, 1e-5, dwabs, 2e-6);
      check_deterministic("conv2d_backward_weight " + tag, got, dDW2.download());
      check(same_bits(got, conv_weight_explicit(s, dCol, dDY)),
            "conv2d_backward_weight " + tag + ": bitwise equal to the GEMM over an im2col buffer");
      // With the bias gradient as the GEMM's row sums: the same dw, and db.
      DevBuf dDW3(wn), dDB(s.k), dDB2(s.k);
      dDB.poison();
      cu::conv2d_backward_weight(s, dX.get(), dDY.get(), dDW3.get(), dDB.get());
      cu::conv2d_backward_weight(s, dX.get(), dDY.get(), dDW2.get(), dDB2.get());
      check(same_bits(got, dDW3.download()), "conv2d_backward_weight " + tag + " +db: the same dw");
      const Vec gotb = dDB.download();
      validate("conv2d_backward_weight " + tag + " db", gotb, db, 1e-6, 1e-5, dbabs, 2e-6);
      check_deterministic("conv2d_backward_weight " + tag + " db", gotb, dDB2.download());
    }
    {
      DevBuf dDB(s.k), dDB2(s.k);
      dDB.poison();
      cu::conv2d_backward_bias(s, dDY.get(), dDB.get());
      cu::conv2d_backward_bias(s, dDY.get(), dDB2.get());
      const Vec got = dDB.download();
      validate("conv2d_backward_bias " + tag, got, db, 1e-6, 1e-5, dbabs, 2e-6);
      check_deterministic("conv2d_backward_bias " + tag, got, dDB2.download());
    }
  }
}

static PoolShape pool_shape(int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh,
                            int64_t sw) {
  return PoolShape{n, c, h, w, kh, kw, sh, sw, (h - kh) / sh + 1, (w - kw) / sw + 1};
}

static void test_pool() {
  std::printf("\n== avgpool2d\n");
  std::vector<PoolShape> cases = {pool_shape(2, 3, 8, 8, 2, 2, 2, 2), pool_shape(2, 3, 9, 7, 3, 3, 2, 2),
                                  pool_shape(1, 2, 6, 6, 3, 3, 1, 1), pool_shape(2, 2, 10, 9, 2, 2, 3, 3),
                                  pool_shape(3, 5, 13, 11, 4, 2, 3, 1), pool_shape(1, 1, 1, 1, 1, 1, 1, 1)};
  for (const PoolShape& s : cases) {
    const std::string tag = "x" + shape_str({s.n, s.c, s.h, s.w}) + " k" + shape_str({s.kh, s.kw}) + " s" +
                            shape_str({s.sh, s.sw});
    const int64_t xn = s.n * s.c * s.h * s.w, yn = s.n * s.c * s.oh * s.ow;
    const Vec x = randn(xn), dy = randn(yn);
    DVec y(yn, 0.0), dx(xn, 0.0);
    const double area = double(s.kh * s.kw);
    for (int64_t nc = 0; nc < s.n * s.c; ++nc)
      for (int64_t oi = 0; oi < s.oh; ++oi)
        for (int64_t oj = 0; oj < s.ow; ++oj) {
          const int64_t yi = (nc * s.oh + oi) * s.ow + oj;
          for (int64_t p = 0; p < s.kh; ++p)
            for (int64_t q = 0; q < s.kw; ++q) {
              const int64_t xi = (nc * s.h + oi * s.sh + p) * s.w + oj * s.sw + q;
              y[yi] += x[xi] / area;
              dx[xi] += dy[yi] / area;
            }
        }
    DevBuf dX(x), dDY(dy), dY(yn), dY2(yn), dDX(xn), dDX2(xn);
    dY.poison();
    dDX.poison();
    cu::avgpool2d_forward(s, dX.get(), dY.get());
    cu::avgpool2d_forward(s, dX.get(), dY2.get());
    cu::avgpool2d_backward(s, dDY.get(), dDX.get());
    cu::avgpool2d_backward(s, dDY.get(), dDX2.get());
    const Vec gy = dY.download(), gdx = dDX.download();
    validate("avgpool2d_forward " + tag, gy, y, 1e-6, 1e-5);
    validate("avgpool2d_backward " + tag, gdx, dx, 1e-6, 1e-5);
    check_deterministic("avgpool2d_forward " + tag, gy, dY2.download());
    check_deterministic("avgpool2d_backward " + tag, gdx, dDX2.download());
  }
}

static MaxPoolShape maxpool_shape(int64_t n, int64_t c, int64_t h, int64_t w, int64_t k, int64_t st, int64_t pad) {
  return MaxPoolShape{n, c, h, w, k, k, st, st, pad, pad, (h + 2 * pad - k) / st + 1, (w + 2 * pad - k) / st + 1};
}

// Max pooling: the reference picks the first maximum of each window (row-major) and scatters dy
// onto it; the kernel must agree on the argmax exactly and on dx to rounding.
static void test_maxpool() {
  std::printf("\n== maxpool2d\n");
  std::vector<MaxPoolShape> cases = {maxpool_shape(2, 3, 8, 8, 2, 2, 0),   maxpool_shape(2, 3, 11, 10, 3, 2, 1),
                                     maxpool_shape(1, 2, 7, 9, 3, 1, 1),   maxpool_shape(2, 2, 10, 9, 2, 3, 1),
                                     maxpool_shape(3, 5, 13, 11, 5, 2, 2), maxpool_shape(1, 1, 1, 1, 1, 1, 0)};
  for (const MaxPoolShape& s : cases) {
    const std::string tag = "x" + shape_str({s.n, s.c, s.h, s.w}) + " k" + shape_str({s.kh, s.kw}) + " s" +
                            shape_str({s.sh, s.sw}) + " p" + shape_str({s.ph, s.pw});
    const int64_t xn = s.n * s.c * s.h * s.w, yn = s.n * s.c * s.oh * s.ow;
    Vec x = randn(xn);
    for (int64_t i = 0; i < xn; i += 7) x[i] = 0.5f;  // ties: equal maxima in some windows
    const Vec dy = randn(yn);
    DVec y(yn), arg(yn), dx(xn, 0.0);
    for (int64_t nc = 0; nc < s.n * s.c; ++nc)
      for (int64_t oi = 0; oi < s.oh; ++oi)
        for (int64_t oj = 0; oj < s.ow; ++oj) {
          const int64_t yi = (nc * s.oh + oi) * s.ow + oj;
          double best = -INFINITY;
          int64_t where = -1;
          for (int64_t p = 0; p < s.kh; ++p)
            for (int64_t q = 0; q < s.kw; ++q) {
              const int64_t r = oi * s.sh - s.ph + p, c = oj * s.sw - s.pw + q;
              if (r < 0 || r >= s.h || c < 0 || c >= s.w) continue;
              const double v = x[(nc * s.h + r) * s.w + c];
              if (where < 0 || v > best) {
                best = v;
                where = r * s.w + c;
              }
            }
          y[yi] = best;
          arg[yi] = double(where);
          dx[nc * s.h * s.w + where] += dy[yi];
        }
    DevBuf dX(x), dDY(dy), dY(yn), dA(yn), dA2(yn), dY2(yn), dDX(xn), dDX2(xn);
    dY.poison();
    dA.poison();
    dDX.poison();
    cu::maxpool2d_forward(s, dX.get(), dY.get(), dA.get());
    cu::maxpool2d_forward(s, dX.get(), dY2.get(), dA2.get());
    cu::maxpool2d_backward(s, dDY.get(), dA.get(), dDX.get());
    cu::maxpool2d_backward(s, dDY.get(), dA.get(), dDX2.get());
    const Vec gy = dY.download(), ga = dA.download(), gdx = dDX.download();
    validate("maxpool2d_forward " + tag, gy, y, 0.0, 0.0);
    validate("maxpool2d_forward argmax " + tag, ga, arg, 0.0, 0.0);
    validate("maxpool2d_backward " + tag, gdx, dx, 1e-6, 1e-5);
    check_deterministic("maxpool2d_forward " + tag, gy, dY2.download());
    check_deterministic("maxpool2d_backward " + tag, gdx, dDX2.download());
  }
}

// Dropout: the mask is kg::dropout_uniform, the function both backends share; the reference
// applies it in double precision.
static void test_dropout() {
  std::printf("\n== dropout\n");
  const std::vector<std::pair<int64_t, float>> cases = {{1, 0.5f}, {1000, 0.1f}, {4097, 0.5f}, {100003, 0.9f}, {33, 0.0f}};
  for (const auto& [n, p] : cases) {
    const uint64_t seed = static_cast<uint64_t>(rand_int(0, int64_t{1} << 53));
    const std::string tag = "n=" + std::to_string(n) + " p=" + std::to_string(p);
    const Vec x = randn(n);
    DVec y(n);
    int64_t kept = 0;
    const uint64_t key = kg::dropout_key(seed);
    for (int64_t i = 0; i < n; ++i) {
      const bool keep = kg::dropout_uniform(key, uint64_t(i)) >= p;
      kept += keep;
      y[i] = keep ? double(x[i]) * double(1.0f / (1.0f - p)) : 0.0;
    }
    DevBuf dX(x), dY(n), dY2(n);
    dY.poison();
    cu::dropout_apply(n, p, seed, dX.get(), dY.get());
    cu::dropout_apply(n, p, seed, dX.get(), dY2.get());
    const Vec gy = dY.download();
    validate("dropout_apply " + tag, gy, y, 0.0, 1e-7);
    check_deterministic("dropout_apply " + tag, gy, dY2.download());
    if (n >= 1000) check(std::abs(double(n - kept) / n - p) < 0.05, "dropout_apply drop rate " + tag);
  }
}

// ---------------------------------------------------------------------------------------------
// Batch norm

struct BnRef {
  DVec mean, var, invstd, y, dx, dgamma, dbeta, dx_infer, dgamma_infer, dbeta_infer, y_infer;
};

static int64_t idx(const BnShape& s, int64_t i, int64_t ch, int64_t j) { return (i * s.c + ch) * s.l + j; }

// The backward-train terms use `save_mean`/`save_invstd` when given: backward differentiates the
// map forward actually computed, whose statistics are the saved ones (the mean as the sum of the
// saved float pair).
static BnRef bn_ref(const BnShape& s, const Vec& x, const Vec& gamma, const Vec& beta, const Vec& dy, double eps,
                    const Vec& rmean, const Vec& rvar, const DVec* save_mean = nullptr,
                    const Vec* save_invstd = nullptr) {
  BnRef r;
  const int64_t m = s.n * s.l;
  r.mean.assign(s.c, 0.0);
  r.var.assign(s.c, 0.0);
  r.invstd.assign(s.c, 0.0);
  r.dgamma.assign(s.c, 0.0);
  r.dbeta.assign(s.c, 0.0);
  r.dgamma_infer.assign(s.c, 0.0);
  r.dbeta_infer.assign(s.c, 0.0);
  const size_t total = x.size();
  r.y.assign(total, 0.0);
  r.dx.assign(total, 0.0);
  r.dx_infer.assign(total, 0.0);
  r.y_infer.assign(total, 0.0);
  for (int64_t ch = 0; ch < s.c; ++ch) {
    double sum = 0.0;
    for (int64_t i = 0; i < s.n; ++i)
      for (int64_t j = 0; j < s.l; ++j) sum += x[idx(s, i, ch, j)];
    const double mean = sum / m;
    double sq = 0.0;
    for (int64_t i = 0; i < s.n; ++i)
      for (int64_t j = 0; j < s.l; ++j) sq += (x[idx(s, i, ch, j)] - mean) * (x[idx(s, i, ch, j)] - mean);
    const double var = sq / m, invstd = 1.0 / std::sqrt(var + eps);
    r.mean[ch] = mean;
    r.var[ch] = var;
    r.invstd[ch] = invstd;
    const double bmean = save_mean ? (*save_mean)[ch] : mean, binv = save_invstd ? (*save_invstd)[ch] : invstd;
    double sdy = 0.0, sdyx = 0.0, sdyx_inf = 0.0;
    const double rinv = 1.0 / std::sqrt(double(rvar[ch]) + eps);
    for (int64_t i = 0; i < s.n; ++i)
      for (int64_t j = 0; j < s.l; ++j) {
        const int64_t k = idx(s, i, ch, j);
        r.y[k] = (x[k] - mean) * invstd * gamma[ch] + beta[ch];
        r.y_infer[k] = (x[k] - rmean[ch]) * rinv * gamma[ch] + beta[ch];
        sdy += dy[k];
        sdyx += dy[k] * (x[k] - bmean) * binv;
        sdyx_inf += dy[k] * (x[k] - rmean[ch]) * rinv;
      }
    r.dbeta[ch] = sdy;
    r.dgamma[ch] = sdyx;
    r.dbeta_infer[ch] = sdy;
    r.dgamma_infer[ch] = sdyx_inf;
    for (int64_t i = 0; i < s.n; ++i)
      for (int64_t j = 0; j < s.l; ++j) {
        const int64_t k = idx(s, i, ch, j);
        const double xhat = (x[k] - bmean) * binv;
        r.dx[k] = gamma[ch] * binv * (dy[k] - sdy / m - xhat * sdyx / m);
        r.dx_infer[k] = dy[k] * gamma[ch] * rinv;
      }
  }
  return r;
}

// The saved mean as the double sum of its float pair (hi, lo).
static DVec pair_mean(const Vec& hi, const Vec& lo) {
  DVec m(hi.size());
  for (size_t i = 0; i < hi.size(); ++i) m[i] = double(hi[i]) + double(lo[i]);
  return m;
}

static DVec abs_scale(const DVec& v) {  // one tolerance scale for a whole tensor: its largest |value|
  double mx = 0.0;
  for (double x : v) mx = std::max(mx, std::fabs(x));
  return DVec(v.size(), mx);
}

static void test_bn_shape(const BnShape& s, const Vec& x, const std::string& what) {
  const std::string tag = what + " (n,c,l)=" + shape_str({s.n, s.c, s.l});
  const size_t total = x.size();
  const float eps = 1e-5f;
  const Vec gamma = uniform(s.c, 0.5, 1.5), beta = randn(s.c), dy = randn(total);
  const Vec rmean = randn(s.c), rvar = uniform(s.c, 0.5, 2.0);
  const BnRef r = bn_ref(s, x, gamma, beta, dy, eps, rmean, rvar);
  DevBuf dX(x), dG(gamma), dB(beta), dDY(dy), dRM(rmean), dRV(rvar);

  // Forward, training.
  DevBuf y(total), mean(s.c), mean_lo(s.c), invstd(s.c), var(s.c), y2(total), mean2(s.c), mean_lo2(s.c),
      invstd2(s.c), var2(s.c);
  y.poison();
  cu::batchnorm_forward_train(s, dX.get(), dG.get(), dB.get(), eps, y.get(), mean.get(), mean_lo.get(), invstd.get(),
                              var.get());
  cu::batchnorm_forward_train(s, dX.get(), dG.get(), dB.get(), eps, y2.get(), mean2.get(), mean_lo2.get(),
                              invstd2.get(), var2.get());
  const Vec gy = y.download(), gmean = mean.download(), gmean_lo = mean_lo.download(), ginv = invstd.download(),
            gvar = var.download();
  const DVec pmean = pair_mean(gmean, gmean_lo);
  const BnRef rb = bn_ref(s, x, gamma, beta, dy, eps, rmean, rvar, &pmean, &ginv);  // backward terms
  DVec stddev(s.c);
  for (int64_t ch = 0; ch < s.c; ++ch) stddev[ch] = std::sqrt(r.var[ch]);
  validate("bn forward_train mean " + tag, gmean, r.mean, 0.0, 1e-6, stddev, 1e-6);
  // The pair holds the mean to a millionth of the spread, far below a float's rounding.
  bool pair_exact = true;
  for (int64_t ch = 0; ch < s.c; ++ch) pair_exact = pair_exact && std::fabs(pmean[ch] - r.mean[ch]) <= 1e-6 * stddev[ch];
  check(pair_exact, "bn forward_train mean " + tag + ": hi + lo within 1e-6 of the spread");
  validate("bn forward_train var " + tag, gvar, r.var, 1e-9, 1e-5);
  validate("bn forward_train invstd " + tag, ginv, r.invstd, 0.0, 1e-5);
  // y against the exact map with the exact mean.
  validate("bn forward_train y " + tag, gy, r.y, 1e-5, 1e-5);
  check_deterministic("bn forward_train " + tag, gy, y2.download());
  check(same_bits(gmean, mean2.download()) && same_bits(gmean_lo, mean_lo2.download()) &&
            same_bits(gvar, var2.download()) && same_bits(ginv, invstd2.download()),
        "bn forward_train statistics " + tag + ": second run bitwise identical");

  // Backward, training (with the saved statistics of the forward pass).
  DevBuf dx(total), dgamma(s.c), dbeta(s.c), dx2(total), dgamma2(s.c), dbeta2(s.c);
  dx.poison();
  cu::batchnorm_backward_train(s, dX.get(), dDY.get(), dG.get(), mean.get(), mean_lo.get(), invstd.get(), dx.get(),
                               dgamma.get(), dbeta.get());
  cu::batchnorm_backward_train(s, dX.get(), dDY.get(), dG.get(), mean.get(), mean_lo.get(), invstd.get(), dx2.get(),
                               dgamma2.get(), dbeta2.get());
  const Vec gdx = dx.download(), gdg = dgamma.download(), gdb = dbeta.download();
  validate("bn backward_train dx " + tag, gdx, rb.dx, 0.0, 1e-4, abs_scale(rb.dx), 1e-5);
  validate("bn backward_train dgamma " + tag, gdg, rb.dgamma, 0.0, 1e-4, abs_scale(rb.dgamma), 1e-5);
  validate("bn backward_train dbeta " + tag, gdb, rb.dbeta, 0.0, 1e-4, abs_scale(rb.dbeta), 1e-5);
  check_deterministic("bn backward_train dx " + tag, gdx, dx2.download());
  check(same_bits(gdg, dgamma2.download()) && same_bits(gdb, dbeta2.download()),
        "bn backward_train dgamma/dbeta " + tag + ": second run bitwise identical");
  // dx not wanted: the parameter gradients alone, identical to the run with dx.
  DevBuf dgamma3(s.c), dbeta3(s.c);
  cu::batchnorm_backward_train(s, dX.get(), dDY.get(), dG.get(), mean.get(), mean_lo.get(), invstd.get(), nullptr,
                               dgamma3.get(), dbeta3.get());
  check(same_bits(gdg, dgamma3.download()) && same_bits(gdb, dbeta3.download()),
        "bn backward_train without dx " + tag + ": same dgamma/dbeta");

  // Inference forward and backward, with separate running statistics.
  DevBuf yi(total), dxi(total), dgi(s.c), dbi(s.c);
  yi.poison();
  dxi.poison();
  cu::batchnorm_forward_infer(s, dX.get(), dG.get(), dB.get(), dRM.get(), dRV.get(), eps, yi.get());
  cu::batchnorm_backward_infer(s, dX.get(), dDY.get(), dG.get(), dRM.get(), dRV.get(), eps, dxi.get(), dgi.get(),
                               dbi.get());
  validate("bn forward_infer y " + tag, yi.download(), r.y_infer, 1e-5, 1e-5);
  validate("bn backward_infer dx " + tag, dxi.download(), r.dx_infer, 1e-6, 1e-5);
  validate("bn backward_infer dgamma " + tag, dgi.download(), r.dgamma_infer, 0.0, 1e-4, abs_scale(r.dgamma_infer),
           1e-5);
  validate("bn backward_infer dbeta " + tag, dbi.download(), r.dbeta_infer, 0.0, 1e-4, abs_scale(r.dbeta_infer), 1e-5);
}

// Channels with |mean| >> std, constant channels: the cases E[x^2] - E[x]^2 gets wrong.
static void test_bn_robust(const BnShape& s) {
  const std::string tag = "(n,c,l)=" + shape_str({s.n, s.c, s.l});
  const size_t total = s.n * s.c * s.l;
  Vec x = randn(total);
  std::normal_distribution<double> noise(0.0, 0.1);
  for (int64_t i = 0; i < s.n; ++i)
    for (int64_t j = 0; j < s.l; ++j) {
      x[(i * s.c + 0) * s.l + j] = static_cast<float>(1e4 + noise(g_rng));  // mean 1e4, spread 0.1
      x[(i * s.c + 1) * s.l + j] = 3.7f;                                    // constant
      x[(i * s.c + 2) * s.l + j] = static_cast<float>(-2e3 + noise(g_rng) * 1e-2);
    }
  const Vec gamma = uniform(s.c, 0.5, 1.5), beta = randn(s.c);
  const float eps = 1e-5f;
  DevBuf dX(x), dG(gamma), dB(beta), y(total), mean(s.c), mean_lo(s.c), invstd(s.c), var(s.c);
  cu::batchnorm_forward_train(s, dX.get(), dG.get(), dB.get(), eps, y.get(), mean.get(), mean_lo.get(), invstd.get(),
                              var.get());
  const Vec gy = y.download(), gmean = mean.download(), gmean_lo = mean_lo.download(), gvar = var.download();
  const BnRef r = bn_ref(s, x, gamma, beta, Vec(total, 0.0f), eps, Vec(s.c, 0.0f), Vec(s.c, 1.0f));

  bool finite = true, nonneg = true;
  for (float v : gy) finite = finite && std::isfinite(v);
  for (float v : gvar) nonneg = nonneg && v >= 0.0f;
  check(finite, "bn robust " + tag + ": every output finite");
  check(nonneg, "bn robust " + tag + ": every variance >= 0");
  // Constant channel: exactly its value as mean, exactly zero variance, exactly beta as output.
  bool exact = gmean[1] == 3.7f && gmean_lo[1] == 0.0f && gvar[1] == 0.0f;
  for (int64_t i = 0; i < s.n; ++i)
    for (int64_t j = 0; j < s.l; ++j) exact = exact && gy[(i * s.c + 1) * s.l + j] == beta[1];
  check(exact, "bn robust " + tag + ": constant channel gives mean == value, var == 0, y == beta exactly");
  // |mean| >> std: the mean within one fp32 ulp of the exact one, the variance to 1e-5.
  for (int ch : {0, 2}) {
    const double ulp = std::nextafter(std::fabs(float(r.mean[ch])), INFINITY) - std::fabs(float(r.mean[ch]));
    check(std::fabs(gmean[ch] - r.mean[ch]) <= ulp,
          "bn robust " + tag + " channel " + std::to_string(ch) + ": mean within 1 ulp (got " +
              std::to_string(gmean[ch]) + ", exact " + std::to_string(r.mean[ch]) + ")");
    check(std::fabs(gvar[ch] - r.var[ch]) <= 1e-5 * r.var[ch],
          "bn robust " + tag + " channel " + std::to_string(ch) + ": variance to 1e-5 (got " +
              std::to_string(gvar[ch]) + ", exact " + std::to_string(r.var[ch]) + ")");
    // y against the exact map with the exact mean, to 1e-5 of the spread (gamma * 1e-5; a float
    // mean alone is off by up to 5e-3 of the spread at 1e4 and 0.1), and normalized: mean beta,
    // std gamma.
    DVec ref;
    Vec got;
    double sum = 0.0, sq = 0.0;
    for (int64_t i = 0; i < s.n; ++i)
      for (int64_t j = 0; j < s.l; ++j) {
        const int64_t k = (i * s.c + ch) * s.l + j;
        ref.push_back((double(x[k]) - r.mean[ch]) * r.invstd[ch] * gamma[ch] + beta[ch]);
        got.push_back(gy[k]);
        sum += gy[k];
        sq += (gy[k] - beta[ch]) * (gy[k] - beta[ch]);
      }
    validate("bn robust y " + tag + " channel " + std::to_string(ch), got, ref, 1e-5 * gamma[ch], 0.0);
    // Normalized: the output's mean is beta and its standard deviation gamma * sqrt(var / (var +
    // eps)) (eps counts when var is 1e-6).
    const double m = sum / got.size(), sd = std::sqrt(std::max(0.0, sq / got.size() - (m - beta[ch]) * (m - beta[ch])));
    const double want_sd = gamma[ch] * std::sqrt(r.var[ch] / (r.var[ch] + eps));
    check(std::fabs(m - beta[ch]) < 1e-5 * gamma[ch] && std::fabs(sd - want_sd) < 1e-2 * want_sd,
          "bn robust " + tag + " channel " + std::to_string(ch) + ": output has the expected mean and std");
  }
}

// Values near the float32 limit: (x - mean)^2 and the variance exceed float, the normalized values
// do not. Channel 0 alternates -1e38 / 1e38 (y must be -1 / +1, not beta), channel 1 spans
// [1e38, 3e38] around a mean near 2e38, channel 2 is ordinary data beside them.
static void test_bn_huge(const BnShape& s) {
  const std::string tag = "(n,c,l)=" + shape_str({s.n, s.c, s.l});
  const size_t total = s.n * s.c * s.l;
  Vec x = randn(total);
  const Vec wide = uniform(total, 1e38, 3e38);
  for (int64_t i = 0; i < s.n; ++i)
    for (int64_t j = 0; j < s.l; ++j) {
      x[idx(s, i, 0, j)] = (i * s.l + j) % 2 ? 1e38f : -1e38f;
      x[idx(s, i, 1, j)] = wide[idx(s, i, 1, j)];
    }
  const Vec gamma = uniform(s.c, 0.5, 1.5), beta = randn(s.c);
  const float eps = 1e-5f;
  DevBuf dX(x), dG(gamma), dB(beta), y(total), mean(s.c), mean_lo(s.c), invstd(s.c), var(s.c);
  cu::batchnorm_forward_train(s, dX.get(), dG.get(), dB.get(), eps, y.get(), mean.get(), mean_lo.get(), invstd.get(),
                              var.get());
  const Vec gy = y.download(), gmean = mean.download(), ginv = invstd.download(), gvar = var.download();
  const BnRef r = bn_ref(s, x, gamma, beta, Vec(total, 0.0f), eps, Vec(s.c, 0.0f), Vec(s.c, 1.0f));
  validate("bn huge mean " + tag, gmean, r.mean, 0.0, 1e-6, abs_scale(r.mean), 1e-6);
  validate("bn huge invstd " + tag, ginv, r.invstd, 0.0, 1e-5);
  validate("bn huge y " + tag, gy, r.y, 1e-5, 1e-5);
  // An even count of alternating values: mean 0, so y is exactly gamma * (+-1) + beta up to rounding.
  if ((s.n * s.l) % 2 == 0) {
    bool unit = true;
    for (int64_t i = 0; i < s.n; ++i)
      for (int64_t j = 0; j < s.l; ++j) {
        const double want = ((i * s.l + j) % 2 ? 1.0 : -1.0) * gamma[0] + beta[0];
        unit = unit && std::fabs(gy[idx(s, i, 0, j)] - want) <= 1e-5 * (1.0 + std::fabs(want));
      }
    check(unit, "bn huge " + tag + ": a channel of -1e38 / 1e38 normalizes to gamma * (-1 / +1) + beta");
  }
  check(std::isinf(gvar[0]) && std::isinf(gvar[1]), "bn huge " + tag + ": a variance beyond float32 is reported as infinite");
}

// Batch norm fused with ReLU: forward equal to relu of the float64 reference and bitwise to
// relu of the unfused kernel; backward against the float64 rule with dy masked by the output, and
// equal to the unfused backward of the masked dy.
static void test_bn_relu(const BnShape& s) {
  const std::string tag = "(n,c,l)=" + shape_str({s.n, s.c, s.l});
  const size_t total = s.n * s.c * s.l;
  const float eps = 1e-5f;
  const Vec x = randn(total, 0.3, 1.5), gamma = uniform(s.c, 0.5, 1.5), beta = randn(s.c), dy = randn(total);
  const Vec rmean = randn(s.c), rvar = uniform(s.c, 0.5, 2.0);
  DevBuf dX(x), dG(gamma), dB(beta), dDY(dy), dRM(rmean), dRV(rvar);
  DevBuf y(total), yp(total), mean(s.c), mean_lo(s.c), invstd(s.c), var(s.c);
  y.poison();
  cu::batchnorm_relu_forward_train(s, dX.get(), dG.get(), dB.get(), eps, y.get(), mean.get(), mean_lo.get(),
                                   invstd.get(), var.get());
  cu::batchnorm_forward_train(s, dX.get(), dG.get(), dB.get(), eps, yp.get(), mean.get(), mean_lo.get(), invstd.get(),
                              var.get());
  const Vec gy = y.download(), ginv = invstd.download();
  Vec pair = yp.download(), masked(total);
  for (size_t k = 0; k < total; ++k) pair[k] = pair[k] > 0.0f ? pair[k] : 0.0f;
  for (size_t k = 0; k < total; ++k) masked[k] = gy[k] > 0.0f ? dy[k] : 0.0f;
  const DVec pmean = pair_mean(mean.download(), mean_lo.download());
  const BnRef r = bn_ref(s, x, gamma, beta, masked, eps, rmean, rvar, &pmean, &ginv);
  DVec yref(total);
  for (size_t k = 0; k < total; ++k) yref[k] = std::max(r.y[k], 0.0);
  validate("bn+relu forward_train y " + tag, gy, yref, 1e-5, 1e-5);
  check(same_bits(gy, pair), "bn+relu forward_train " + tag + ": bitwise relu of the unfused output");

  DevBuf dx(total), dgamma(s.c), dbeta(s.c), dM(masked), dxp(total), dgp(s.c), dbp(s.c);
  dx.poison();
  cu::batchnorm_relu_backward_train(s, dX.get(), y.get(), dDY.get(), dG.get(), mean.get(), mean_lo.get(), invstd.get(),
                                    dx.get(), dgamma.get(), dbeta.get());
  cu::batchnorm_backward_train(s, dX.get(), dM.get(), dG.get(), mean.get(), mean_lo.get(), invstd.get(), dxp.get(),
                               dgp.get(), dbp.get());
  const Vec gdx = dx.download(), gdg = dgamma.download(), gdb = dbeta.download();
  validate("bn+relu backward_train dx " + tag, gdx, r.dx, 0.0, 1e-4, abs_scale(r.dx), 1e-5);
  validate("bn+relu backward_train dgamma " + tag, gdg, r.dgamma, 0.0, 1e-4, abs_scale(r.dgamma), 1e-5);
  check(same_bits(gdx, dxp.download()) && same_bits(gdg, dgp.download()) && same_bits(gdb, dbp.download()),
        "bn+relu backward_train " + tag + ": bitwise the unfused backward of the masked dy");

  // Inference: forward and backward against relu of the running-statistics map.
  DevBuf yi(total), dxi(total), dgi(s.c), dbi(s.c);
  cu::batchnorm_relu_forward_infer(s, dX.get(), dG.get(), dB.get(), dRM.get(), dRV.get(), eps, yi.get());
  const Vec gyi = yi.download();
  DVec yiref(total);
  for (size_t k = 0; k < total; ++k) yiref[k] = std::max(r.y_infer[k], 0.0);
  validate("bn+relu forward_infer y " + tag, gyi, yiref, 1e-5, 1e-5);
  Vec masked_i(total);
  for (size_t k = 0; k < total; ++k) masked_i[k] = gyi[k] > 0.0f ? dy[k] : 0.0f;
  const BnRef ri = bn_ref(s, x, gamma, beta, masked_i, eps, rmean, rvar);
  cu::batchnorm_relu_backward_infer(s, dX.get(), yi.get(), dDY.get(), dG.get(), dRM.get(), dRV.get(), eps, dxi.get(),
                                    dgi.get(), dbi.get());
  validate("bn+relu backward_infer dx " + tag, dxi.download(), ri.dx_infer, 1e-6, 1e-5);
  validate("bn+relu backward_infer dbeta " + tag, dbi.download(), ri.dbeta_infer, 0.0, 1e-4, abs_scale(ri.dbeta_infer),
           1e-5);
}

// Batch norm + ReLU + average pooling fused: bitwise the unfused chain (batch norm + ReLU, then
// pooling; backward: pooling's backward, then batch norm + ReLU's), whose parts are checked against
// float64 above and in test_pool; the pooled output is also checked against float64 here.
static void test_bn_relu_pool(const PoolShape& p) {
  const std::string tag = "(n,c,h,w,k)=" + shape_str({p.n, p.c, p.h, p.w, p.kh});
  const BnShape s{p.n, p.c, p.h * p.w};
  const size_t total = s.n * s.c * s.l, pooled = p.n * p.c * p.oh * p.ow;
  const float eps = 1e-5f;
  const Vec x = randn(total, 0.3, 1.5), gamma = uniform(s.c, 0.5, 1.5), beta = randn(s.c), dy = randn(pooled);
  DevBuf dX(x), dG(gamma), dB(beta), dDY(dy);
  DevBuf y(pooled), mean(s.c), mean_lo(s.c), invstd(s.c), var(s.c);
  DevBuf act(total), yp(pooled), mean2(s.c), mean_lo2(s.c), invstd2(s.c), var2(s.c);
  y.poison();
  cu::batchnorm_relu_pool_forward_train(p, dX.get(), dG.get(), dB.get(), eps, y.get(), mean.get(), mean_lo.get(),
                                        invstd.get(), var.get());
  cu::batchnorm_relu_forward_train(s, dX.get(), dG.get(), dB.get(), eps, act.get(), mean2.get(), mean_lo2.get(),
                                   invstd2.get(), var2.get());
  cu::avgpool2d_forward(p, act.get(), yp.get());
  const Vec gy = y.download();
  check(same_bits(gy, yp.download()) && same_bits(mean.download(), mean2.download()) &&
            same_bits(invstd.download(), invstd2.download()) && same_bits(var.download(), var2.download()),
        "bn+relu+pool forward_train " + tag + ": bitwise the unfused chain");
  const BnRef r = bn_ref(s, x, gamma, beta, Vec(total, 0.0f), eps, Vec(s.c, 0.0f), Vec(s.c, 1.0f));
  DVec yref(pooled, 0.0);
  for (int64_t pl = 0; pl < p.n * p.c; ++pl)
    for (int64_t oi = 0; oi < p.oh; ++oi)
      for (int64_t oj = 0; oj < p.ow; ++oj) {
        double sum = 0.0;
        for (int64_t a = 0; a < p.kh; ++a)
          for (int64_t b = 0; b < p.kw; ++b) sum += std::max(r.y[pl * s.l + (oi * p.kh + a) * p.w + oj * p.kw + b], 0.0);
        yref[(pl * p.oh + oi) * p.ow + oj] = sum / double(p.kh * p.kw);
      }
  validate("bn+relu+pool forward_train y " + tag, gy, yref, 1e-5, 1e-5);

  DevBuf dx(total), dgamma(s.c), dbeta(s.c), dyfull(total), dxp(total), dgp(s.c), dbp(s.c);
  dx.poison();
  cu::batchnorm_relu_pool_backward_train(p, dX.get(), dDY.get(), dG.get(), dB.get(), mean.get(), mean_lo.get(),
                                         invstd.get(), dx.get(), dgamma.get(), dbeta.get());
  cu::avgpool2d_backward(p, dDY.get(), dyfull.get());
  cu::batchnorm_relu_backward_train(s, dX.get(), act.get(), dyfull.get(), dG.get(), mean.get(), mean_lo.get(),
                                    invstd.get(), dxp.get(), dgp.get(), dbp.get());
  check(same_bits(dx.download(), dxp.download()) && same_bits(dgamma.download(), dgp.download()) &&
            same_bits(dbeta.download(), dbp.download()),
        "bn+relu+pool backward_train " + tag + ": bitwise the unfused chain");
  DevBuf dg_only(s.c), db_only(s.c);  // no dx wanted
  cu::batchnorm_relu_pool_backward_train(p, dX.get(), dDY.get(), dG.get(), dB.get(), mean.get(), mean_lo.get(),
                                         invstd.get(), nullptr, dg_only.get(), db_only.get());
  check(same_bits(dg_only.download(), dgp.download()) && same_bits(db_only.download(), dbp.download()),
        "bn+relu+pool backward_train " + tag + " without dx: the same dgamma and dbeta");
}

static PoolShape pool_shape_of(int64_t n, int64_t c, int64_t h, int64_t w, int64_t k) {
  return PoolShape{n, c, h, w, k, k, k, k, h / k, w / k};
}

static void test_batchnorm() {
  std::printf("\n== batch norm\n");
  for (const PoolShape& p : {pool_shape_of(8, 20, 26, 26, 2), pool_shape_of(6, 5, 9, 9, 2), pool_shape_of(3, 4, 7, 10, 3),
                             pool_shape_of(2, 3, 12, 8, 4), pool_shape_of(5, 2, 3, 5, 1)}) {
    test_bn_relu_pool(p);
  }
  std::vector<BnShape> shapes = {{64, 20, 26 * 26}, {64, 50, 9 * 9}, {64, 128, 1},  {7, 3, 5},     {5, 1, 1},
                                 {3, 10, 1},        {1000, 3, 1},    {2, 70000, 1}, {2, 70000, 4}, {2, 3, 100003},
                                 {33, 7, 36},       {4, 5, 2}};
  for (int r = 0; r < 3; ++r) shapes.push_back({rand_int(2, 40), rand_int(1, 40), rand_int(1, 300)});
  for (const BnShape& s : shapes) test_bn_shape(s, randn(s.n * s.c * s.l, 0.5, 2.0), "random");
  test_bn_shape({16, 4, 64}, randn(16 * 4 * 64, 3.0, 1e-3), "small spread");
  for (const BnShape& s : std::vector<BnShape>{{64, 3, 49}, {1000, 3, 1}, {8, 3, 1024}, {2, 3, 3}}) test_bn_robust(s);
  for (const BnShape& s : std::vector<BnShape>{{7, 3, 1}, {1000, 3, 1}, {64, 3, 49}, {3, 3, 4099}, {2, 3, 3}}) test_bn_huge(s);
  for (const BnShape& s : std::vector<BnShape>{{6, 5, 16}, {3, 7, 15}, {64, 10, 1}, {9, 300, 1}}) test_bn_relu(s);
}

// ---------------------------------------------------------------------------------------------
// Group norm, layer norm, batch renorm: normalization over the groups of a NormShape

struct NormRef {
  DVec y, dx, dgamma, dbeta, mean, invstd, r, d;
};

// Double precision, from the NormShape's definition: element e is in group e / inner % groups and
// uses parameter e / run % params. With running statistics, batch renorm's clipped r and d.
static NormRef norm_ref(const kg::NormShape& s, const Vec& x, const Vec& gamma, const Vec& beta, const Vec& dy,
                        double eps, const Vec* rmean, const Vec* rvar, double r_max, double d_max) {
  const size_t total = x.size();
  auto group = [&](size_t e) { return int64_t(e) / s.inner % s.groups; };
  auto param = [&](size_t e) { return int64_t(e) / s.run % s.params; };
  NormRef out{DVec(total), DVec(total), DVec(s.params), DVec(s.params), DVec(s.groups), DVec(s.groups),
              DVec(s.groups, 1.0), DVec(s.groups, 0.0)};
  const double m = double(s.outer * s.inner);
  DVec var(s.groups), s1(s.groups), s2(s.groups);
  for (size_t e = 0; e < total; ++e) out.mean[group(e)] += x[e] / m;
  for (size_t e = 0; e < total; ++e) var[group(e)] += std::pow(x[e] - out.mean[group(e)], 2) / m;
  for (int64_t g = 0; g < s.groups; ++g) {
    out.invstd[g] = 1.0 / std::sqrt(var[g] + eps);
    if (rmean) {
      const double sigma = std::sqrt((*rvar)[g] + eps);
      out.r[g] = std::clamp(std::sqrt(var[g] + eps) / sigma, 1.0 / r_max, r_max);
      out.d[g] = std::clamp((out.mean[g] - (*rmean)[g]) / sigma, -d_max, d_max);
    }
  }
  for (size_t e = 0; e < total; ++e) {
    const int64_t g = group(e), p = param(e);
    const double xhat = (x[e] - out.mean[g]) * out.invstd[g] * out.r[g] + out.d[g];
    out.y[e] = xhat * gamma[p] + beta[p];
    out.dgamma[p] += dy[e] * xhat;
    out.dbeta[p] += dy[e];
    s1[g] += double(dy[e]) * gamma[p];
    s2[g] += double(dy[e]) * gamma[p] * (x[e] - out.mean[g]);
  }
  for (size_t e = 0; e < total; ++e) {
    const int64_t g = group(e), p = param(e);
    const double is = out.invstd[g];
    out.dx[e] = is * out.r[g] * (double(dy[e]) * gamma[p] - s1[g] / m - (x[e] - out.mean[g]) * is * is * s2[g] / m);
  }
  return out;
}

static void test_norm_shape(const kg::NormShape& s, double mean, double std, bool renorm, const std::string& what) {
  const std::string tag = what + " (outer,groups,inner,params,run)=" + shape_str({s.outer, s.groups, s.inner, s.params, s.run});
  const size_t total = size_t(s.outer * s.groups * s.inner);
  const float eps = 1e-5f, r_max = 1.5f, d_max = 0.3f;
  const Vec x = randn(total, mean, std), gamma = uniform(s.params, 0.5, 1.5), beta = randn(s.params), dy = randn(total);
  const Vec rmean = randn(s.groups, mean, 0.3 * std), rvar = uniform(s.groups, 0.3 * std * std, 3.0 * std * std);
  const NormRef r = norm_ref(s, x, gamma, beta, dy, eps, renorm ? &rmean : nullptr, &rvar, r_max, d_max);
  DevBuf dX(x), dG(gamma), dB(beta), dDY(dy), dRM(rmean), dRV(rvar);
  DevBuf y(total), hi(s.groups), lo(s.groups), invstd(s.groups), var(s.groups), rr(s.groups), dd(s.groups), y2(total);
  y.poison();
  const kg::RenormArgs rn{dRM.get(), dRV.get(), r_max, d_max, var.get(), rr.get(), dd.get()};
  for (DevBuf* out : {&y, &y2}) {
    if (renorm) cu::renorm_forward(s, dX.get(), dG.get(), dB.get(), eps, rn, out->get(), hi.get(), lo.get(), invstd.get());
    else cu::norm_forward(s, dX.get(), dG.get(), dB.get(), eps, out->get(), hi.get(), lo.get(), invstd.get());
  }
  const Vec gy = y.download(), ghi = hi.download(), glo = lo.download();
  validate("norm forward mean " + tag, ghi, r.mean, 0.0, 1e-7);
  // The pair hi + lo holds the mean to ~2^-48 of its magnitude: far below the spread.
  double worst = 0.0;
  for (int64_t g = 0; g < s.groups; ++g) worst = std::max(worst, std::fabs(double(ghi[g]) + double(glo[g]) - r.mean[g]));
  check(worst <= 1e-7 * std + 1e-13 * std::fabs(mean), "norm forward mean hi + lo " + tag);
  validate("norm forward invstd " + tag, invstd.download(), r.invstd, 0.0, 1e-5);
  validate("norm forward y " + tag, gy, r.y, 1e-5, 1e-5, abs_scale(r.y), 1e-6);
  if (renorm) {
    validate("renorm r " + tag, rr.download(), r.r, 0.0, 1e-6);
    validate("renorm d " + tag, dd.download(), r.d, 1e-6, 1e-5);
  }
  check_deterministic("norm forward " + tag, gy, y2.download());

  DevBuf dx(total), dgamma(s.params), dbeta(s.params), dx2(total), dgamma2(s.params), dbeta2(s.params);
  dx.poison();
  const float* r_ptr = renorm ? rr.get() : nullptr;
  const float* d_ptr = renorm ? dd.get() : nullptr;
  cu::norm_backward(s, dX.get(), dDY.get(), dG.get(), hi.get(), lo.get(), invstd.get(), r_ptr, d_ptr, dx.get(),
                    dgamma.get(), dbeta.get());
  cu::norm_backward(s, dX.get(), dDY.get(), dG.get(), hi.get(), lo.get(), invstd.get(), r_ptr, d_ptr, dx2.get(),
                    dgamma2.get(), dbeta2.get());
  const Vec gdx = dx.download(), gdg = dgamma.download();
  validate("norm backward dx " + tag, gdx, r.dx, 0.0, 1e-4, abs_scale(r.dx), 1e-5);
  validate("norm backward dgamma " + tag, gdg, r.dgamma, 0.0, 1e-4, abs_scale(r.dgamma), 1e-5);
  validate("norm backward dbeta " + tag, dbeta.download(), r.dbeta, 0.0, 1e-4, abs_scale(r.dbeta), 1e-5);
  check_deterministic("norm backward dx " + tag, gdx, dx2.download());
  check_deterministic("norm backward dgamma " + tag, gdg, dgamma2.download());
}

static void test_norms() {
  std::printf("\n== group norm, layer norm, batch renorm\n");
  const auto group_norm = [](int64_t n, int64_t c, int64_t l, int64_t groups) {
    return kg::NormShape{1, n * groups, c / groups * l, c, l};
  };
  const auto layer_norm = [](int64_t rows, int64_t d) { return kg::NormShape{1, rows, d, d, 1}; };
  const auto renorm = [](int64_t n, int64_t c, int64_t l) { return kg::NormShape{n, c, l, c, l}; };
  for (const kg::NormShape& s : {group_norm(4, 6, 25, 3), group_norm(3, 10, 13 * 7, 5), group_norm(2, 5, 9, 5),
                                 group_norm(5, 4, 1, 1), group_norm(1, 3, 1, 3)}) {
    test_norm_shape(s, 0.5, 2.0, false, "group norm");
  }
  for (const kg::NormShape& s : {layer_norm(7, 13), layer_norm(37, 300), layer_norm(1, 1025), layer_norm(300, 1)}) {
    test_norm_shape(s, 0.5, 2.0, false, "layer norm");
  }
  test_norm_shape(layer_norm(4, 300), 1e4, 0.1, false, "layer norm, mean 1e4 spread 0.1");
  for (const kg::NormShape& s : {renorm(9, 5, 1), renorm(3, 4, 15), renorm(64, 3, 49), renorm(2, 7, 3)}) {
    test_norm_shape(s, 0.2, 1.3, true, "batch renorm");
  }
}

// ---------------------------------------------------------------------------------------------
// Elementwise, reductions, loss, SGD

static BroadcastShape make_broadcast(const std::vector<int64_t>& out, const std::vector<int64_t>& as,
                                     const std::vector<int64_t>& bs) {
  // as, bs: the operands' shapes right-aligned with out, size-1 dims broadcast.
  BroadcastShape s{};
  s.ndim = static_cast<int>(out.size());
  int64_t ast = 1, bst = 1;
  for (int d = s.ndim - 1; d >= 0; --d) {
    s.shape[d] = out[d];
    s.astride[d] = as[d] == 1 ? 0 : ast;
    s.bstride[d] = bs[d] == 1 ? 0 : bst;
    ast *= as[d];
    bst *= bs[d];
  }
  return s;
}

static void test_elementwise() {
  std::printf("\n== elementwise\n");
  struct Case {
    std::vector<int64_t> out, a, b;
  };
  std::vector<Case> cases = {
      {{3, 4, 5}, {3, 4, 5}, {3, 4, 5}},  {{64, 10}, {64, 10}, {1, 10}},  {{64, 10}, {64, 1}, {64, 10}},
      {{7}, {1}, {7}},                    {{7}, {7}, {1}},                {{1}, {1}, {1}},
      {{2, 4, 3, 6, 5}, {2, 1, 3, 1, 5}, {1, 4, 1, 6, 1}},
      {{2, 3, 2, 3, 2, 3}, {2, 1, 2, 1, 2, 1}, {1, 3, 1, 3, 1, 3}},
      {{1001}, {1001}, {1001}},           {{5, 1, 7}, {5, 1, 7}, {1, 1, 7}}, {{0, 3}, {0, 3}, {1, 3}},
  };
  for (const Case& c : cases) {
    int64_t n = 1, na = 1, nb = 1;
    for (size_t d = 0; d < c.out.size(); ++d) {
      n *= c.out[d];
      na *= c.a[d];
      nb *= c.b[d];
    }
    const BroadcastShape s = make_broadcast(c.out, c.a, c.b);
    const Vec a = randn(na), b = uniform(nb, 0.5, 2.0);
    DevBuf dA(a), dB(b);
    for (int op = 0; op < 4; ++op) {
      DVec ref(n);
      for (int64_t i = 0; i < n; ++i) {
        int64_t rest = i, ao = 0, bo = 0;
        for (int d = s.ndim - 1; d >= 0; --d) {
          const int64_t coord = rest % s.shape[d];
          rest /= s.shape[d];
          ao += coord * s.astride[d];
          bo += coord * s.bstride[d];
        }
        const double x = a[ao], y = b[bo];
        ref[i] = op == 0 ? double(float(x + y)) : op == 1 ? double(float(x - y)) : op == 2 ? double(float(x * y))
                                                                                            : double(float(x / y));
      }
      DevBuf out(n), out2(n);
      out.poison();
      cu::binary(static_cast<BinaryOp>(op), s, dA.get(), dB.get(), out.get());
      cu::binary(static_cast<BinaryOp>(op), s, dA.get(), dB.get(), out2.get());
      std::string shp = "(";
      for (size_t d = 0; d < c.out.size(); ++d) shp += (d ? "," : "") + std::to_string(c.out[d]);
      const std::string name = std::string("binary ") + "+-*/"[op] + " " + shp + ")";
      const Vec got = out.download();
      validate(name, got, ref, 0.0, 0.0);  // elementwise IEEE ops: exactly the fp32 result
      check_deterministic(name, got, out2.download());
    }
  }
  for (int64_t n : {1, 3, 1024, 1000003}) {
    const Vec x = randn(n), y = randn(n);
    DevBuf dX(x), dY(y), out(n);
    cu::fill(n, 2.5f, out.get());
    validate("fill n=" + std::to_string(n), out.download(), DVec(n, 2.5), 0.0, 0.0);
    cu::copy(n, dX.get(), out.get());
    validate("copy n=" + std::to_string(n), out.download(), to_double(x), 0.0, 0.0);
    DVec ref(n);
    for (int64_t i = 0; i < n; ++i) ref[i] = 0.5 * x[i] - 2.0 * y[i];
    cu::axpby(n, 0.5f, dX.get(), -2.0f, dY.get());
    validate("axpby n=" + std::to_string(n), dY.download(), ref, 1e-6, 1e-6);
    out.poison();
    for (int64_t i = 0; i < n; ++i) ref[i] = 3.0 * x[i];
    cu::axpby(n, 3.0f, dX.get(), 0.0f, out.get());  // beta == 0 ignores NaNs in y
    validate("axpby beta=0 n=" + std::to_string(n), out.download(), ref, 1e-6, 1e-6);
    for (int64_t i = 0; i < n; ++i) ref[i] = x[i] > 0 ? x[i] : 0.0;
    cu::relu_forward(n, dX.get(), out.get());
    validate("relu_forward n=" + std::to_string(n), out.download(), ref, 0.0, 0.0);
    dY.upload(y);
    for (int64_t i = 0; i < n; ++i) ref[i] = x[i] > 0 ? y[i] : 0.0;
    cu::relu_backward(n, dX.get(), dY.get(), out.get());
    validate("relu_backward n=" + std::to_string(n), out.download(), ref, 0.0, 0.0);
  }
}

static void test_reduce() {
  std::printf("\n== reduce_sum\n");
  struct Case {
    int64_t outer, r, inner;
  };
  std::vector<Case> cases = {{1, 10000000, 1}, {1000, 37, 1},  {1, 1000, 1000}, {13, 100000, 3}, {7, 5, 1},
                             {3, 1, 4},        {1, 3000000, 2}, {64, 128, 1},    {1, 64, 128},    {5, 0, 3},
                             {2, 17, 33},      {100000, 3, 1},  {3, 200003, 1}};
  for (int r = 0; r < 3; ++r) cases.push_back({rand_int(1, 50), rand_int(1, 5000), rand_int(1, 70)});
  for (const Case& c : cases) {
    const Vec x = randn(c.outer * c.r * c.inner, 0.3, 1.0);
    DVec ref(c.outer * c.inner, 0.0), absref(c.outer * c.inner, 0.0);
    const double scale = 0.5;
    for (int64_t o = 0; o < c.outer; ++o)
      for (int64_t r = 0; r < c.r; ++r)
        for (int64_t i = 0; i < c.inner; ++i) {
          const double v = x[(o * c.r + r) * c.inner + i];
          ref[o * c.inner + i] += scale * v;
          absref[o * c.inner + i] += scale * std::fabs(v);
        }
    DevBuf dX(x), y(c.outer * c.inner), y2(c.outer * c.inner);
    y.poison();
    cu::reduce_sum(c.outer, c.r, c.inner, float(scale), dX.get(), y.get());
    cu::reduce_sum(c.outer, c.r, c.inner, float(scale), dX.get(), y2.get());
    const std::string name = "reduce_sum (outer,r,inner)=" + shape_str({c.outer, c.r, c.inner});
    const Vec got = y.download();
    validate(name, got, ref, 1e-6, 1e-5, absref, 1e-6);
    check_deterministic(name, got, y2.download());
  }
}

static void test_loss() {
  std::printf("\n== softmax cross-entropy, argmax\n");
  for (auto [n, k] : std::vector<std::pair<int64_t, int64_t>>{{64, 10}, {5, 3000}, {1, 1}, {33, 1025}, {1000, 7}, {7000, 11}}) {
    Vec logits = randn(n * k, 0.0, 3.0), labels(n), dloss = randn(n);
    for (int64_t i = 0; i < n; ++i) labels[i] = float(rand_int(0, k - 1));
    if (k > 3) logits[3] = logits[1] = 100.0f;  // a tie in row 0: argmax must say 1
    DVec loss(n), dl(n * k), dl_mean(n * k), am(n);
    const double scale = 1.0 / double(n);  // the mean's
    for (int64_t i = 0; i < n; ++i) {
      double mx = -INFINITY;
      int64_t best = 0;
      for (int64_t j = 0; j < k; ++j) {
        if (logits[i * k + j] > mx) {
          mx = logits[i * k + j];
          best = j;
        }
      }
      double s = 0.0;
      for (int64_t j = 0; j < k; ++j) s += std::exp(logits[i * k + j] - mx);
      const int64_t lab = int64_t(labels[i]);
      loss[i] = std::log(s) + mx - logits[i * k + lab];
      for (int64_t j = 0; j < k; ++j) {
        const double d = std::exp(logits[i * k + j] - mx) / s - (j == lab);
        dl[i * k + j] = d * dloss[i];
        dl_mean[i * k + j] = d * dloss[0] * scale;
      }
      am[i] = double(best);
    }
    DevBuf dL(logits), dLab(labels), dDL(dloss), out(n), out2(n), g(n * k), g2(n * k), a(n);
    cu::softmax_xent_forward(n, k, dL.get(), dLab.get(), out.get());
    cu::softmax_xent_forward(n, k, dL.get(), dLab.get(), out2.get());
    cu::softmax_xent_backward(n, k, dL.get(), dLab.get(), dDL.get(), true, 1.0f, g.get());
    cu::softmax_xent_backward(n, k, dL.get(), dLab.get(), dDL.get(), true, 1.0f, g2.get());
    cu::argmax_rows(n, k, dL.get(), a.get());
    const std::string tag = "(n,k)=" + shape_str({n, k});
    const Vec gl = out.download(), gg = g.download();
    validate("softmax_xent_forward " + tag, gl, loss, 1e-5, 1e-5);
    validate("softmax_xent_backward " + tag, gg, dl, 1e-6, 1e-5);
    validate("argmax_rows " + tag, a.download(), am, 0.0, 0.0);
    check_deterministic("softmax_xent_forward " + tag, gl, out2.download());
    check_deterministic("softmax_xent_backward " + tag, gg, g2.download());

    // The mean of the batch's losses (the one-block kernel for small batches, per-row losses and
    // a reduction for large ones), and its backward: one upstream value for every row, times 1/n.
    double total = 0.0;
    for (int64_t i = 0; i < n; ++i) total += loss[i];
    DevBuf sum(1), sum2(1), gm(n * k);
    cu::softmax_xent_forward_sum(n, k, dL.get(), dLab.get(), float(scale), sum.get(), nullptr);
    DevBuf one(Vec{1.0f}), for_one(n * k), backward_one(n * k);
    cu::softmax_xent_forward_sum(n, k, dL.get(), dLab.get(), float(scale), sum2.get(), for_one.get());
    cu::softmax_xent_backward(n, k, dL.get(), dLab.get(), one.get(), false, float(scale), backward_one.get());
    check(same_bits(for_one.download(), backward_one.download()),
          "softmax_xent_forward_sum " + tag + ": the gradient for 1 is the backward's, bitwise");
    cu::softmax_xent_backward(n, k, dL.get(), dLab.get(), dDL.get(), false, float(scale), gm.get());
    const Vec gs = sum.download();
    validate("softmax_xent_forward_sum " + tag, gs, DVec{total * scale}, 1e-5, 1e-5);
    check_deterministic("softmax_xent_forward_sum " + tag, gs, sum2.download());
    validate("softmax_xent_backward shared dloss " + tag, gm.download(), dl_mean, 1e-6, 1e-5);
  }
  // Labels that are not class indices: the kernels must not read outside their row (the guarded
  // emulation faults if they do) and give NaN for exactly those rows, loss and gradient.
  for (int64_t k : {7, 2000}) {
    const std::vector<float> bad = {-1.0f, 1e9f, -1e9f, std::nanf(""), 0.5f, float(k), INFINITY};
    const int64_t n = static_cast<int64_t>(bad.size()) + 1;
    Vec logits = randn(n * k), labels(n), dloss = randn(n);
    for (size_t i = 0; i < bad.size(); ++i) labels[i] = bad[i];
    labels[n - 1] = float(k - 1);
    DevBuf dL(logits), dLab(labels), dDL(dloss), out(n), g(n * k);
    cu::softmax_xent_forward(n, k, dL.get(), dLab.get(), out.get());
    cu::softmax_xent_backward(n, k, dL.get(), dLab.get(), dDL.get(), true, 1.0f, g.get());
    const Vec l = out.download(), gg = g.download();
    bool as_promised = std::isfinite(l[n - 1]);
    for (int64_t i = 0; i < n; ++i) {
      as_promised = as_promised && (i == n - 1 || std::isnan(l[i]));
      for (int64_t j = 0; j < k; ++j) as_promised = as_promised && (i == n - 1 ? std::isfinite(gg[i * k + j]) : std::isnan(gg[i * k + j]));
    }
    check(as_promised, "softmax_xent labels out of range (k=" + std::to_string(k) + "): NaN rows, the valid row finite");
  }
}

static void test_sgd() {
  std::printf("\n== sgd_update\n");
  // mode 0: plain, 1: momentum (heavy ball), 2: Nesterov momentum.
  for (int64_t n : {1, 7, 4096, 100001}) {
    for (int mode = 0; mode < 3; ++mode) {
      const Vec p = randn(n), g = randn(n), v = randn(n);
      const bool with_momentum = mode > 0, nesterov = mode == 2;
      const float lr = 0.01f, mom = with_momentum ? 0.9f : 0.0f, wd = 1e-4f;
      DVec pref(n), vref(n);
      for (int64_t i = 0; i < n; ++i) {
        const double gg = double(g[i]) + wd * double(p[i]);
        if (with_momentum) {
          vref[i] = mom * double(v[i]) + gg;
          pref[i] = p[i] - lr * (nesterov ? gg + mom * vref[i] : vref[i]);
        } else {
          pref[i] = p[i] - lr * gg;
        }
      }
      DevBuf dP(p), dG(g), dV(v);
      cu::sgd_update(n, lr, mom, wd, nesterov, dP.get(), dG.get(), with_momentum ? dV.get() : nullptr);
      const std::string tag = "n=" + std::to_string(n) + (nesterov ? " nesterov" : with_momentum ? " momentum" : "");
      validate("sgd_update param " + tag, dP.download(), pref, 1e-6, 1e-6);
      if (with_momentum) validate("sgd_update velocity " + tag, dV.download(), vref, 1e-6, 1e-6);
    }
  }
  // sgd_update_many: every size above in one launch, each with its own decay, the rate on the device.
  std::printf("\n== sgd_update_many\n");
  for (int mode = 0; mode < 3; ++mode) {
    const bool with_momentum = mode > 0, nesterov = mode == 2;
    const float lr = 0.02f, mom = with_momentum ? 0.9f : 0.0f;
    const std::vector<int64_t> sizes = {1, 7, 4096, 100001};
    std::vector<Vec> p, g, v;
    std::vector<std::unique_ptr<DevBuf>> dP, dG, dV;
    kg::SgdGroup group{};
    group.momentum = mom;
    group.nesterov = nesterov;
    for (size_t k = 0; k < sizes.size(); ++k) {
      p.push_back(randn(sizes[k]));
      g.push_back(randn(sizes[k]));
      v.push_back(randn(sizes[k]));
      dP.push_back(std::make_unique<DevBuf>(p[k]));
      dG.push_back(std::make_unique<DevBuf>(g[k]));
      dV.push_back(std::make_unique<DevBuf>(v[k]));
      group.items[group.count++] = kg::SgdTensor{dP[k]->get(), dG[k]->get(), with_momentum ? dV[k]->get() : nullptr, sizes[k],
                                             1e-3f * static_cast<float>(k)};
    }
    DevBuf dLr(Vec{lr});
    cu::sgd_update_many(group, dLr.get());
    for (size_t k = 0; k < sizes.size(); ++k) {
      const double wd = group.items[k].weight_decay;
      DVec pref(sizes[k]), vref(sizes[k]);
      for (int64_t i = 0; i < sizes[k]; ++i) {
        const double gg = double(g[k][i]) + wd * double(p[k][i]);
        vref[i] = with_momentum ? mom * double(v[k][i]) + gg : gg;
        pref[i] = p[k][i] - lr * (nesterov ? gg + mom * vref[i] : vref[i]);
      }
      const std::string tag = "n=" + std::to_string(sizes[k]) + " mode " + std::to_string(mode);
      validate("sgd_update_many param " + tag, dP[k]->download(), pref, 1e-6, 1e-6);
      if (with_momentum) validate("sgd_update_many velocity " + tag, dV[k]->download(), vref, 1e-6, 1e-6);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Allocator and errors

static void test_allocator() {
  std::printf("\n== caching allocator\n");
  const std::vector<size_t> sizes = {4, 1000, 5000, 1 << 20, 777777, 3 << 20, 512, 513};
  auto cycle = [&] {
    std::vector<void*> ptrs;
    for (size_t b : sizes) ptrs.push_back(cu::alloc(b));
    for (void* p : ptrs) cu::release(p);
  };
  cycle();  // warm-up: the pool now holds one block of each class
  const cu::MemoryStats before = cu::memory_stats();
  for (int i = 0; i < 1000; ++i) cycle();
  const cu::MemoryStats after = cu::memory_stats();
  check(after.reserved == before.reserved && after.num_mallocs == before.num_mallocs &&
            after.allocated == before.allocated,
        "allocator: 1000 alloc/release cycles make no cudaMalloc and keep reserved flat (" +
            std::to_string(after.reserved) + " bytes, " + std::to_string(after.num_mallocs) + " mallocs)");
  {
    DevBuf a(1000);
    check(cu::memory_stats().allocated >= before.allocated + 4000, "allocator: allocated counts live blocks");
  }
  cu::empty_cache();
  check(cu::memory_stats().reserved == cu::memory_stats().allocated, "allocator: empty_cache returns every free block");

  bool threw = false;
  std::string msg;
  try {
    void* p = cu::alloc(size_t{1} << 50);  // 1 PiB
    cu::release(p);
  } catch (const cu::CudaError& e) {
    threw = true;
    msg = e.what();
  }
  std::printf("     out-of-memory message: %s\n", msg.c_str());
  check(threw && msg.find("out of memory") != std::string::npos && msg.find("1125899906842624") != std::string::npos,
        "allocator: a 1 PiB request throws CudaError naming the request");
  DevBuf after_oom(Vec{1.0f, 2.0f, 3.0f});
  cu::relu_forward(3, after_oom.get(), after_oom.get());
  const Vec v = after_oom.download();
  check(v[0] == 1.0f && v[2] == 3.0f, "allocator: the GPU is usable after an out-of-memory error");
}

// ---------------------------------------------------------------------------------------------
// Timings

static float time_ms(const std::function<void()>& f, int iters) {
  cudaStream_t s = cu::detail::stream();
  f();  // warm-up (and scratch memory into the cache)
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  cudaEventRecord(start, s);
  for (int i = 0; i < iters; ++i) f();
  cudaEventRecord(stop, s);
  cudaEventSynchronize(stop);
  float ms = 0.0f;
  cudaEventElapsedTime(&ms, start, stop);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms / iters;
}

static void bench() {
  std::printf("\n== timings (CUDA events on the library's stream)\n");
  for (const BnShape& s : std::vector<BnShape>{{64, 20, 26 * 26}, {64, 50, 9 * 9}, {64, 128, 1},
                                               {32, 256, 56 * 56}, {256, 64, 112 * 112}}) {
    const size_t total = s.n * s.c * s.l;
    DevBuf x(fast_uniform(total)), dy(fast_uniform(total)), y(total), dx(total), g(uniform(s.c, 0.5, 1.5)),
        b(randn(s.c));
    DevBuf mean(s.c), mean_lo(s.c), invstd(s.c), var(s.c), dg(s.c), db(s.c);
    const float fwd = time_ms([&] {
      cu::batchnorm_forward_train(s, x.get(), g.get(), b.get(), 1e-5f, y.get(), mean.get(), mean_lo.get(), invstd.get(),
                                  var.get());
    }, 20);
    const float bwd = time_ms([&] {
      cu::batchnorm_backward_train(s, x.get(), dy.get(), g.get(), mean.get(), mean_lo.get(), invstd.get(), dx.get(),
                                   dg.get(), db.get());
    }, 20);
    const double bytes = double(total) * sizeof(float);
    // "Effective" bandwidth as cuDNN/PyTorch benchmarks count it: forward reads x and writes y,
    // backward reads x and dy and writes dx (our kernels read x once more for the statistics).
    std::printf("bn %-22s forward %8.3f ms %7.1f GB/s   backward %8.3f ms %7.1f GB/s\n",
                shape_str({s.n, s.c, s.l}).c_str(), fwd, 2 * bytes / fwd / 1e6, bwd, 3 * bytes / bwd / 1e6);
  }
  for (int t = 0; t < 4; ++t) {
    const int64_t n = 4096;
    DevBuf A(fast_uniform(n * n)), B(fast_uniform(n * n)), C(n * n);
    const bool ta = t & 1, tb = t & 2;
    const float ms = time_ms([&] { cu::gemm(ta, tb, n, n, n, 1.0f, A.get(), B.get(), 0.0f, C.get()); }, 10);
    std::printf("gemm %s%s 4096^3  %8.3f ms %8.1f GFLOP/s\n", ta ? "T" : "N", tb ? "T" : "N", ms,
                2.0 * n * n * n / ms / 1e6);
  }
  {
    const ConvShape s = conv_shape(64, 20, 26, 26, 50, 5, 5, 1, 1, 0, 0);
    DevBuf x(randn(64 * 20 * 26 * 26)), w(randn(50 * 20 * 25)), y(64 * 50 * s.oh * s.ow), dw(50 * 20 * 25);
    const float f = time_ms([&] { cu::conv2d_forward(s, x.get(), w.get(), nullptr, y.get()); }, 20);
    const float bw = time_ms([&] { cu::conv2d_backward_weight(s, x.get(), y.get(), dw.get(), nullptr); }, 20);
    std::printf("conv2d x(64,20,26,26) w(50,20,5,5): forward %.3f ms, backward weight %.3f ms\n", f, bw);
  }
}

// The op family named by `--only <family>`, or "" (every family).
static std::string only_family(int argc, char** argv) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--only") return argv[i + 1];
  return "";
}

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  const cu::DeviceQuery query = cu::query_devices();
  const auto& devs = query.devices;
  if (devs.empty()) {
    // On a GPU machine (KG_REQUIRE_CUDA=1) no device is a failure, not "nothing to check".
    const char* require = std::getenv("KG_REQUIRE_CUDA");
    const bool required = require && std::string(require) == "1";
    std::printf("%sno CUDA device: %s\n", required ? "FAIL: KG_REQUIRE_CUDA=1 but " : "",
                query.error.empty() ? "cudaGetDeviceCount found none" : query.error.c_str());
    return required ? 3 : 0;
  }
  std::printf("device 0: %s, %.1f GiB, compute capability %d.%d\n", devs[0].name.c_str(),
              devs[0].total_memory / 1073741824.0, devs[0].major, devs[0].minor);
  try {
    const std::string only = only_family(argc, argv);
    const auto wanted = [&](const char* name) { return only.empty() || only == name; };
    if (wanted("gemm")) {
      test_gemm();
      test_linear();
    }
    if (wanted("conv")) test_conv();
    if (wanted("pool")) test_pool();
    if (wanted("maxpool")) test_maxpool();
    if (wanted("dropout")) test_dropout();
    if (wanted("bn")) test_batchnorm();
    if (wanted("norms")) test_norms();
    if (wanted("elementwise")) test_elementwise();
    if (wanted("reduce")) test_reduce();
    if (wanted("loss")) test_loss();
    if (wanted("sgd")) test_sgd();
#ifndef KG_EMU_GUARD  // the emulation's bounds-checking build replaces the caching allocator
    if (wanted("allocator")) test_allocator();
#endif
    if (!quick && only.empty()) bench();
  } catch (const std::exception& e) {
    std::printf("FAIL: exception: %s\n", e.what());
    return 2;
  }
  const cu::MemoryStats m = cu::memory_stats();
  std::printf("\nmemory: %zu bytes allocated at exit, %zu reserved, peak %zu, %zu cudaMalloc calls\n", m.allocated,
              m.reserved, m.peak_reserved, m.num_mallocs);
  std::printf("%d passed, %d failed\n", g_checks - g_failures, g_failures);
  return g_failures ? 1 : 0;
}
