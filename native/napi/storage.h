// Storage: a block of float32 memory on one device, owned by a JS object. Tensors in lib/ hold one
// each. Freed by dispose() at once, or by the garbage collector; V8 is told about the bytes so that
// large tensors make it collect sooner. The destructor may run while a worker's environment is
// torn down, so it only frees memory: no JS values, no handle scopes, nothing that throws.
#pragma once
#include <napi.h>
#include <cstdint>

namespace kg {

enum class Device : int { Cpu = 0, Cuda = 1 };

const char* device_name(Device d);

class Storage : public Napi::ObjectWrap<Storage> {
 public:
  static Napi::Function define(Napi::Env env);
  static bool is(Napi::Env env, Napi::Value v);

  explicit Storage(const Napi::CallbackInfo& info);
  ~Storage() override;

  Device device() const { return device_; }
  int64_t numel() const { return numel_; }
  bool disposed() const { return data_ == nullptr && numel_ > 0; }
  // The memory; throws a JS-ready error when the storage was disposed.
  float* data(const char* what) const;

 private:
  Napi::Value dispose(const Napi::CallbackInfo& info);
  Napi::Value read(const Napi::CallbackInfo& info);
  Napi::Value write(const Napi::CallbackInfo& info);
  Napi::Value copyFrom(const Napi::CallbackInfo& info);
  Napi::Value getNumel(const Napi::CallbackInfo& info);
  Napi::Value getDevice(const Napi::CallbackInfo& info);
  Napi::Value getDisposed(const Napi::CallbackInfo& info);
  void free_memory();

  Device device_ = Device::Cpu;
  int64_t numel_ = 0;
  float* data_ = nullptr;
  bool freed_ = false;
  Napi::Env env_;
};

}  // namespace kg
