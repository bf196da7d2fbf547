// Per-environment state of the addon (worker threads each get their own), instead of globals.
#pragma once
#include <napi.h>

namespace kg {

struct AddonData {
  Napi::FunctionReference storage_ctor;
  // Whether new storages tell V8 about their bytes (Storage's constructor); off inside kg.tidy.
  bool report_allocations = true;
};

// Each file of bindings adds its functions to the module's exports.
void register_linalg(Napi::Env env, Napi::Object exports);
void register_inference_chain(Napi::Env env, Napi::Object exports);
void register_batchnorm(Napi::Env env, Napi::Object exports);
void register_norms(Napi::Env env, Napi::Object exports);
void register_elementwise(Napi::Env env, Napi::Object exports);
void register_optim(Napi::Env env, Napi::Object exports);
void register_layers(Napi::Env env, Napi::Object exports);
void register_runtime(Napi::Env env, Napi::Object exports);
void register_graphs(Napi::Env env, Napi::Object exports);
void register_storage_reporting(Napi::Env env, Napi::Object exports);

}  // namespace kg
