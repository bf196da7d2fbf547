// Bindings of the elementwise ops, reductions, the loss and argmax.
#include <cmath>
#include <string>

#include "addon.h"
#include "args.h"
#include "kg/ops.h"

namespace kg {
namespace {

// binary(op, shape, aStrides, bStrides, a, b, out): out has the product of shape elements.
Napi::Value binary(const Napi::CallbackInfo& info) {
  Args a(info, "binary", 7);
  int64_t op = a.i64(0, "op");
  if (op > 3) throw Napi::RangeError::New(a.env(), a.prefix() + "unknown op " + std::to_string(op));
  if (!info[1].IsArray()) throw Napi::TypeError::New(a.env(), a.prefix() + "shape must be an array");
  size_t ndim = info[1].As<Napi::Array>().Length();
  if (ndim > static_cast<size_t>(kMaxDims)) {
    throw Napi::RangeError::New(a.env(), a.prefix() + "at most " + std::to_string(kMaxDims) + " dimensions");
  }
  auto shape = a.ints(1, "shape", ndim), as = a.ints(2, "aStrides", ndim), bs = a.ints(3, "bStrides", ndim);
  Storage &A = a.storage(4, "a"), &B = a.storage(5, "b"), &out = a.storage(6, "out");
  BroadcastShape s{};
  s.ndim = static_cast<int>(ndim);
  int64_t numel = 1, a_extent = 1, b_extent = 1;  // one past the largest index read from a and b
  for (size_t i = 0; i < ndim; ++i) {
    s.shape[i] = shape[i];
    s.astride[i] = as[i];
    s.bstride[i] = bs[i];
    numel = a.numel({numel, shape[i]}, "shape");
  }
  if (numel > 0) {
    for (size_t i = 0; i < ndim; ++i) {
      a_extent = a.extent(a_extent, shape[i] - 1, as[i], "aStrides");
      b_extent = a.extent(b_extent, shape[i] - 1, bs[i], "bStrides");
    }
  }
  a.expect_numel(out, numel, "out");
  if (numel > 0 && (a_extent > A.numel() || b_extent > B.numel())) {
    throw Napi::RangeError::New(a.env(), a.prefix() + "the strides reach past the end of an operand");
  }
  Device d = a.same_device({&A, &B, &out});
  if (numel == 0) return info.Env().Undefined();
  KG_RUN(a, d, binary(static_cast<BinaryOp>(op), s, A.data("a"), B.data("b"), out.data("out")));
  return info.Env().Undefined();
}

// fill(out, value)
Napi::Value fill(const Napi::CallbackInfo& info) {
  Args a(info, "fill", 2);
  Storage& out = a.storage(0, "out");
  float v = a.f32(1, "value");
  KG_RUN(a, out.device(), fill(out.numel(), v, out.data("out")));
  return info.Env().Undefined();
}

// copy(x, out): same device, same size.
Napi::Value copy(const Napi::CallbackInfo& info) {
  Args a(info, "copy", 2);
  Storage &x = a.storage(0, "x"), &out = a.storage(1, "out");
  a.expect_numel(out, x.numel(), "out");
  Device d = a.same_device({&x, &out});
  KG_RUN(a, d, copy(x.numel(), x.data("x"), out.data("out")));
  return info.Env().Undefined();
}

// axpby(alpha, x, beta, y): y = alpha * x + beta * y
Napi::Value axpby(const Napi::CallbackInfo& info) {
  Args a(info, "axpby", 4);
  float alpha = a.f32(0, "alpha");
  Storage& x = a.storage(1, "x");
  float beta = a.f32(2, "beta");
  Storage& y = a.storage(3, "y");
  a.expect_numel(y, x.numel(), "y");
  Device d = a.same_device({&x, &y});
  KG_RUN(a, d, axpby(x.numel(), alpha, x.data("x"), beta, y.data("y")));
  return info.Env().Undefined();
}

// reluForward(x, y)
Napi::Value relu_forward(const Napi::CallbackInfo& info) {
  Args a(info, "reluForward", 2);
  Storage &x = a.storage(0, "x"), &y = a.storage(1, "y");
  a.expect_numel(y, x.numel(), "y");
  Device d = a.same_device({&x, &y});
  KG_RUN(a, d, relu_forward(x.numel(), x.data("x"), y.data("y")));
  return info.Env().Undefined();
}

// reluBackward(x, dy, dx)
Napi::Value relu_backward(const Napi::CallbackInfo& info) {
  Args a(info, "reluBackward", 3);
  Storage &x = a.storage(0, "x"), &dy = a.storage(1, "dy"), &dx = a.storage(2, "dx");
  a.expect_numel(dy, x.numel(), "dy");
  a.expect_numel(dx, x.numel(), "dx");
  Device d = a.same_device({&x, &dy, &dx});
  KG_RUN(a, d, relu_backward(x.numel(), x.data("x"), dy.data("dy"), dx.data("dx")));
  return info.Env().Undefined();
}

// reduceSum(outer, r, inner, scale, x, y)
Napi::Value reduce_sum(const Napi::CallbackInfo& info) {
  Args a(info, "reduceSum", 6);
  int64_t outer = a.i64(0, "outer"), r = a.i64(1, "r"), inner = a.i64(2, "inner");
  float scale = a.f32(3, "scale");
  Storage &x = a.storage(4, "x"), &y = a.storage(5, "y");
  a.expect_numel(x, {outer, r, inner}, "x");
  a.expect_numel(y, {outer, inner}, "y");
  Device d = a.same_device({&x, &y});
  if (y.numel() == 0) return info.Env().Undefined();
  KG_RUN(a, d, reduce_sum(outer, r, inner, scale, x.data("x"), y.data("y")));
  return info.Env().Undefined();
}

// Every label must be a class index: an integer in [0, k). Checked here for labels in host memory;
// on the GPU reading them back would cost a sync per call, so the CUDA kernels guard their reads
// instead and give NaN for a row whose label is out of range (native/cuda/loss.cu).
void check_labels(const Args& a, Device d, const Storage& labels, int64_t k) {
  if (d != Device::Cpu) return;
  const float* y = labels.data("labels");
  for (int64_t i = 0; i < labels.numel(); ++i) {
    const float v = y[i];
    if (!(v >= 0.0f && v < static_cast<float>(k) && v == std::floor(v))) {
      throw Napi::RangeError::New(a.env(), a.prefix() + "labels[" + std::to_string(i) + "] is " + Args::number(v) +
                                               ", not a class index in [0, " + std::to_string(k) + ")");
    }
  }
}

// softmaxXentForward(n, k, logits, labels, loss)
Napi::Value xent_forward(const Napi::CallbackInfo& info) {
  Args a(info, "softmaxXentForward", 5);
  int64_t n = a.i64(0, "n"), k = a.i64(1, "k", 1);
  Storage &logits = a.storage(2, "logits"), &labels = a.storage(3, "labels"), &loss = a.storage(4, "loss");
  a.expect_numel(logits, {n, k}, "logits");
  a.expect_numel(labels, n, "labels");
  a.expect_numel(loss, n, "loss");
  Device d = a.same_device({&logits, &labels, &loss});
  if (n == 0) return info.Env().Undefined();
  check_labels(a, d, labels, k);
  KG_RUN(a, d, softmax_xent_forward(n, k, logits.data("logits"), labels.data("labels"), loss.data("loss")));
  return info.Env().Undefined();
}

// softmaxXentForwardSum(n, k, logits, labels, scale, out, grad | null): out (one value) = scale * sum
// of the losses; grad (n, k), when given, gets the backward's dlogits for an upstream gradient of 1
Napi::Value xent_forward_sum(const Napi::CallbackInfo& info) {
  Args a(info, "softmaxXentForwardSum", 7);
  int64_t n = a.i64(0, "n"), k = a.i64(1, "k", 1);
  Storage &logits = a.storage(2, "logits"), &labels = a.storage(3, "labels");
  float scale = a.f32(4, "scale");
  Storage& out = a.storage(5, "out");
  Storage* grad = a.optional_storage(6, "grad");
  a.expect_numel(logits, {n, k}, "logits");
  a.expect_numel(labels, n, "labels");
  a.expect_numel(out, 1, "out");
  if (grad) a.expect_numel(*grad, {n, k}, "grad");
  Device d = a.same_device({&logits, &labels, &out, grad});
  if (n > 0) check_labels(a, d, labels, k);
  KG_RUN(a, d,
         softmax_xent_forward_sum(n, k, logits.data("logits"), labels.data("labels"), scale, out.data("out"),
                                  grad ? grad->data("grad") : nullptr));
  return info.Env().Undefined();
}

// softmaxXentBackward(n, k, logits, labels, dloss, scale, dlogits): dloss holds n values (one per
// row) or one (the gradient of the summed loss, for every row)
Napi::Value xent_backward(const Napi::CallbackInfo& info) {
  Args a(info, "softmaxXentBackward", 7);
  int64_t n = a.i64(0, "n"), k = a.i64(1, "k", 1);
  Storage &logits = a.storage(2, "logits"), &labels = a.storage(3, "labels"), &dloss = a.storage(4, "dloss");
  float scale = a.f32(5, "scale");
  Storage& dlogits = a.storage(6, "dlogits");
  a.expect_numel(logits, {n, k}, "logits");
  a.expect_numel(labels, n, "labels");
  const bool per_row = dloss.numel() != 1 || n == 1;
  if (per_row && dloss.numel() != n) {
    throw Napi::RangeError::New(info.Env(), a.prefix() + "dloss has " + std::to_string(dloss.numel()) +
                                                " elements, the shapes need " + std::to_string(n) + " (one per row) or 1");
  }
  a.expect_numel(dlogits, {n, k}, "dlogits");
  Device d = a.same_device({&logits, &labels, &dloss, &dlogits});
  if (n == 0) return info.Env().Undefined();
  check_labels(a, d, labels, k);
  KG_RUN(a, d,
         softmax_xent_backward(n, k, logits.data("logits"), labels.data("labels"), dloss.data("dloss"), per_row,
                               scale, dlogits.data("dlogits")));
  return info.Env().Undefined();
}

// argmaxRows(n, k, x, out)
Napi::Value argmax_rows(const Napi::CallbackInfo& info) {
  Args a(info, "argmaxRows", 4);
  int64_t n = a.i64(0, "n"), k = a.i64(1, "k", 1);
  Storage &x = a.storage(2, "x"), &out = a.storage(3, "out");
  a.expect_numel(x, {n, k}, "x");
  a.expect_numel(out, n, "out");
  Device d = a.same_device({&x, &out});
  if (n == 0) return info.Env().Undefined();
  KG_RUN(a, d, argmax_rows(n, k, x.data("x"), out.data("out")));
  return info.Env().Undefined();
}

}  // namespace

void register_elementwise(Napi::Env env, Napi::Object exports) {
  exports.Set("binary", Napi::Function::New<binary>(env, "binary"));
  exports.Set("fill", Napi::Function::New<fill>(env, "fill"));
  exports.Set("copy", Napi::Function::New<copy>(env, "copy"));
  exports.Set("axpby", Napi::Function::New<axpby>(env, "axpby"));
  exports.Set("reluForward", Napi::Function::New<relu_forward>(env, "reluForward"));
  exports.Set("reluBackward", Napi::Function::New<relu_backward>(env, "reluBackward"));
  exports.Set("reduceSum", Napi::Function::New<reduce_sum>(env, "reduceSum"));
  exports.Set("softmaxXentForward", Napi::Function::New<xent_forward>(env, "softmaxXentForward"));
  exports.Set("softmaxXentForwardSum", Napi::Function::New<xent_forward_sum>(env, "softmaxXentForwardSum"));
  exports.Set("softmaxXentBackward", Napi::Function::New<xent_backward>(env, "softmaxXentBackward"));
  exports.Set("argmaxRows", Napi::Function::New<argmax_rows>(env, "argmaxRows"));
}

}  // namespace kg
