// Storage: a block of float32 memory on one device, owned by a JS object. Tensors in lib/ hold one
// each. V8 is told about their bytes, so that large tensors left to the garbage collector make it
// collect sooner; those that kg.tidy frees at once are not announced (see the constructor).
//
// While live, the JS object carries its Storage through napi_wrap, whose finalizer frees the
// memory if the object is garbage collected. Under Node-API 8 that finalizer runs only when the
// event loop turns, and until then its bookkeeping (the wrap's reference and this object, a few
// hundred bytes) stays allocated even after the JS object is gone. So dispose() frees the memory
// and also removes the wrap, finalizer included: a disposed storage is a plain JS object that the
// garbage collector reclaims by itself, and a synchronous loop that disposes what it makes (as
// kg.tidy does) holds its memory flat without ever yielding.
//
// The finalizer may run while a worker's environment is torn down, so the destructor only frees
// memory: no JS values, no handle scopes, nothing that throws.
#pragma once
#include <napi.h>
#include <cstdint>

namespace kg {

enum class Device : int { Cpu = 0, Cuda = 1 };

const char* device_name(Device d);

class Storage {
 public:
  static Napi::Function define(Napi::Env env);
  // Whether v was made by the Storage constructor, live or disposed (by its type tag, which no
  // other object can carry).
  static bool is(Napi::Env env, Napi::Value v);
  // The live storage behind v; nullptr when v is no Storage or was disposed.
  static Storage* live(Napi::Env env, Napi::Value v);

  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  Device device() const { return device_; }
  int64_t numel() const { return numel_; }
  // The memory (nullptr for zero elements). `what` names the argument; a live storage always has
  // its memory, so this never fails.
  float* data(const char* what) const {
    (void)what;
    return data_;
  }

 private:
  Storage(napi_env env, Device device, int64_t numel, bool report);
  ~Storage();
  // Tells V8 about the bytes, once.
  void announce();

  static Napi::Value construct(const Napi::CallbackInfo& info);
  static void finalize(napi_env env, void* data, void* hint);
  static Napi::Value dispose(const Napi::CallbackInfo& info);
  static Napi::Value read(const Napi::CallbackInfo& info);
  static Napi::Value write(const Napi::CallbackInfo& info);
  static Napi::Value copyFrom(const Napi::CallbackInfo& info);
  static Napi::Value reportToGc(const Napi::CallbackInfo& info);
  static Napi::Value getNumel(const Napi::CallbackInfo& info);
  static Napi::Value getDevice(const Napi::CallbackInfo& info);
  static Napi::Value getDisposed(const Napi::CallbackInfo& info);
  // The live storage `this` of a method; throws when it is no Storage or was disposed.
  static Storage& self(const Napi::CallbackInfo& info, const char* method);

  napi_env env_;
  Device device_;
  int64_t numel_;
  float* data_ = nullptr;
  bool reported_ = false;  // whether V8 was told about the bytes
};

}  // namespace kg
