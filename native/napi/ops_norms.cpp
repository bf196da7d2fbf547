// Bindings of the group-normalization kernels (group norm, layer norm, batch renorm). Every input
// is described as a NormShape [outer, groups, inner, params, run]; see kg/shapes.h.
#include <string>

#include "addon.h"
#include "args.h"
#include "kg/ops.h"

namespace kg {
namespace {

struct Checked {
  NormShape s;
  int64_t numel;
};

// The shape, checked so that every index the kernels form stays inside x and the parameters.
Checked norm_shape(const Args& a, size_t i) {
  auto v = a.ints(i, "shape", 5);
  NormShape s{v[0], v[1], v[2], v[3], v[4]};
  const int64_t numel = a.numel({s.outer, s.groups, s.inner}, "x");
  const int64_t width = a.numel({s.params, s.run}, "the parameters' extent");
  const int64_t row = a.numel({s.groups, s.inner}, "a row of groups");
  if (s.run < 1 || s.params < 1) {
    throw Napi::RangeError::New(a.env(), a.prefix() + "shape: params and run must be at least 1");
  }
  if (s.inner % s.run != 0 || row % width != 0) {
    throw Napi::RangeError::New(a.env(), a.prefix() + "shape: run must divide inner (" + std::to_string(s.inner) +
                                             ") and params * run must divide groups * inner (" +
                                             std::to_string(row) + ")");
  }
  return {s, numel};
}

void expect_each(const Args& a, std::initializer_list<std::pair<const Storage*, const char*>> all, int64_t n) {
  for (auto [st, name] : all) {
    if (st) a.expect_numel(*st, n, name);
  }
}

// normForward(shape, x, gamma, beta, eps, y, saveMean, saveMeanLo, saveInvstd)
Napi::Value forward(const Napi::CallbackInfo& info) {
  Args a(info, "normForward", 9);
  auto [s, numel] = norm_shape(a, 0);
  Storage &x = a.storage(1, "x"), &gamma = a.storage(2, "gamma"), &beta = a.storage(3, "beta");
  float eps = a.f32(4, "eps");
  Storage &y = a.storage(5, "y"), &mean = a.storage(6, "saveMean"), &lo = a.storage(7, "saveMeanLo"),
          &invstd = a.storage(8, "saveInvstd");
  expect_each(a, {{&x, "x"}, {&y, "y"}}, numel);
  expect_each(a, {{&gamma, "gamma"}, {&beta, "beta"}}, s.params);
  expect_each(a, {{&mean, "saveMean"}, {&lo, "saveMeanLo"}, {&invstd, "saveInvstd"}}, s.groups);
  Device d = a.same_device({&x, &gamma, &beta, &y, &mean, &lo, &invstd});
  KG_RUN(a, d,
         norm_forward(s, x.data("x"), gamma.data("gamma"), beta.data("beta"), eps, y.data("y"), mean.data("saveMean"),
                      lo.data("saveMeanLo"), invstd.data("saveInvstd")));
  return info.Env().Undefined();
}

// renormForward(shape, x, gamma, beta, eps, runningMean, runningVar, rMax, dMax, y, saveMean,
//               saveMeanLo, saveInvstd, batchVar, r, d)
Napi::Value renorm(const Napi::CallbackInfo& info) {
  Args a(info, "renormForward", 16);
  auto [s, numel] = norm_shape(a, 0);
  Storage &x = a.storage(1, "x"), &gamma = a.storage(2, "gamma"), &beta = a.storage(3, "beta");
  float eps = a.f32(4, "eps");
  Storage &rmean = a.storage(5, "runningMean"), &rvar = a.storage(6, "runningVar");
  float r_max = a.f32(7, "rMax"), d_max = a.f32(8, "dMax");
  if (!(r_max >= 1.0f) || !(d_max >= 0.0f)) {
    throw Napi::RangeError::New(a.env(), a.prefix() + "rMax must be >= 1 and dMax >= 0");
  }
  Storage &y = a.storage(9, "y"), &mean = a.storage(10, "saveMean"), &lo = a.storage(11, "saveMeanLo"),
          &invstd = a.storage(12, "saveInvstd"), &var = a.storage(13, "batchVar"), &r = a.storage(14, "r"),
          &dd = a.storage(15, "d");
  expect_each(a, {{&x, "x"}, {&y, "y"}}, numel);
  expect_each(a, {{&gamma, "gamma"}, {&beta, "beta"}}, s.params);
  expect_each(a, {{&rmean, "runningMean"}, {&rvar, "runningVar"}, {&mean, "saveMean"}, {&lo, "saveMeanLo"},
                  {&invstd, "saveInvstd"}, {&var, "batchVar"}, {&r, "r"}, {&dd, "d"}},
              s.groups);
  Device d = a.same_device({&x, &gamma, &beta, &rmean, &rvar, &y, &mean, &lo, &invstd, &var, &r, &dd});
  RenormArgs rn{rmean.data("runningMean"), rvar.data("runningVar"), r_max, d_max,
                var.data("batchVar"),      r.data("r"),            dd.data("d")};
  KG_RUN(a, d,
         renorm_forward(s, x.data("x"), gamma.data("gamma"), beta.data("beta"), eps, rn, y.data("y"),
                        mean.data("saveMean"), lo.data("saveMeanLo"), invstd.data("saveInvstd")));
  return info.Env().Undefined();
}

// normBackward(shape, x, dy, gamma, saveMean, saveMeanLo, saveInvstd, r | null, d | null, dx | null,
//              dgamma, dbeta)
Napi::Value backward(const Napi::CallbackInfo& info) {
  Args a(info, "normBackward", 12);
  auto [s, numel] = norm_shape(a, 0);
  Storage &x = a.storage(1, "x"), &dy = a.storage(2, "dy"), &gamma = a.storage(3, "gamma"),
          &mean = a.storage(4, "saveMean"), &lo = a.storage(5, "saveMeanLo"), &invstd = a.storage(6, "saveInvstd");
  Storage *r = a.optional_storage(7, "r"), *dd = a.optional_storage(8, "d"), *dx = a.optional_storage(9, "dx");
  Storage &dgamma = a.storage(10, "dgamma"), &dbeta = a.storage(11, "dbeta");
  if ((r == nullptr) != (dd == nullptr)) {
    throw Napi::TypeError::New(a.env(), a.prefix() + "give both r and d, or neither");
  }
  expect_each(a, {{&x, "x"}, {&dy, "dy"}, {dx, "dx"}}, numel);
  expect_each(a, {{&gamma, "gamma"}, {&dgamma, "dgamma"}, {&dbeta, "dbeta"}}, s.params);
  expect_each(a, {{&mean, "saveMean"}, {&lo, "saveMeanLo"}, {&invstd, "saveInvstd"}, {r, "r"}, {dd, "d"}}, s.groups);
  Device d = a.same_device({&x, &dy, &gamma, &mean, &lo, &invstd, r, dd, dx, &dgamma, &dbeta});
  KG_RUN(a, d,
         norm_backward(s, x.data("x"), dy.data("dy"), gamma.data("gamma"), mean.data("saveMean"),
                       lo.data("saveMeanLo"), invstd.data("saveInvstd"), r ? r->data("r") : nullptr, dd ? dd->data("d") : nullptr,
                       dx ? dx->data("dx") : nullptr, dgamma.data("dgamma"), dbeta.data("dbeta")));
  return info.Env().Undefined();
}

}  // namespace

void register_norms(Napi::Env env, Napi::Object exports) {
  exports.Set("normForward", Napi::Function::New<forward>(env, "normForward"));
  exports.Set("renormForward", Napi::Function::New<renorm>(env, "renormForward"));
  exports.Set("normBackward", Napi::Function::New<backward>(env, "normBackward"));
}

}  // namespace kg
