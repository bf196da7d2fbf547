// Micro-benchmarks of the CPU kernels: GFLOP/s of GEMM and the convolutions, and the time of a
// whole training step / inference pass of the tutorial network (lib/models/bn-cnn.ts, batch 64:
// conv 1->20 3x3, BN, ReLU, avgpool 2 | conv 20->50 5x5, BN, ReLU, avgpool 2 | fc 800->128, BN,
// ReLU | fc 128->10 | softmax cross-entropy), summed from its kernels (the autograd and JS
// overhead of a real step is not included). Not part of the addon. Build and run from the
// repository root:
//
//   g++ -O3 -std=gnu++17 -pthread -Inative/include native/dev/cpu/bench.cpp native/cpu/*.cpp \
//       -o build/kg_cpu_bench && build/kg_cpu_bench [threads]
//
// Each figure is the best of several timed repetitions (the least disturbed by other processes).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "kg/ops.h"
#include "../../cpu/thread_pool.h"

namespace {

using kg::ConvShape;
using kg::PoolShape;
using kg::BnShape;
namespace cpu = kg::cpu;

std::vector<float> random_vector(size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

// Best time in seconds of f over repetitions worth about `budget` seconds in total.
double best_time(const std::function<void()>& f, double budget = 0.4) {
  using clock = std::chrono::steady_clock;
  f();  // warm-up: page faults, scratch buffers, thread pool
  double best = 1e30, spent = 0;
  for (int rep = 0; rep < 3 || (spent < budget && rep < 1000); ++rep) {
    auto t0 = clock::now();
    f();
    double s = std::chrono::duration<double>(clock::now() - t0).count();
    best = std::min(best, s);
    spent += s;
  }
  return best;
}

void report(const std::string& name, double seconds, double flops) {
  if (flops > 0) {
    std::printf("  %-44s %9.3f ms  %7.1f GFLOP/s\n", name.c_str(), seconds * 1e3, flops / seconds * 1e-9);
  } else {
    std::printf("  %-44s %9.3f ms\n", name.c_str(), seconds * 1e3);
  }
}

void bench_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k) {
  auto A = random_vector(size_t(m * k), 1), B = random_vector(size_t(k * n), 2);
  std::vector<float> C(m * n);
  double s = best_time([&] { cpu::gemm(ta, tb, m, n, k, 1.0f, A.data(), B.data(), 0.0f, C.data()); });
  char name[96];
  std::snprintf(name, sizeof name, "gemm %s%s m=%ld n=%ld k=%ld", ta ? "T" : "N", tb ? "T" : "N", long(m), long(n),
                long(k));
  report(name, s, 2.0 * double(m) * double(n) * double(k));
}

ConvShape conv_shape(int64_t n, int64_t c, int64_t h, int64_t w, int64_t k, int64_t kh, int64_t kw,
                     int64_t groups = 1) {
  ConvShape s{n, c, h, w, k, kh, kw, 1, 1, 0, 0, 0, 0, groups};
  s.oh = h - kh + 1;
  s.ow = w - kw + 1;
  return s;
}

// Times the four convolution kernels; returns {forward, backward without data grad, data grad}.
struct ConvTimes {
  double fwd, bwd_weight_bias, bwd_data;
};

ConvTimes bench_conv(const char* label, const ConvShape& s) {
  const int64_t cg = s.c / s.groups;  // input channels per filter
  const int64_t xn = s.n * s.c * s.h * s.w, wn = s.k * cg * s.kh * s.kw, yn = s.n * s.k * s.oh * s.ow;
  auto x = random_vector(size_t(xn), 3), w = random_vector(size_t(wn), 4), b = random_vector(size_t(s.k), 5);
  auto dy = random_vector(size_t(yn), 6);
  std::vector<float> y(yn), dx(xn), dw(wn), db(s.k);
  const double flops = 2.0 * double(yn) * double(cg * s.kh * s.kw);
  ConvTimes t{};
  t.fwd = best_time([&] { cpu::conv2d_forward(s, x.data(), w.data(), b.data(), y.data()); });
  t.bwd_data = best_time([&] { cpu::conv2d_backward_data(s, dy.data(), w.data(), dx.data()); });
  double tw = best_time([&] { cpu::conv2d_backward_weight(s, x.data(), dy.data(), dw.data()); });
  double tb = best_time([&] { cpu::conv2d_backward_bias(s, dy.data(), db.data()); });
  t.bwd_weight_bias = tw + tb;
  std::printf(" %s\n", label);
  report("forward", t.fwd, flops);
  report("backward data", t.bwd_data, flops);
  report("backward weight", tw, flops);
  report("backward bias", tb, 0);
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) kg::cpu::set_pool_threads(std::atoi(argv[1]));
  std::printf("threads: %d\n", kg::cpu::pool_threads());

