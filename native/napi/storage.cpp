#include "storage.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "addon.h"
#if KG_WITH_CUDA
#include "kg/cuda_runtime.h"
#endif

namespace kg {

const char* device_name(Device d) { return d == Device::Cuda ? "cuda" : "cpu"; }

namespace {
constexpr size_t kAlign = 64;  // one cache line, and a full AVX-512 vector

// Host blocks are aligned by hand over malloc rather than with aligned_alloc: glibc before 2.38
// often fails to reuse memalign'd blocks after free (its bug 14581), and a training loop that
// allocates and frees the same sizes every step then grows its heap by a whole step's worth of
// memory each step. The malloc'd pointer is kept just below the aligned one.
float* host_alloc(size_t bytes) {
  void* raw = std::malloc(bytes + kAlign + sizeof(void*));
  if (!raw) throw std::runtime_error("out of host memory allocating " + std::to_string(bytes) + " bytes");
  uintptr_t aligned = (reinterpret_cast<uintptr_t>(raw) + sizeof(void*) + kAlign - 1) & ~uintptr_t(kAlign - 1);
  reinterpret_cast<void**>(aligned)[-1] = raw;
  return reinterpret_cast<float*>(aligned);
}

void host_free(float* p) { std::free(reinterpret_cast<void**>(p)[-1]); }

float* allocate(Device device, int64_t numel) {
  if (numel == 0) return nullptr;
  size_t bytes = static_cast<size_t>(numel) * sizeof(float);
  if (device == Device::Cuda) {
#if KG_WITH_CUDA
    return static_cast<float*>(cuda::alloc(bytes));
#else
    throw std::runtime_error("kernelgrad was built without CUDA (nvcc was not found at install time)");
#endif
  }
  return host_alloc(bytes);
}
// Tells V8 about memory it cannot see, so a program holding large tensors collects sooner. Through
// the C call, whose status is ignored: this also runs from the destructor while a worker's
// environment is being torn down, where the C++ wrapper would throw, and a throw would abort.
void report_bytes(napi_env env, int64_t numel) {
  int64_t total = 0;
  (void)napi_adjust_external_memory(env, numel * static_cast<int64_t>(sizeof(float)), &total);
}
}  // namespace

Napi::Function Storage::define(Napi::Env env) {
  return DefineClass(env, "Storage",
                     {InstanceMethod<&Storage::dispose>("dispose"),
                      InstanceMethod<&Storage::read>("read"),
                      InstanceMethod<&Storage::write>("write"),
                      InstanceMethod<&Storage::copyFrom>("copyFrom"),
                      InstanceAccessor<&Storage::getNumel>("numel"),
                      InstanceAccessor<&Storage::getDevice>("device"),
                      InstanceAccessor<&Storage::getDisposed>("disposed")});
}

bool Storage::is(Napi::Env env, Napi::Value v) {
  if (!v.IsObject()) return false;
  return v.As<Napi::Object>().InstanceOf(env.GetInstanceData<AddonData>()->storage_ctor.Value());
}

// new Storage(device: 0 | 1, numel: number)
Storage::Storage(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Storage>(info), env_(info.Env()) {
  Napi::Env env = info.Env();
  if (info.Length() != 2 || !info[0].IsNumber() || !info[1].IsNumber()) {
    throw Napi::TypeError::New(env, "Storage(device, numel): expected two numbers");
  }
  double dev = info[0].As<Napi::Number>().DoubleValue();
  double numel = info[1].As<Napi::Number>().DoubleValue();
  if (dev != 0 && dev != 1) throw Napi::RangeError::New(env, "Storage: device must be 0 (cpu) or 1 (cuda)");
  if (!(numel >= 0 && numel <= 9.0e15) || numel != std::floor(numel)) {
    throw Napi::RangeError::New(env, "Storage: numel must be a non-negative integer, got " + std::to_string(numel));
  }
  device_ = static_cast<Device>(static_cast<int>(dev));
  numel_ = static_cast<int64_t>(numel);
  try {
    data_ = allocate(device_, numel_);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  report_bytes(env, numel_);
}

Storage::~Storage() { free_memory(); }

void Storage::free_memory() {
  if (freed_) return;
  freed_ = true;
  if (data_) {
    if (device_ == Device::Cuda) {
#if KG_WITH_CUDA
      cuda::release(data_);
#endif
    } else {
      host_free(data_);
    }
    data_ = nullptr;
  }
  report_bytes(env_, -numel_);
}

float* Storage::data(const char* what) const {
  if (freed_) throw Napi::Error::New(env_, std::string(what) + ": the tensor's memory was disposed");
  return data_;
}

Napi::Value Storage::dispose(const Napi::CallbackInfo& info) {
  free_memory();
  return info.Env().Undefined();
}

Napi::Value Storage::read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  float* src = data("read");
  auto out = Napi::Float32Array::New(env, static_cast<size_t>(numel_));
  size_t bytes = static_cast<size_t>(numel_) * sizeof(float);
  if (bytes == 0) return out;
  if (device_ == Device::Cuda) {
#if KG_WITH_CUDA
    try {
      cuda::copy_d2h(out.Data(), src, bytes);
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
#endif
  } else {
    std::memcpy(out.Data(), src, bytes);
  }
  return out;
}

Napi::Value Storage::write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    throw Napi::TypeError::New(env, "Storage.write: expected one Float32Array");
  }
  auto src = info[0].As<Napi::Float32Array>();
  if (static_cast<int64_t>(src.ElementLength()) != numel_) {
    throw Napi::RangeError::New(env, "Storage.write: got " + std::to_string(src.ElementLength()) +
                                         " values for a storage of " + std::to_string(numel_));
  }
  float* dst = data("write");
  size_t bytes = static_cast<size_t>(numel_) * sizeof(float);
  if (bytes == 0) return env.Undefined();
  if (device_ == Device::Cuda) {
#if KG_WITH_CUDA
    try {
      cuda::copy_h2d(dst, src.Data(), bytes);
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
#endif
  } else {
    std::memcpy(dst, src.Data(), bytes);
  }
  return env.Undefined();
}

// this.copyFrom(other): same number of elements, any pair of devices.
Napi::Value Storage::copyFrom(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !Storage::is(env, info[0])) {
    throw Napi::TypeError::New(env, "Storage.copyFrom: expected one Storage");
  }
  Storage* src = Storage::Unwrap(info[0].As<Napi::Object>());
  if (src->numel_ != numel_) {
    throw Napi::RangeError::New(env, "Storage.copyFrom: sizes differ (" + std::to_string(src->numel_) +
                                         " vs " + std::to_string(numel_) + ")");
  }
  float* s = src->data("copyFrom");
  float* d = data("copyFrom");
  size_t bytes = static_cast<size_t>(numel_) * sizeof(float);
  if (bytes == 0) return env.Undefined();
  try {
    if (device_ == Device::Cpu && src->device_ == Device::Cpu) {
      std::memcpy(d, s, bytes);
    } else {
#if KG_WITH_CUDA
      if (device_ == Device::Cuda && src->device_ == Device::Cuda) cuda::copy_d2d(d, s, bytes);
      else if (device_ == Device::Cuda) cuda::copy_h2d(d, s, bytes);
      else cuda::copy_d2h(d, s, bytes);
#endif
    }
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  return env.Undefined();
}

Napi::Value Storage::getNumel(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(numel_));
}
Napi::Value Storage::getDevice(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), device_name(device_));
}
Napi::Value Storage::getDisposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), freed_);
}

}  // namespace kg
