// Bindings of GEMM, the dense layer, convolution and pooling.
#include <string>

#include "addon.h"
#include "../cpu/inference_blocks.h"
#include "args.h"
#include "kg/ops.h"
#include "pool_shape.h"

namespace kg {
namespace {

// gemm(transA, transB, m, n, k, alpha, A, B, beta, C)
Napi::Value gemm(const Napi::CallbackInfo& info) {
  Args a(info, "gemm", 10);
  bool ta = a.boolean(0, "transA"), tb = a.boolean(1, "transB");
  int64_t m = a.i64(2, "m"), n = a.i64(3, "n"), k = a.i64(4, "k");
  float alpha = a.f32(5, "alpha");
  Storage &A = a.storage(6, "A"), &B = a.storage(7, "B");
  float beta = a.f32(8, "beta");
  Storage& C = a.storage(9, "C");
  a.expect_numel(A, {m, k}, "A");
  a.expect_numel(B, {k, n}, "B");
  a.expect_numel(C, {m, n}, "C");
  Device d = a.same_device({&A, &B, &C});
  if (C.numel() == 0) return info.Env().Undefined();
  KG_RUN(a, d, gemm(ta, tb, m, n, k, alpha, A.data("A"), B.data("B"), beta, C.data("C")));
  return info.Env().Undefined();
}

// linearForward(m, n, k, x, w, bias | null, y): y (m, n) = x (m, k) w^T + bias, w stored (n, k).
Napi::Value linear_forward(const Napi::CallbackInfo& info) {
  Args a(info, "linearForward", 7);
  const int64_t m = a.i64(0, "m"), n = a.i64(1, "n"), k = a.i64(2, "k");
  Storage &x = a.storage(3, "x"), &w = a.storage(4, "w");
  Storage* b = a.optional_storage(5, "bias");
  Storage& y = a.storage(6, "y");
  a.expect_numel(x, {m, k}, "x");
  a.expect_numel(w, {n, k}, "w");
  if (b) a.expect_numel(*b, n, "bias");
  a.expect_numel(y, {m, n}, "y");
  Device d = a.same_device({&x, &w, b, &y});
  if (y.numel() == 0) return info.Env().Undefined();
  KG_RUN(a, d, linear_forward(m, n, k, x.data("x"), w.data("w"), b ? b->data("bias") : nullptr, y.data("y")));
  return info.Env().Undefined();
}

// linearBackwardWeight(m, n, k, dy, x, dw, db | null): dw (n, k) = dy^T (n, m) x (m, k), and db
// (n) = the column sums of dy when given (inside the same GEMM on CUDA).
Napi::Value linear_backward_weight(const Napi::CallbackInfo& info) {
  Args a(info, "linearBackwardWeight", 7);
  const int64_t m = a.i64(0, "m"), n = a.i64(1, "n"), k = a.i64(2, "k");
  Storage &dy = a.storage(3, "dy"), &x = a.storage(4, "x"), &dw = a.storage(5, "dw");
  Storage* db = a.optional_storage(6, "db");
  a.expect_numel(dy, {m, n}, "dy");
  a.expect_numel(x, {m, k}, "x");
  a.expect_numel(dw, {n, k}, "dw");
  if (db) a.expect_numel(*db, n, "db");
  Device d = a.same_device({&dy, &x, &dw, db});
  if (n == 0) return info.Env().Undefined();
  KG_RUN(a, d, linear_backward_weight(m, n, k, dy.data("dy"), x.data("x"), dw.data("dw"), db ? db->data("db") : nullptr));
  return info.Env().Undefined();
}

// [n, c, h, w, k, kh, kw, sh, sw, ph, pw, groups] -> ConvShape with the output size.
ConvShape conv_shape(const Args& a, size_t i) {
  auto v = a.ints(i, "shape", 12);
  ConvShape s{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], 0, 0, v[11]};
  if (s.kh < 1 || s.kw < 1 || s.sh < 1 || s.sw < 1) {
    throw Napi::RangeError::New(a.env(), a.prefix() + "kernel size and stride must be at least 1");
  }
  if (s.groups < 1 || s.c % s.groups != 0 || s.k % s.groups != 0) {
    throw Napi::RangeError::New(a.env(), a.prefix() + "groups (" + std::to_string(s.groups) +
                                             ") must be at least 1 and divide both the input channels (" +
                                             std::to_string(s.c) + ") and the output channels (" +
                                             std::to_string(s.k) + ")");
  }
  if (s.h + 2 * s.ph < s.kh || s.w + 2 * s.pw < s.kw) {
    throw Napi::RangeError::New(a.env(), a.prefix() + "the kernel is larger than the padded input");
  }
  // Sizes are at most 2^53 (Args::kMaxSize), so these sums stay far inside int64.
  s.oh = (s.h + 2 * s.ph - s.kh) / s.sh + 1;
  s.ow = (s.w + 2 * s.pw - s.kw) / s.sw + 1;
  // The kernels unfold a kernel window per output pixel (im2col); refuse what cannot be indexed.
  a.numel({s.c, s.kh, s.kw, s.oh, s.ow}, "the unfolded input");
  return s;
}
int64_t x_numel(const Args& a, const ConvShape& s) { return a.numel({s.n, s.c, s.h, s.w}, "x"); }
int64_t w_numel(const Args& a, const ConvShape& s) { return a.numel({s.k, s.c / s.groups, s.kh, s.kw}, "w"); }
int64_t y_numel(const Args& a, const ConvShape& s) { return a.numel({s.n, s.k, s.oh, s.ow}, "y"); }

// conv2dForward(shape, x, w, bias | null, y)
Napi::Value conv2d_forward(const Napi::CallbackInfo& info) {
  Args a(info, "conv2dForward", 5);
  ConvShape s = conv_shape(a, 0);
  Storage &x = a.storage(1, "x"), &w = a.storage(2, "w");
  Storage* b = a.optional_storage(3, "bias");
  Storage& y = a.storage(4, "y");
  a.expect_numel(x, x_numel(a, s), "x");
  a.expect_numel(w, w_numel(a, s), "w");
  if (b) a.expect_numel(*b, s.k, "bias");
  a.expect_numel(y, y_numel(a, s), "y");
  Device d = a.same_device({&x, &w, b, &y});
  if (y.numel() == 0) return info.Env().Undefined();
  KG_RUN(a, d, conv2d_forward(s, x.data("x"), w.data("w"), b ? b->data("bias") : nullptr, y.data("y")));
  return info.Env().Undefined();
}

// conv2dBackwardData(shape, dy, w, dx)
Napi::Value conv2d_backward_data(const Napi::CallbackInfo& info) {
  Args a(info, "conv2dBackwardData", 4);
  ConvShape s = conv_shape(a, 0);
  Storage &dy = a.storage(1, "dy"), &w = a.storage(2, "w"), &dx = a.storage(3, "dx");
  a.expect_numel(dy, y_numel(a, s), "dy");
  a.expect_numel(w, w_numel(a, s), "w");
  a.expect_numel(dx, x_numel(a, s), "dx");
  Device d = a.same_device({&dy, &w, &dx});
  if (dx.numel() == 0) return info.Env().Undefined();
  KG_RUN(a, d, conv2d_backward_data(s, dy.data("dy"), w.data("w"), dx.data("dx")));
  return info.Env().Undefined();
}

// conv2dBackwardWeight(shape, x, dy, dw, db | null): db, when given, is the bias gradient (inside
// the same GEMM on CUDA).
Napi::Value conv2d_backward_weight(const Napi::CallbackInfo& info) {
  Args a(info, "conv2dBackwardWeight", 5);
  ConvShape s = conv_shape(a, 0);
  Storage &x = a.storage(1, "x"), &dy = a.storage(2, "dy"), &dw = a.storage(3, "dw");
  Storage* db = a.optional_storage(4, "db");
  a.expect_numel(x, x_numel(a, s), "x");
  a.expect_numel(dy, y_numel(a, s), "dy");
  a.expect_numel(dw, w_numel(a, s), "dw");
  if (db) a.expect_numel(*db, s.k, "db");
  Device d = a.same_device({&x, &dy, &dw, db});
  if (dw.numel() == 0 && (!db || db->numel() == 0)) return info.Env().Undefined();
  // An empty batch has zero gradients; the kernels would still size scratch for its pixels.
  if (dy.numel() == 0) {
    KG_RUN(a, d, fill(dw.numel(), 0.0f, dw.data("dw")));
    if (db) KG_RUN(a, d, fill(db->numel(), 0.0f, db->data("db")));
    return info.Env().Undefined();
  }
  KG_RUN(a, d, conv2d_backward_weight(s, x.data("x"), dy.data("dy"), dw.data("dw"), db ? db->data("db") : nullptr));
  return info.Env().Undefined();
}

// conv2dBackwardBias(shape, dy, db)
Napi::Value conv2d_backward_bias(const Napi::CallbackInfo& info) {
  Args a(info, "conv2dBackwardBias", 3);
  ConvShape s = conv_shape(a, 0);
  Storage &dy = a.storage(1, "dy"), &db = a.storage(2, "db");
  a.expect_numel(dy, y_numel(a, s), "dy");
  a.expect_numel(db, s.k, "db");
  Device d = a.same_device({&dy, &db});
  if (db.numel() == 0) return info.Env().Undefined();
  if (dy.numel() == 0) {
    KG_RUN(a, d, fill(db.numel(), 0.0f, db.data("db")));
    return info.Env().Undefined();
  }
  KG_RUN(a, d, conv2d_backward_bias(s, dy.data("dy"), db.data("db")));
  return info.Env().Undefined();
}

// avgPool2dForward(shape, x, y)
Napi::Value avgpool2d_forward(const Napi::CallbackInfo& info) {
  Args a(info, "avgPool2dForward", 3);
  PoolShape s = pool_shape(a, 0);
  Storage &x = a.storage(1, "x"), &y = a.storage(2, "y");
  a.expect_numel(x, {s.n, s.c, s.h, s.w}, "x");
  a.expect_numel(y, {s.n, s.c, s.oh, s.ow}, "y");
  Device d = a.same_device({&x, &y});
  if (y.numel() == 0) return info.Env().Undefined();
  KG_RUN(a, d, avgpool2d_forward(s, x.data("x"), y.data("y")));
  return info.Env().Undefined();
}

// avgPool2dBackward(shape, dy, dx)
Napi::Value avgpool2d_backward(const Napi::CallbackInfo& info) {
  Args a(info, "avgPool2dBackward", 3);
  PoolShape s = pool_shape(a, 0);
  Storage &dy = a.storage(1, "dy"), &dx = a.storage(2, "dx");
  a.expect_numel(dy, {s.n, s.c, s.oh, s.ow}, "dy");
  a.expect_numel(dx, {s.n, s.c, s.h, s.w}, "dx");
  Device d = a.same_device({&dy, &dx});
  if (dx.numel() == 0) return info.Env().Undefined();
  KG_RUN(a, d, avgpool2d_backward(s, dy.data("dy"), dx.data("dx")));
  return info.Env().Undefined();
}

// The batch norm arguments of an inference block, gamma, beta, mean and var at `first` ..
// first + 3 and eps after them: all four storages of `channels` elements, or all four null (no
// batch norm: returns false).
bool block_batchnorm(const Args& a, size_t first, int64_t channels, Storage* bn[4], float& eps) {
  static const char* const names[4] = {"gamma", "beta", "mean", "var"};
  for (int i = 0; i < 4; ++i) bn[i] = a.optional_storage(first + size_t(i), names[i]);
  const bool present = bn[0] != nullptr;
  for (int i = 0; i < 4; ++i) {
    if ((bn[i] != nullptr) != present) {
      throw Napi::TypeError::New(a.env(), a.prefix() + "gamma, beta, mean and var come all four or not at all");
    }
    if (bn[i]) a.expect_numel(*bn[i], channels, names[i]);
  }
  eps = a.f32(first + 4, "eps");
  if (eps < 0.0f) throw Napi::RangeError::New(a.env(), a.prefix() + "eps must be >= 0");
  return present;
}

BnInference block_stats(Storage* const bn[4], float eps) {
  return {bn[0]->data("gamma"), bn[1]->data("beta"), bn[2]->data("mean"), bn[3]->data("var"), eps};
}

void expect_cpu(const Args& a, Device d) {
  if (d != Device::Cpu) {
    throw Napi::Error::New(a.env(), a.prefix() + "runs on the CPU only; on CUDA the block runs as its separate ops");
  }
}

// convBlockInfer(convShape, pool [kh, kw, sh, sw] | null, x, w, bias | null,
//                gamma | null, beta | null, mean | null, var | null, eps, relu, y)
// conv2d -> batch norm with fixed statistics (the four per-channel storages, all or none) ->
// ReLU when relu -> average pooling when pool; y holds the block's output. CPU only.
Napi::Value conv_block_infer(const Napi::CallbackInfo& info) {
  Args a(info, "convBlockInfer", 12);
  ConvShape s = conv_shape(a, 0);
  PoolShape pool{};
  const bool pooled = !(info[1].IsNull() || info[1].IsUndefined());
  if (pooled) {
    auto v = a.ints(1, "pool", 4);
    pool = PoolShape{s.n, s.k, s.oh, s.ow, v[0], v[1], v[2], v[3], 0, 0};
    if (pool.kh < 1 || pool.kw < 1 || pool.sh < 1 || pool.sw < 1) {
      throw Napi::RangeError::New(a.env(), a.prefix() + "pooling kernel size and stride must be at least 1");
    }
    if (s.oh < pool.kh || s.ow < pool.kw) {
      throw Napi::RangeError::New(a.env(), a.prefix() + "the pooling window is larger than the convolution's output");
    }
    pool.oh = (s.oh - pool.kh) / pool.sh + 1;
    pool.ow = (s.ow - pool.kw) / pool.sw + 1;
  }
  Storage &x = a.storage(2, "x"), &w = a.storage(3, "w");
  Storage* b = a.optional_storage(4, "bias");
  Storage* bn[4];
  float eps = 0.0f;
  const bool normalized = block_batchnorm(a, 5, s.k, bn, eps);
  const bool relu = a.boolean(10, "relu");
  Storage& y = a.storage(11, "y");
  a.expect_numel(x, x_numel(a, s), "x");
  a.expect_numel(w, w_numel(a, s), "w");
  if (b) a.expect_numel(*b, s.k, "bias");
  if (pooled) a.expect_numel(y, {s.n, s.k, pool.oh, pool.ow}, "y");
  else a.expect_numel(y, y_numel(a, s), "y");
  expect_cpu(a, a.same_device({&x, &w, b, bn[0], bn[1], bn[2], bn[3], &y}));
  if (y.numel() == 0) return info.Env().Undefined();
  const BnInference stats = normalized ? block_stats(bn, eps) : BnInference{};
  const ConvBlock block{s, normalized ? &stats : nullptr, relu, pooled ? &pool : nullptr};
  KG_RUN_CPU(a, conv_block_infer(block, x.data("x"), w.data("w"), b ? b->data("bias") : nullptr, y.data("y")));
  return info.Env().Undefined();
}

// denseBlockInfer(m, n, k, x, w, bias | null, gamma | null, beta | null, mean | null, var | null, eps, relu, y)
// y (m, n) = x (m, k) w^T + bias -> batch norm with fixed statistics -> ReLU when relu. CPU only.
Napi::Value dense_block_infer(const Napi::CallbackInfo& info) {
  Args a(info, "denseBlockInfer", 13);
  const int64_t m = a.i64(0, "m"), n = a.i64(1, "n"), k = a.i64(2, "k");
  Storage &x = a.storage(3, "x"), &w = a.storage(4, "w");
  Storage* b = a.optional_storage(5, "bias");
  Storage* bn[4];
  float eps = 0.0f;
  const bool normalized = block_batchnorm(a, 6, n, bn, eps);
  const bool relu = a.boolean(11, "relu");
  Storage& y = a.storage(12, "y");
  a.expect_numel(x, {m, k}, "x");
  a.expect_numel(w, {n, k}, "w");
  if (b) a.expect_numel(*b, n, "bias");
  a.expect_numel(y, {m, n}, "y");
  expect_cpu(a, a.same_device({&x, &w, b, bn[0], bn[1], bn[2], bn[3], &y}));
  if (y.numel() == 0) return info.Env().Undefined();
  const BnInference stats = normalized ? block_stats(bn, eps) : BnInference{};
  KG_RUN_CPU(a, dense_block_infer(m, n, k, x.data("x"), w.data("w"), b ? b->data("bias") : nullptr,
                                  normalized ? &stats : nullptr, relu, y.data("y")));
  return info.Env().Undefined();
}
}  // namespace