  std::printf("GEMM\n");
  bench_gemm(false, false, 1024, 1024, 1024);
  bench_gemm(false, false, 512, 512, 512);
  bench_gemm(false, true, 64, 128, 800);   // tutorial fc1: y = x (64 x 800) W^T, W is (128 x 800)
  bench_gemm(true, false, 128, 800, 64);   // its weight gradient dy^T x
  bench_gemm(false, false, 64, 800, 128);  // its input gradient dy W
  bench_gemm(true, true, 333, 517, 129);

  std::printf("Convolutions of the tutorial network, batch 64\n");
  const ConvShape c1 = conv_shape(64, 1, 28, 28, 20, 3, 3);    // -> 64 x 20 x 26 x 26
  const ConvShape c2 = conv_shape(64, 20, 13, 13, 50, 5, 5);   // -> 64 x 50 x 9 x 9
  const ConvTimes t1 = bench_conv("conv1 x 64x1x28x28, w 20x1x3x3", c1);
  const ConvTimes t2 = bench_conv("conv2 x 64x20x13x13, w 50x20x5x5", c2);
  std::printf("Grouped convolutions, batch 64 (not part of the network)\n");
  bench_conv("groups 4: x 64x32x13x13, w 32x8x3x3", conv_shape(64, 32, 13, 13, 32, 3, 3, 4));
  bench_conv("depthwise: x 64x32x13x13, w 32x1x3x3", conv_shape(64, 32, 13, 13, 32, 3, 3, 32));

