// Bindings of batch norm + ReLU + average pooling as one op (training form). The shape is the
// pooling's [n, c, h, w, kh, kw, sh, sw]; the batch norm sees (n, c, h * w).
#include <string>

#include "addon.h"
#include "args.h"
#include "kg/ops.h"
#include "pool_shape.h"

namespace kg {
namespace {

// The pooling shape, limited to what the fused kernels do: windows that tile the image without
// overlap or gaps between them (stride = window), planes of more than one pixel, and sizes whose
// pixel and window indices fit the kernels' 32-bit index arithmetic.
PoolShape fused_pool_shape(const Args& a, size_t i) {
  PoolShape s = pool_shape(a, i);
  if (s.sh != s.kh || s.sw != s.kw) {
    throw Napi::RangeError::New(a.env(), a.prefix() + "the windows must not overlap: stride " + std::to_string(s.sh) +
                                             "x" + std::to_string(s.sw) + " must equal the window " +
                                             std::to_string(s.kh) + "x" + std::to_string(s.kw));
  }
  const int64_t plane = a.numel({s.h, s.w}, "an image plane"), windows = a.numel({s.n, s.oh, s.ow}, "the windows");
  if (plane < 2) throw Napi::RangeError::New(a.env(), a.prefix() + "image planes must hold at least 2 pixels");
  if (plane >= (int64_t{1} << 31) || windows >= (int64_t{1} << 31)) {
    throw Napi::RangeError::New(a.env(), a.prefix() + "an image plane and a channel's windows must each be below 2^31");
  }
  return s;
}

// batchNormReluPoolForwardTrain(shape, x, gamma, beta, eps, y, saveMean, saveMeanLo, saveInvstd, batchVar)
Napi::Value forward_train(const Napi::CallbackInfo& info) {
  Args a(info, "batchNormReluPoolForwardTrain", 10);
  PoolShape s = fused_pool_shape(a, 0);
  Storage &x = a.storage(1, "x"), &gamma = a.storage(2, "gamma"), &beta = a.storage(3, "beta");
  float eps = a.f32(4, "eps");
  Storage &y = a.storage(5, "y"), &mean = a.storage(6, "saveMean"), &mean_lo = a.storage(7, "saveMeanLo"),
          &invstd = a.storage(8, "saveInvstd"), &var = a.storage(9, "batchVar");
  a.expect_numel(x, {s.n, s.c, s.h, s.w}, "x");
  a.expect_numel(y, {s.n, s.c, s.oh, s.ow}, "y");
  for (auto [st, name] : {std::pair{&gamma, "gamma"}, {&beta, "beta"}, {&mean, "saveMean"},
                          {&mean_lo, "saveMeanLo"}, {&invstd, "saveInvstd"}, {&var, "batchVar"}}) {
    a.expect_numel(*st, s.c, name);
  }
  Device d = a.same_device({&x, &gamma, &beta, &y, &mean, &mean_lo, &invstd, &var});
  KG_RUN(a, d,
         batchnorm_relu_pool_forward_train(s, x.data("x"), gamma.data("gamma"), beta.data("beta"), eps, y.data("y"),
                                           mean.data("saveMean"), mean_lo.data("saveMeanLo"),
                                           invstd.data("saveInvstd"), var.data("batchVar")));
  return info.Env().Undefined();
}

// batchNormReluPoolBackwardTrain(shape, x, dy, gamma, beta, saveMean, saveMeanLo, saveInvstd, dx | null, dgamma, dbeta)
Napi::Value backward_train(const Napi::CallbackInfo& info) {
  Args a(info, "batchNormReluPoolBackwardTrain", 11);
  PoolShape s = fused_pool_shape(a, 0);
  Storage &x = a.storage(1, "x"), &dy = a.storage(2, "dy"), &gamma = a.storage(3, "gamma"),
          &beta = a.storage(4, "beta"), &mean = a.storage(5, "saveMean"), &mean_lo = a.storage(6, "saveMeanLo"),
          &invstd = a.storage(7, "saveInvstd");
  Storage* dx = a.optional_storage(8, "dx");
  Storage &dgamma = a.storage(9, "dgamma"), &dbeta = a.storage(10, "dbeta");
  a.expect_numel(x, {s.n, s.c, s.h, s.w}, "x");
  a.expect_numel(dy, {s.n, s.c, s.oh, s.ow}, "dy");
  if (dx) a.expect_numel(*dx, {s.n, s.c, s.h, s.w}, "dx");
  for (auto [st, name] : {std::pair{&gamma, "gamma"}, {&beta, "beta"}, {&mean, "saveMean"}, {&mean_lo, "saveMeanLo"},
                          {&invstd, "saveInvstd"}, {&dgamma, "dgamma"}, {&dbeta, "dbeta"}}) {
    a.expect_numel(*st, s.c, name);
  }
  Device d = a.same_device({&x, &dy, &gamma, &beta, &mean, &mean_lo, &invstd, dx, &dgamma, &dbeta});
  float* dx_data = dx ? dx->data("dx") : nullptr;
  KG_RUN(a, d,
         batchnorm_relu_pool_backward_train(s, x.data("x"), dy.data("dy"), gamma.data("gamma"), beta.data("beta"),
                                            mean.data("saveMean"), mean_lo.data("saveMeanLo"),
                                            invstd.data("saveInvstd"), dx_data, dgamma.data("dgamma"),
                                            dbeta.data("dbeta")));
  return info.Env().Undefined();
}

}  // namespace

void register_batchnorm_pool(Napi::Env env, Napi::Object exports) {
  exports.Set("batchNormReluPoolForwardTrain", Napi::Function::New<forward_train>(env, "batchNormReluPoolForwardTrain"));
  exports.Set("batchNormReluPoolBackwardTrain",
              Napi::Function::New<backward_train>(env, "batchNormReluPoolBackwardTrain"));
}

}  // namespace kg