void register_linalg(Napi::Env env, Napi::Object exports) {
  exports.Set("gemm", Napi::Function::New<gemm>(env, "gemm"));
  exports.Set("linearForward", Napi::Function::New<linear_forward>(env, "linearForward"));
  exports.Set("linearBackwardWeight", Napi::Function::New<linear_backward_weight>(env, "linearBackwardWeight"));
  exports.Set("conv2dForward", Napi::Function::New<conv2d_forward>(env, "conv2dForward"));
  exports.Set("conv2dBackwardData", Napi::Function::New<conv2d_backward_data>(env, "conv2dBackwardData"));
  exports.Set("conv2dBackwardWeight", Napi::Function::New<conv2d_backward_weight>(env, "conv2dBackwardWeight"));
  exports.Set("conv2dBackwardBias", Napi::Function::New<conv2d_backward_bias>(env, "conv2dBackwardBias"));
  exports.Set("avgPool2dForward", Napi::Function::New<avgpool2d_forward>(env, "avgPool2dForward"));
  exports.Set("avgPool2dBackward", Napi::Function::New<avgpool2d_backward>(env, "avgPool2dBackward"));
  exports.Set("convBlockInfer", Napi::Function::New<conv_block_infer>(env, "convBlockInfer"));
  exports.Set("denseBlockInfer", Napi::Function::New<dense_block_infer>(env, "denseBlockInfer"));
}

}  // namespace kg