  // The rest of the network: BN + ReLU + 2x2 average pooling after each conv, then
  // fc 800 -> 128, BN, ReLU, fc 128 -> 10 and the loss.
  std::printf("Other kernels at the network's shapes\n");
  double other_fwd = 0, other_bwd = 0, infer = 0;
  for (const BnShape& s : {BnShape{64, 20, 676}, BnShape{64, 50, 81}, BnShape{64, 128, 1}}) {
    const int64_t n = s.n * s.c * s.l;
    auto x = random_vector(size_t(n), 7), dy = random_vector(size_t(n), 8), g = random_vector(size_t(s.c), 9);
    std::vector<float> y(n), dx(n), mean(s.c), mean_lo(s.c), inv(s.c), var(size_t(s.c), 1.0f);
    std::vector<float> dg(s.c), dbeta(s.c), relu_mask(n);
    double f = best_time([&] {
      cpu::batchnorm_forward_train(s, x.data(), g.data(), g.data(), 1e-5f, y.data(), mean.data(), mean_lo.data(), inv.data(), var.data());
    });
    double b = best_time([&] {
      cpu::batchnorm_backward_train(s, x.data(), dy.data(), g.data(), mean.data(), mean_lo.data(), inv.data(), dx.data(), dg.data(),
                                    dbeta.data());
    });
    double fi = best_time([&] {
      cpu::batchnorm_forward_infer(s, x.data(), g.data(), g.data(), mean.data(), var.data(), 1e-5f, y.data());
    });
    double rf = best_time([&] { cpu::relu_forward(n, x.data(), y.data()); });
    double rb = best_time([&] { cpu::relu_backward(n, x.data(), dy.data(), dx.data()); });
    char name[96];
    std::snprintf(name, sizeof name, "batchnorm (%ld, %ld, %ld) fwd / bwd / infer", long(s.n), long(s.c), long(s.l));
    std::printf("  %-44s %9.3f / %.3f / %.3f ms\n", name, f * 1e3, b * 1e3, fi * 1e3);
    std::snprintf(name, sizeof name, "relu %ld fwd / bwd", long(n));
    std::printf("  %-44s %9.3f / %.3f ms\n", name, rf * 1e3, rb * 1e3);
    other_fwd += f + rf;
    other_bwd += b + rb;
    infer += fi + rf;
  }
  for (const PoolShape& s : {PoolShape{64, 20, 26, 26, 2, 2, 2, 2, 13, 13}, PoolShape{64, 50, 9, 9, 2, 2, 2, 2, 4, 4}}) {
    auto x = random_vector(size_t(s.n * s.c * s.h * s.w), 10), dy = random_vector(size_t(s.n * s.c * s.oh * s.ow), 11);
    std::vector<float> y(dy.size()), dx(x.size());
    double f = best_time([&] { cpu::avgpool2d_forward(s, x.data(), y.data()); });
    double b = best_time([&] { cpu::avgpool2d_backward(s, dy.data(), dx.data()); });
    char name[96];
    std::snprintf(name, sizeof name, "avgpool 2x2 (%ld, %ld, %ld, %ld) fwd / bwd", long(s.n), long(s.c), long(s.h),
                  long(s.w));
    std::printf("  %-44s %9.3f / %.3f ms\n", name, f * 1e3, b * 1e3);
    other_fwd += f;
    other_bwd += b;
    infer += f;
  }
  {  // fully connected layers: forward, weight and input gradients, bias gradient
    auto x = random_vector(64 * 800, 12), w1 = random_vector(800 * 128, 13), w2 = random_vector(128 * 10, 14);
    std::vector<float> h(64 * 128), o(64 * 10), dw1(800 * 128), dx(64 * 800), dh(64 * 128), db(128), dw2(128 * 10);
    std::vector<float> labels(64), loss(64), dloss(64, 1.0f / 64), dlogits(64 * 10);
    for (int i = 0; i < 64; ++i) labels[size_t(i)] = float(i % 10);
    // Weights are (out, in) and y = x W^T, as in lib/nn.
    double f = best_time([&] {
      cpu::gemm(false, true, 64, 128, 800, 1, x.data(), w1.data(), 0, h.data());
      cpu::gemm(false, true, 64, 10, 128, 1, h.data(), w2.data(), 0, o.data());
      cpu::softmax_xent_forward(64, 10, o.data(), labels.data(), loss.data());
    });
    double b = best_time([&] {
      cpu::softmax_xent_backward(64, 10, o.data(), labels.data(), dloss.data(), true, 1.0f, dlogits.data());
      cpu::gemm(true, false, 10, 128, 64, 1, dlogits.data(), h.data(), 0, dw2.data());
      cpu::gemm(false, false, 64, 128, 10, 1, dlogits.data(), w2.data(), 0, dh.data());
      cpu::reduce_sum(1, 64, 128, 1, dh.data(), db.data());
      cpu::gemm(true, false, 128, 800, 64, 1, dh.data(), x.data(), 0, dw1.data());
      cpu::gemm(false, false, 64, 800, 128, 1, dh.data(), w1.data(), 0, dx.data());
    });
    report("fc layers + loss forward", f, 0);
    report("fc layers + loss backward", b, 0);
    other_fwd += f;
    other_bwd += b;
    infer += f;
  }

  // conv1's input needs no gradient, so its backward-data is not part of a step.
  const double step = t1.fwd + t2.fwd + other_fwd + t1.bwd_weight_bias + t2.bwd_weight_bias + t2.bwd_data + other_bwd;
  const double inference = t1.fwd + t2.fwd + infer;
  std::printf("Tutorial network, batch 64 (sum of kernel times)\n");
  std::printf("  training step (fwd + bwd)                    %9.3f ms\n", step * 1e3);
  std::printf("  inference                                    %9.3f ms  = %.0f images/s\n", inference * 1e3,
              64.0 / inference);
  return 0;
}
