// Bindings of the optimizer kernels: the SGD and Adam/AdamW updates, and the norm behind gradient
// clipping. Every buffer of an update must have the parameter's size and live on its device.
#include <cmath>
#include <string>
#include <vector>

#include "addon.h"
#include "args.h"
#include "kg/ops.h"

namespace kg {
namespace {

// sgdUpdate(lr, momentum, weightDecay, nesterov, param, grad, velocity | null)
Napi::Value sgd_update(const Napi::CallbackInfo& info) {
  Args a(info, "sgdUpdate", 7);
  float lr = a.f32(0, "lr"), momentum = a.f32(1, "momentum"), wd = a.f32(2, "weightDecay");
  bool nesterov = a.boolean(3, "nesterov");
  Storage &p = a.storage(4, "param"), &g = a.storage(5, "grad");
  Storage* v = a.optional_storage(6, "velocity");
  a.expect_numel(g, p.numel(), "grad");
  if (v) a.expect_numel(*v, p.numel(), "velocity");
  if (momentum != 0.0f && !v) {
    throw Napi::TypeError::New(a.env(), a.prefix() + "momentum needs a velocity buffer");
  }
  // The CPU kernel reads and writes them as distinct arrays (__restrict).
  if (&p == &g || v == &p || v == &g) {
    throw Napi::TypeError::New(a.env(), a.prefix() + "param, grad and velocity must be different storages");
  }
  Device d = a.same_device({&p, &g, v});
  KG_RUN(a, d, sgd_update(p.numel(), lr, momentum, wd, nesterov, p.data("param"), g.data("grad"),
                          v ? v->data("velocity") : nullptr));
  return info.Env().Undefined();
}

// The storages of list argument `i` (an array of `count` storages, or of none when `count` is 0).
std::vector<Storage*> storage_list(const Args& a, const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsArray()) throw Napi::TypeError::New(a.env(), a.prefix() + name + " must be an array of storages");
  Napi::Array list = info[i].As<Napi::Array>();
  std::vector<Storage*> out;
  for (uint32_t k = 0; k < list.Length(); ++k) {
    Napi::Value v = list.Get(k);
    if (!Storage::is(a.env(), v)) throw Napi::TypeError::New(a.env(), a.prefix() + name + "[" + std::to_string(k) + "] must be a Storage");
    Storage* st = Storage::live(a.env(), v);
    if (st == nullptr) throw Napi::Error::New(a.env(), a.prefix() + name + "[" + std::to_string(k) + "] was disposed");
    out.push_back(st);
  }
  return out;
}

// sgdUpdateMany(momentum, nesterov, lr, params, grads, velocities | null, weightDecays): sgdUpdate
// of every parameter, with the rate read from the one-element storage lr (on their device), in
// launches of up to kSgdGroupMax parameters.
Napi::Value sgd_update_many(const Napi::CallbackInfo& info) {
  Args a(info, "sgdUpdateMany", 7);
  const float momentum = a.f32(0, "momentum");
  const bool nesterov = a.boolean(1, "nesterov");
  Storage& lr = a.storage(2, "lr");
  a.expect_numel(lr, 1, "lr");
  const std::vector<Storage*> params = storage_list(a, info, 3, "params");
  const std::vector<Storage*> grads = storage_list(a, info, 4, "grads");
  const bool has_velocity = !(info[5].IsNull() || info[5].IsUndefined());
  const std::vector<Storage*> velocities = has_velocity ? storage_list(a, info, 5, "velocities") : std::vector<Storage*>{};
  if (!info[6].IsArray()) throw Napi::TypeError::New(a.env(), a.prefix() + "weightDecays must be an array of numbers");
  Napi::Array decays = info[6].As<Napi::Array>();
  const size_t n = params.size();
  if (grads.size() != n || (has_velocity && velocities.size() != n) || decays.Length() != n) {
    throw Napi::RangeError::New(a.env(), a.prefix() + "params, grads, velocities and weightDecays must have one entry per parameter (" +
                                             std::to_string(n) + ")");
  }
  if (momentum != 0.0f && !has_velocity) throw Napi::TypeError::New(a.env(), a.prefix() + "momentum needs velocity buffers");
  SgdGroup g{};
  g.momentum = momentum;
  g.nesterov = nesterov;
  const Device d = lr.device();
  for (size_t k = 0; k < n; ++k) {
    Storage &p = *params[k], &gr = *grads[k];
    Storage* v = has_velocity ? velocities[k] : nullptr;
    const std::string at = "[" + std::to_string(k) + "]";
    a.expect_numel(gr, p.numel(), ("grads" + at).c_str());
    if (v) a.expect_numel(*v, p.numel(), ("velocities" + at).c_str());
    if (&p == &gr || v == &p || v == &gr) {
      throw Napi::TypeError::New(a.env(), a.prefix() + "param, grad and velocity " + at + " must be different storages");
    }
    if (a.same_device({&lr, &p, &gr, v}) != d) throw Napi::TypeError::New(a.env(), a.prefix() + "every storage must be on lr's device");
    Napi::Value wd = decays.Get(static_cast<uint32_t>(k));
    if (!wd.IsNumber() || !std::isfinite(wd.As<Napi::Number>().DoubleValue())) {
      throw Napi::RangeError::New(a.env(), a.prefix() + "weightDecays" + at + " must be a finite number");
    }
    g.items[g.count++] = SgdTensor{p.data("param"), gr.data("grad"), v ? v->data("velocity") : nullptr, p.numel(),
                                   static_cast<float>(wd.As<Napi::Number>().DoubleValue())};
    if (g.count == kSgdGroupMax || k + 1 == n) {
      KG_RUN(a, d, sgd_update_many(g, lr.data("lr")));
      g.count = 0;
    }
  }
  return info.Env().Undefined();
}

// adamUpdate(beta1, beta2, stepSize, eps, l2, decay, param, grad, m, v): the fields of AdamStep.
Napi::Value adam_update(const Napi::CallbackInfo& info) {
  Args a(info, "adamUpdate", 10);
  AdamStep s{};
  s.beta1 = a.f32(0, "beta1");
  s.beta2 = a.f32(1, "beta2");
  s.step_size = a.f32(2, "stepSize");
  s.eps = a.f32(3, "eps");
  s.l2 = a.f32(4, "l2");
  s.decay = a.f32(5, "decay");
  Storage &p = a.storage(6, "param"), &g = a.storage(7, "grad"), &m = a.storage(8, "m"), &v = a.storage(9, "v");
  a.expect_numel(g, p.numel(), "grad");
  a.expect_numel(m, p.numel(), "m");
  a.expect_numel(v, p.numel(), "v");
  // The CPU kernel reads and writes them as distinct arrays (__restrict).
  if (&p == &g || &p == &m || &p == &v || &g == &m || &g == &v || &m == &v) {
    throw Napi::TypeError::New(a.env(), a.prefix() + "param, grad, m and v must be four different storages");
  }
  Device d = a.same_device({&p, &g, &m, &v});
  KG_RUN(a, d, adam_update(p.numel(), s, p.data("param"), g.data("grad"), m.data("m"), v.data("v")));
  return info.Env().Undefined();
}

// l2Norm(x, out, index): out[index] = the Euclidean norm of x. Norms of many tensors go to one
// storage, which is read back once.
Napi::Value l2_norm(const Napi::CallbackInfo& info) {
  Args a(info, "l2Norm", 3);
  Storage &x = a.storage(0, "x"), &out = a.storage(1, "out");
  int64_t index = a.i64(2, "index");
  if (index >= out.numel()) {
    throw Napi::RangeError::New(a.env(), a.prefix() + "index " + std::to_string(index) + " is past the end of out (" +
                                             std::to_string(out.numel()) + " elements)");
  }
  Device d = a.same_device({&x, &out});
  KG_RUN(a, d, l2_norm(x.numel(), x.data("x"), out.data("out") + index));
  return info.Env().Undefined();
}

}  // namespace

void register_optim(Napi::Env env, Napi::Object exports) {
  exports.Set("sgdUpdate", Napi::Function::New<sgd_update>(env, "sgdUpdate"));
  exports.Set("sgdUpdateMany", Napi::Function::New<sgd_update_many>(env, "sgdUpdateMany"));
  exports.Set("adamUpdate", Napi::Function::New<adam_update>(env, "adamUpdate"));
  exports.Set("l2Norm", Napi::Function::New<l2_norm>(env, "l2Norm"));
}

}  // namespace kg
