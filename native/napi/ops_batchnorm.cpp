// Bindings of the batch-norm kernels. Every input is described as (n, c, l) (see kg/shapes.h), except
// the fused batch norm + ReLU + pooling's, described by its pooling shape.
#include <string>

#include "addon.h"
#include "args.h"
#include "kg/ops.h"
#include "pool_shape.h"

namespace kg {
namespace {

BnShape bn_shape(const Args& a, size_t i) {
  auto v = a.ints(i, "shape", 3);
  return BnShape{v[0], v[1], v[2]};
}

// Each binding comes twice: batch norm alone, and fused with the ReLU after it (`Relu`, the names
// batchNormRelu*), whose backward takes the fused output y after x.
constexpr const char* name_of(bool relu, const char* plain, const char* fused) { return relu ? fused : plain; }

// The optional tail of the training forward bindings (kg/batchnorm_update.h), from argument `at`:
//   runningMean | null, runningVar | null, momentum, unbiased, numBatchesTracked | null, cumulative,
//   status | null, statusOffset
// The storages are appended to `storages` for the device check.
BnRunningUpdate running_update(const Args& a, size_t at, const BnShape& s, std::vector<const Storage*>& storages) {
  Storage* mean = a.optional_storage(at, "runningMean");
  Storage* var = a.optional_storage(at + 1, "runningVar");
  const double momentum = a.f64(at + 2, "momentum");
  const bool unbiased = a.boolean(at + 3, "unbiased");
  Storage* count = a.optional_storage(at + 4, "numBatchesTracked");
  const bool cumulative = a.boolean(at + 5, "cumulative");
  Storage* status = a.optional_storage(at + 6, "status");
  const int64_t offset = a.i64(at + 7, "statusOffset");
  if ((mean == nullptr) != (var == nullptr)) {
    throw Napi::TypeError::New(a.env(), a.prefix() + "give runningMean and runningVar together, or neither");
  }
  if (!(momentum >= 0.0 && momentum <= 1.0)) {
    throw Napi::RangeError::New(a.env(), a.prefix() + "momentum must be in [0, 1], got " + Args::number(momentum));
  }
  if (count && !mean) {
    throw Napi::TypeError::New(a.env(), a.prefix() + "numBatchesTracked counts the updates of runningMean and runningVar, which are null");
  }
  if (cumulative && !count) {
    throw Napi::TypeError::New(a.env(), a.prefix() + "cumulative averaging reads numBatchesTracked, which is null");
  }
  if (mean) a.expect_numel(*mean, s.c, "runningMean");
  if (var) a.expect_numel(*var, s.c, "runningVar");
  if (count) a.expect_numel(*count, 1, "numBatchesTracked");
  if (status && (offset > status->numel() || s.c > status->numel() - offset)) {
    throw Napi::RangeError::New(a.env(), a.prefix() + "statusOffset " + std::to_string(offset) + " and " + std::to_string(s.c) +
                                             " channels reach past the " + std::to_string(status->numel()) +
                                             " elements of status");
  }
  if ((mean || status) && a.numel({s.n, s.l}, "a channel") < 2) {
    throw Napi::RangeError::New(a.env(), a.prefix() + "running statistics and a status need at least 2 values per channel, got n * l = " +
                                             std::to_string(s.n * s.l));
  }
  storages.insert(storages.end(), {mean, var, count, status});
  BnRunningUpdate u;
  u.running_mean = mean ? mean->data("runningMean") : nullptr;
  u.running_var = var ? var->data("runningVar") : nullptr;
  u.momentum = momentum;
  u.unbiased = unbiased;
  u.num_batches_tracked = count ? count->data("numBatchesTracked") : nullptr;
  u.cumulative = cumulative;
  u.status = status ? status->data("status") : nullptr;
  u.status_offset = offset;
  return u;
}

// What every training forward binding takes after its shape: x, gamma, beta, eps, y, saveMean,
// saveMeanLo, saveInvstd, batchVar | null, then running_update's arguments; checked (x and y of the
// given sizes, the per-channel storages of s.c elements, everything on one device) and read.
struct ForwardTrainArgs {
  Device device;
  const float *x, *gamma, *beta;
  float eps;
  float *y, *mean, *mean_lo, *invstd, *var;
  BnRunningUpdate update;
};
ForwardTrainArgs forward_train_args(const Args& a, const BnShape& s, std::initializer_list<int64_t> x_sizes,
                                    std::initializer_list<int64_t> y_sizes) {
  Storage &x = a.storage(1, "x"), &gamma = a.storage(2, "gamma"), &beta = a.storage(3, "beta");
  const float eps = a.f32(4, "eps");
  Storage &y = a.storage(5, "y"), &mean = a.storage(6, "saveMean"), &mean_lo = a.storage(7, "saveMeanLo"),
          &invstd = a.storage(8, "saveInvstd");
  Storage* var = a.optional_storage(9, "batchVar");
  a.expect_numel(x, x_sizes, "x");
  a.expect_numel(y, y_sizes, "y");
  for (auto [st, name] : {std::pair{&gamma, "gamma"}, {&beta, "beta"}, {&mean, "saveMean"},
                          {&mean_lo, "saveMeanLo"}, {&invstd, "saveInvstd"}}) {
    a.expect_numel(*st, s.c, name);
  }
  if (var) a.expect_numel(*var, s.c, "batchVar");
  std::vector<const Storage*> storages{&x, &gamma, &beta, &y, &mean, &mean_lo, &invstd, var};
  const BnRunningUpdate update = running_update(a, 10, s, storages);
  const Device device = a.same_device(storages);
  return ForwardTrainArgs{device,
                          x.data("x"),
                          gamma.data("gamma"),
                          beta.data("beta"),
                          eps,
                          y.data("y"),
                          mean.data("saveMean"),
                          mean_lo.data("saveMeanLo"),
                          invstd.data("saveInvstd"),
                          var ? var->data("batchVar") : nullptr,
                          update};
}

// batchNorm[Relu]ForwardTrain(shape, x, gamma, beta, eps, y, saveMean, saveMeanLo, saveInvstd, batchVar | null,
//                             ...running_update's arguments)
template <bool Relu>
Napi::Value forward_train(const Napi::CallbackInfo& info) {
  Args a(info, name_of(Relu, "batchNormForwardTrain", "batchNormReluForwardTrain"), 18);
  BnShape s = bn_shape(a, 0);
  const ForwardTrainArgs t = forward_train_args(a, s, {s.n, s.c, s.l}, {s.n, s.c, s.l});
  if constexpr (Relu) {
    KG_RUN(a, t.device,
           batchnorm_relu_forward_train(s, t.x, t.gamma, t.beta, t.eps, t.y, t.mean, t.mean_lo, t.invstd, t.var,
                                        t.update));
  } else {
    KG_RUN(a, t.device,
           batchnorm_forward_train(s, t.x, t.gamma, t.beta, t.eps, t.y, t.mean, t.mean_lo, t.invstd, t.var, t.update));
  }
  return info.Env().Undefined();
}

// batchNorm[Relu]ForwardInfer(shape, x, gamma, beta, mean, var, eps, y)
template <bool Relu>
Napi::Value forward_infer(const Napi::CallbackInfo& info) {
  Args a(info, name_of(Relu, "batchNormForwardInfer", "batchNormReluForwardInfer"), 8);
  BnShape s = bn_shape(a, 0);
  Storage &x = a.storage(1, "x"), &gamma = a.storage(2, "gamma"), &beta = a.storage(3, "beta"),
          &mean = a.storage(4, "mean"), &var = a.storage(5, "var");
  float eps = a.f32(6, "eps");
  Storage& y = a.storage(7, "y");
  int64_t numel = a.numel({s.n, s.c, s.l}, "x");
  a.expect_numel(x, numel, "x");
  a.expect_numel(y, numel, "y");
  for (auto [st, name] : {std::pair{&gamma, "gamma"}, {&beta, "beta"}, {&mean, "mean"}, {&var, "var"}}) {
    a.expect_numel(*st, s.c, name);
  }
  Device d = a.same_device({&x, &gamma, &beta, &mean, &var, &y});
  if constexpr (Relu) {
    KG_RUN(a, d,
           batchnorm_relu_forward_infer(s, x.data("x"), gamma.data("gamma"), beta.data("beta"), mean.data("mean"),
                                        var.data("var"), eps, y.data("y")));
  } else {
    KG_RUN(a, d,
           batchnorm_forward_infer(s, x.data("x"), gamma.data("gamma"), beta.data("beta"), mean.data("mean"),
                                   var.data("var"), eps, y.data("y")));
  }
  return info.Env().Undefined();
}

// batchNormBackwardTrain(shape, x, dy, gamma, saveMean, saveMeanLo, saveInvstd, dx | null, dgamma, dbeta)
// batchNormReluBackwardTrain(shape, x, y, dy, gamma, saveMean, saveMeanLo, saveInvstd, dx | null, dgamma, dbeta)
template <bool Relu>
Napi::Value backward_train(const Napi::CallbackInfo& info) {
  constexpr size_t o = Relu ? 1 : 0;  // y comes after x
  Args a(info, name_of(Relu, "batchNormBackwardTrain", "batchNormReluBackwardTrain"), 10 + o);
  BnShape s = bn_shape(a, 0);
  Storage& x = a.storage(1, "x");
  Storage* y = Relu ? &a.storage(2, "y") : nullptr;
  Storage &dy = a.storage(2 + o, "dy"), &gamma = a.storage(3 + o, "gamma"), &mean = a.storage(4 + o, "saveMean"),
          &mean_lo = a.storage(5 + o, "saveMeanLo"), &invstd = a.storage(6 + o, "saveInvstd");
  Storage* dx = a.optional_storage(7 + o, "dx");
  Storage &dgamma = a.storage(8 + o, "dgamma"), &dbeta = a.storage(9 + o, "dbeta");
  int64_t numel = a.numel({s.n, s.c, s.l}, "x");
  a.expect_numel(x, numel, "x");
  if (y) a.expect_numel(*y, numel, "y");
  a.expect_numel(dy, numel, "dy");
  if (dx) a.expect_numel(*dx, numel, "dx");
  for (auto [st, name] : {std::pair{&gamma, "gamma"}, {&mean, "saveMean"}, {&mean_lo, "saveMeanLo"},
                          {&invstd, "saveInvstd"}, {&dgamma, "dgamma"}, {&dbeta, "dbeta"}}) {
    a.expect_numel(*st, s.c, name);
  }
  Device d = a.same_device({&x, y, &dy, &gamma, &mean, &mean_lo, &invstd, dx, &dgamma, &dbeta});
  float* dx_data = dx ? dx->data("dx") : nullptr;
  if constexpr (Relu) {
    KG_RUN(a, d,
           batchnorm_relu_backward_train(s, x.data("x"), y->data("y"), dy.data("dy"), gamma.data("gamma"),
                                         mean.data("saveMean"), mean_lo.data("saveMeanLo"),
                                         invstd.data("saveInvstd"), dx_data, dgamma.data("dgamma"),
                                         dbeta.data("dbeta")));
  } else {
    KG_RUN(a, d,
           batchnorm_backward_train(s, x.data("x"), dy.data("dy"), gamma.data("gamma"), mean.data("saveMean"),
                                    mean_lo.data("saveMeanLo"), invstd.data("saveInvstd"), dx_data,
                                    dgamma.data("dgamma"), dbeta.data("dbeta")));
  }
  return info.Env().Undefined();
}

// batchNormBackwardInfer(shape, x, dy, gamma, mean, var, eps, dx | null, dgamma, dbeta)
// batchNormReluBackwardInfer(shape, x, y, dy, gamma, mean, var, eps, dx | null, dgamma, dbeta)
template <bool Relu>
Napi::Value backward_infer(const Napi::CallbackInfo& info) {
  constexpr size_t o = Relu ? 1 : 0;
  Args a(info, name_of(Relu, "batchNormBackwardInfer", "batchNormReluBackwardInfer"), 10 + o);
  BnShape s = bn_shape(a, 0);
  Storage& x = a.storage(1, "x");
  Storage* y = Relu ? &a.storage(2, "y") : nullptr;
  Storage &dy = a.storage(2 + o, "dy"), &gamma = a.storage(3 + o, "gamma"), &mean = a.storage(4 + o, "mean"),
          &var = a.storage(5 + o, "var");
  float eps = a.f32(6 + o, "eps");
  Storage* dx = a.optional_storage(7 + o, "dx");
  Storage &dgamma = a.storage(8 + o, "dgamma"), &dbeta = a.storage(9 + o, "dbeta");
  int64_t numel = a.numel({s.n, s.c, s.l}, "x");
  a.expect_numel(x, numel, "x");
  if (y) a.expect_numel(*y, numel, "y");
  a.expect_numel(dy, numel, "dy");
  if (dx) a.expect_numel(*dx, numel, "dx");
  for (auto [st, name] : {std::pair{&gamma, "gamma"}, {&mean, "mean"}, {&var, "var"}, {&dgamma, "dgamma"},
                          {&dbeta, "dbeta"}}) {
    a.expect_numel(*st, s.c, name);
  }
  Device d = a.same_device({&x, y, &dy, &gamma, &mean, &var, dx, &dgamma, &dbeta});
  float* dx_data = dx ? dx->data("dx") : nullptr;
  if constexpr (Relu) {
    KG_RUN(a, d,
           batchnorm_relu_backward_infer(s, x.data("x"), y->data("y"), dy.data("dy"), gamma.data("gamma"),
                                         mean.data("mean"), var.data("var"), eps, dx_data, dgamma.data("dgamma"),
                                         dbeta.data("dbeta")));
  } else {
    KG_RUN(a, d,
           batchnorm_backward_infer(s, x.data("x"), dy.data("dy"), gamma.data("gamma"), mean.data("mean"),
                                    var.data("var"), eps, dx_data, dgamma.data("dgamma"), dbeta.data("dbeta")));
  }
  return info.Env().Undefined();
}

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

// Batch norm + ReLU + average pooling (the shape is the pooling's [n, c, h, w, kh, kw, sh, sw]):
// batchNormReluPoolForwardTrain(shape, x, gamma, beta, eps, y, saveMean, saveMeanLo, saveInvstd, batchVar | null,
//                               ...running_update's arguments), y the pooled output
Napi::Value pool_forward_train(const Napi::CallbackInfo& info) {
  Args a(info, "batchNormReluPoolForwardTrain", 18);
  PoolShape s = fused_pool_shape(a, 0);
  const ForwardTrainArgs t =
      forward_train_args(a, BnShape{s.n, s.c, s.h * s.w}, {s.n, s.c, s.h, s.w}, {s.n, s.c, s.oh, s.ow});
  KG_RUN(a, t.device,
         batchnorm_relu_pool_forward_train(s, t.x, t.gamma, t.beta, t.eps, t.y, t.mean, t.mean_lo, t.invstd, t.var,
                                           t.update));
  return info.Env().Undefined();
}

// batchNormReluPoolBackwardTrain(shape, x, dy, gamma, beta, saveMean, saveMeanLo, saveInvstd, dx | null, dgamma, dbeta)
Napi::Value pool_backward_train(const Napi::CallbackInfo& info) {
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

void register_batchnorm(Napi::Env env, Napi::Object exports) {
  exports.Set("batchNormForwardTrain", Napi::Function::New<forward_train<false>>(env, "batchNormForwardTrain"));
  exports.Set("batchNormForwardInfer", Napi::Function::New<forward_infer<false>>(env, "batchNormForwardInfer"));
  exports.Set("batchNormBackwardTrain", Napi::Function::New<backward_train<false>>(env, "batchNormBackwardTrain"));
  exports.Set("batchNormBackwardInfer", Napi::Function::New<backward_infer<false>>(env, "batchNormBackwardInfer"));
  exports.Set("batchNormReluForwardTrain",
              Napi::Function::New<forward_train<true>>(env, "batchNormReluForwardTrain"));
  exports.Set("batchNormReluForwardInfer",
              Napi::Function::New<forward_infer<true>>(env, "batchNormReluForwardInfer"));
  exports.Set("batchNormReluBackwardTrain",
              Napi::Function::New<backward_train<true>>(env, "batchNormReluBackwardTrain"));
  exports.Set("batchNormReluBackwardInfer",
              Napi::Function::New<backward_infer<true>>(env, "batchNormReluBackwardInfer"));
  exports.Set("batchNormReluPoolForwardTrain",
              Napi::Function::New<pool_forward_train>(env, "batchNormReluPoolForwardTrain"));
  exports.Set("batchNormReluPoolBackwardTrain",
              Napi::Function::New<pool_backward_train>(env, "batchNormReluPoolBackwardTrain"));
}

}  // namespace kg
