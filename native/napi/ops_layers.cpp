// Bindings of the layers beyond the tutorial's network: max pooling and dropout.
#include <string>

#include "addon.h"
#include "args.h"
#include "kg/ops.h"

namespace kg {
namespace {

// Argmax positions are stored as floats, exact up to 2^24.
constexpr int64_t kMaxPlane = int64_t{1} << 24;

// [n, c, h, w, kh, kw, sh, sw, ph, pw] -> MaxPoolShape with the output size.
MaxPoolShape maxpool_shape(const Args& a, size_t i) {
  auto v = a.ints(i, "shape", 10);
  MaxPoolShape s{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], 0, 0};
  if (s.kh < 1 || s.kw < 1 || s.sh < 1 || s.sw < 1) {
    throw Napi::RangeError::New(a.env(), a.prefix() + "kernel size and stride must be at least 1");
  }
  if (2 * s.ph > s.kh || 2 * s.pw > s.kw) {
    throw Napi::RangeError::New(a.env(), a.prefix() + "padding must be at most half the kernel size");
  }
  // Sizes are at most 2^53 (Args::kMaxSize), so these sums stay far inside int64.
  if (s.h + 2 * s.ph < s.kh || s.w + 2 * s.pw < s.kw) {
    throw Napi::RangeError::New(a.env(), a.prefix() + "the pooling window is larger than the padded input");
  }
  if ((s.h == 0 || s.w == 0) && s.n > 0 && s.c > 0) {
    throw Napi::RangeError::New(a.env(), a.prefix() + "an empty input plane (" + std::to_string(s.h) + " x " +
                                             std::to_string(s.w) + ") has no maximum");
  }
  if (a.numel({s.h, s.w}, "an input plane") > kMaxPlane) {
    throw Napi::RangeError::New(a.env(), a.prefix() + "an input plane of " + std::to_string(s.h) + " x " +
                                             std::to_string(s.w) + " has more than 2^24 pixels");
  }
  s.oh = (s.h + 2 * s.ph - s.kh) / s.sh + 1;
  s.ow = (s.w + 2 * s.pw - s.kw) / s.sw + 1;
  return s;
}

// maxPool2dForward(shape, x, y, argmax)
Napi::Value maxpool2d_forward(const Napi::CallbackInfo& info) {
  Args a(info, "maxPool2dForward", 4);
  MaxPoolShape s = maxpool_shape(a, 0);
  Storage &x = a.storage(1, "x"), &y = a.storage(2, "y"), &arg = a.storage(3, "argmax");
  a.expect_numel(x, {s.n, s.c, s.h, s.w}, "x");
  a.expect_numel(y, {s.n, s.c, s.oh, s.ow}, "y");
  a.expect_numel(arg, {s.n, s.c, s.oh, s.ow}, "argmax");
  Device d = a.same_device({&x, &y, &arg});
  if (y.numel() == 0) return info.Env().Undefined();
  KG_RUN(a, d, maxpool2d_forward(s, x.data("x"), y.data("y"), arg.data("argmax")));
  return info.Env().Undefined();
}

// maxPool2dBackward(shape, dy, argmax, dx)
Napi::Value maxpool2d_backward(const Napi::CallbackInfo& info) {
  Args a(info, "maxPool2dBackward", 4);
  MaxPoolShape s = maxpool_shape(a, 0);
  Storage &dy = a.storage(1, "dy"), &arg = a.storage(2, "argmax"), &dx = a.storage(3, "dx");
  a.expect_numel(dy, {s.n, s.c, s.oh, s.ow}, "dy");
  a.expect_numel(arg, {s.n, s.c, s.oh, s.ow}, "argmax");
  a.expect_numel(dx, {s.n, s.c, s.h, s.w}, "dx");
  Device d = a.same_device({&dy, &arg, &dx});
  if (dx.numel() == 0) return info.Env().Undefined();
  KG_RUN(a, d, maxpool2d_backward(s, dy.data("dy"), arg.data("argmax"), dx.data("dx")));
  return info.Env().Undefined();
}

// dropout(p, seed, x, y): also the backward pass, on (dy, dx) with the forward's p and seed.
Napi::Value dropout(const Napi::CallbackInfo& info) {
  Args a(info, "dropout", 4);
  float p = a.f32(0, "p");
  if (!(p >= 0.0f && p < 1.0f)) {
    throw Napi::RangeError::New(a.env(), a.prefix() + "p must be in [0, 1), got " + Args::number(p));
  }
  int64_t seed = a.i64(1, "seed");
  Storage &x = a.storage(2, "x"), &y = a.storage(3, "y");
  a.expect_numel(y, x.numel(), "y");
  Device d = a.same_device({&x, &y});
  if (y.numel() == 0) return info.Env().Undefined();
  KG_RUN(a, d, dropout_apply(x.numel(), p, static_cast<uint64_t>(seed), x.data("x"), y.data("y")));
  return info.Env().Undefined();
}

}  // namespace

void register_layers(Napi::Env env, Napi::Object exports) {
  exports.Set("maxPool2dForward", Napi::Function::New<maxpool2d_forward>(env, "maxPool2dForward"));
  exports.Set("maxPool2dBackward", Napi::Function::New<maxpool2d_backward>(env, "maxPool2dBackward"));
  exports.Set("dropout", Napi::Function::New<dropout>(env, "dropout"));
}

}  // namespace kg
