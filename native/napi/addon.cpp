// Module entry point: the Storage class and the op bindings.
#include "addon.h"

#include "storage.h"

namespace kg {

static Napi::Object init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  Napi::Function storage = Storage::define(env);
  data->storage_ctor = Napi::Persistent(storage);
  env.SetInstanceData<AddonData>(data);  // deleted by Node when the environment goes away
  exports.Set("Storage", storage);
  register_linalg(env, exports);
  register_inference_chain(env, exports);
  register_batchnorm(env, exports);
  register_norms(env, exports);
  register_elementwise(env, exports);
  register_optim(env, exports);
  register_layers(env, exports);
  register_runtime(env, exports);
  register_graphs(env, exports);
  register_storage_reporting(env, exports);
  return exports;
}

}  // namespace kg

// NODE_API_MODULE pastes its argument into an identifier, so it needs an unqualified name.
static Napi::Object kernelgrad_init(Napi::Env env, Napi::Object exports) { return kg::init(env, exports); }
NODE_API_MODULE(kernelgrad, kernelgrad_init)
