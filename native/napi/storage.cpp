#include "storage.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "../cpu/host_allocator.h"
#include "addon.h"
#if KG_WITH_CUDA
#include "kg/cuda_runtime.h"
#endif

namespace kg {

const char* device_name(Device d) { return d == Device::Cuda ? "cuda" : "cpu"; }

namespace {

// Marks the objects the constructor made, so that a look-alike (Object.create(Storage.prototype),
// or an object another addon wrapped) is never taken for a Storage.
constexpr napi_type_tag kStorageTag = {0x6b67'5374'6f72'6167ull, 0x65d1'0b3a'9f42'7c15ull};

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
  try {
    return cpu::host_alloc(bytes);
  } catch (const std::bad_alloc&) {
    throw std::runtime_error("out of host memory allocating " + std::to_string(bytes) + " bytes");
  }
}

// Tells V8 about memory it cannot see, so a program holding large tensors collects sooner. Through
// the C call, whose status is ignored: this also runs from the destructor while a worker's
// environment is being torn down, where the C++ wrapper would throw, and a throw would abort.
void report_bytes(napi_env env, int64_t numel) {
  int64_t total = 0;
  (void)napi_adjust_external_memory(env, numel * static_cast<int64_t>(sizeof(float)), &total);
}

// A binding's body as a Node-API callback: a Napi::Error it throws becomes the JS exception.
template <Napi::Value (*F)(const Napi::CallbackInfo&)>
napi_value guarded(napi_env env, napi_callback_info cb) {
  try {
    Napi::CallbackInfo info(env, cb);
    return F(info);
  } catch (const Napi::Error& e) {
    e.ThrowAsJavaScriptException();
    return nullptr;
  }
}

template <Napi::Value (*F)(const Napi::CallbackInfo&)>
napi_property_descriptor method(const char* name) {
  return {name, nullptr, guarded<F>, nullptr, nullptr, nullptr, napi_default_method, nullptr};
}

template <Napi::Value (*F)(const Napi::CallbackInfo&)>
napi_property_descriptor getter(const char* name) {
  return {name, nullptr, nullptr, guarded<F>, nullptr, nullptr, napi_configurable, nullptr};
}
}  // namespace

Napi::Function Storage::define(Napi::Env env) {
  const napi_property_descriptor props[] = {
      method<&Storage::dispose>("dispose"),   method<&Storage::read>("read"),
      method<&Storage::write>("write"),       method<&Storage::copyFrom>("copyFrom"),
      method<&Storage::reportToGc>("reportToGc"),
      getter<&Storage::getNumel>("numel"),    getter<&Storage::getDevice>("device"),
      getter<&Storage::getDisposed>("disposed"),
  };
  napi_value ctor = nullptr;
  napi_status status = napi_define_class(env, "Storage", NAPI_AUTO_LENGTH, guarded<&Storage::construct>, nullptr,
                                         sizeof(props) / sizeof(props[0]), props, &ctor);
  NAPI_THROW_IF_FAILED(env, status, Napi::Function());
  return Napi::Function(env, ctor);
}

bool Storage::is(Napi::Env env, Napi::Value v) {
  if (!v.IsObject()) return false;
  bool tagged = false;
  return napi_check_object_type_tag(env, v, &kStorageTag, &tagged) == napi_ok && tagged;
}

Storage* Storage::live(Napi::Env env, Napi::Value v) {
  if (!is(env, v)) return nullptr;
  void* p = nullptr;
  // Fails (without throwing) once dispose() removed the wrap.
  if (napi_unwrap(env, v, &p) != napi_ok) return nullptr;
  return static_cast<Storage*>(p);
}

// V8 hears of a storage's bytes at once unless kg.tidy has turned that off (setGcReporting) for
// the storages it will free itself when its function returns; it announces the ones that outlive
// it (reportToGc). A training step allocates and frees its activations every time: announced, each
// step's peak looked like new external memory to V8, which started a full collection every step
// (the MNIST race took 7.9 s instead of about 6.3).
Storage::Storage(napi_env env, Device device, int64_t numel, bool report)
    : env_(env), device_(device), numel_(numel) {
  data_ = allocate(device_, numel_);
  if (report) announce();
}

void Storage::announce() {
  if (reported_) return;
  report_bytes(env_, numel_);
  reported_ = true;
}

Storage::~Storage() {
  if (data_) {
    if (device_ == Device::Cuda) {
#if KG_WITH_CUDA
      cuda::release(data_);
#endif
    } else {
      cpu::host_release(data_);
    }
  }
  if (reported_) report_bytes(env_, -numel_);
}

void Storage::finalize(napi_env, void* data, void*) { delete static_cast<Storage*>(data); }

// new Storage(device: 0 | 1, numel: number)
Napi::Value Storage::construct(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.NewTarget().IsEmpty() || info.NewTarget().IsUndefined()) {
    throw Napi::TypeError::New(env, "Storage(device, numel): call it with new");
  }
  if (info.Length() != 2 || !info[0].IsNumber() || !info[1].IsNumber()) {
    throw Napi::TypeError::New(env, "Storage(device, numel): expected two numbers");
  }
  double dev = info[0].As<Napi::Number>().DoubleValue();
  double numel = info[1].As<Napi::Number>().DoubleValue();
  if (dev != 0 && dev != 1) throw Napi::RangeError::New(env, "Storage: device must be 0 (cpu) or 1 (cuda)");
  if (!(numel >= 0 && numel <= 9.0e15) || numel != std::floor(numel)) {
    throw Napi::RangeError::New(env, "Storage: numel must be a non-negative integer, got " + std::to_string(numel));
  }
  Napi::Object self = info.This().As<Napi::Object>();
  if (is(env, self)) throw Napi::TypeError::New(env, "Storage(device, numel): this object is already a Storage");
  Storage* s = nullptr;
  try {
    s = new Storage(env, static_cast<Device>(static_cast<int>(dev)), static_cast<int64_t>(numel),
                    env.GetInstanceData<AddonData>()->report_allocations);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  napi_status status = napi_wrap(env, self, s, &Storage::finalize, nullptr, nullptr);
  if (status != napi_ok) {
    delete s;
    NAPI_THROW_IF_FAILED(env, status, Napi::Value());
  }
  status = napi_type_tag_object(env, self, &kStorageTag);
  if (status != napi_ok) {
    // The wrap owns s now. Removing it fails where Node-API can no longer run JavaScript (a
    // worker being terminated, which is also when the tag fails): then the wrap's finalizer
    // deletes s at the environment's teardown, and deleting it here too would free it twice.
    void* unused = nullptr;
    if (napi_remove_wrap(env, self, &unused) == napi_ok) delete s;
    NAPI_THROW_IF_FAILED(env, status, Napi::Value());
  }
  return env.Undefined();
}

Storage& Storage::self(const Napi::CallbackInfo& info, const char* method) {
  Napi::Env env = info.Env();
  Storage* s = live(env, info.This());
  if (s != nullptr) return *s;
  if (is(env, info.This())) throw Napi::Error::New(env, std::string("Storage.") + method + ": the tensor's memory was disposed");
  throw Napi::TypeError::New(env, std::string("Storage.") + method + ": `this` is not a Storage");
}

Napi::Value Storage::dispose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Storage* s = live(env, info.This());
  if (s == nullptr) {
    if (!is(env, info.This())) throw Napi::TypeError::New(env, "Storage.dispose: `this` is not a Storage");
    return env.Undefined();  // disposed already
  }
  void* unused = nullptr;
  NAPI_THROW_IF_FAILED(env, napi_remove_wrap(env, info.This(), &unused), Napi::Value());
  delete s;
  return env.Undefined();
}

// storage.reportToGc(): tells V8 about the bytes of a storage made while reporting was off, once.
Napi::Value Storage::reportToGc(const Napi::CallbackInfo& info) {
  self(info, "reportToGc").announce();
  return info.Env().Undefined();
}

Napi::Value Storage::read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Storage& s = self(info, "read");
  auto out = Napi::Float32Array::New(env, static_cast<size_t>(s.numel_));
  size_t bytes = static_cast<size_t>(s.numel_) * sizeof(float);
  if (bytes == 0) return out;
  if (s.device_ == Device::Cuda) {
#if KG_WITH_CUDA
    try {
      cuda::copy_d2h(out.Data(), s.data_, bytes);
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
#endif
  } else {
    std::memcpy(out.Data(), s.data_, bytes);
  }
  return out;
}

Napi::Value Storage::write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Storage& s = self(info, "write");
  if (info.Length() != 1 || !info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    throw Napi::TypeError::New(env, "Storage.write: expected one Float32Array");
  }
  auto src = info[0].As<Napi::Float32Array>();
  if (static_cast<int64_t>(src.ElementLength()) != s.numel_) {
    throw Napi::RangeError::New(env, "Storage.write: got " + std::to_string(src.ElementLength()) +
                                         " values for a storage of " + std::to_string(s.numel_));
  }
  size_t bytes = static_cast<size_t>(s.numel_) * sizeof(float);
  if (bytes == 0) return env.Undefined();
  if (s.device_ == Device::Cuda) {
#if KG_WITH_CUDA
    try {
      cuda::copy_h2d(s.data_, src.Data(), bytes);
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
#endif
  } else {
    std::memcpy(s.data_, src.Data(), bytes);
  }
  return env.Undefined();
}

// this.copyFrom(other): same number of elements, any pair of devices.
Napi::Value Storage::copyFrom(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Storage& dst = self(info, "copyFrom");
  if (info.Length() != 1 || !Storage::is(env, info[0])) {
    throw Napi::TypeError::New(env, "Storage.copyFrom: expected one Storage");
  }
  Storage* src = live(env, info[0]);
  if (src == nullptr) throw Napi::Error::New(env, "Storage.copyFrom: the source's memory was disposed");
  if (src->numel_ != dst.numel_) {
    throw Napi::RangeError::New(env, "Storage.copyFrom: sizes differ (" + std::to_string(src->numel_) +
                                         " vs " + std::to_string(dst.numel_) + ")");
  }
  size_t bytes = static_cast<size_t>(dst.numel_) * sizeof(float);
  if (bytes == 0 || src == &dst) return env.Undefined();
  try {
    if (dst.device_ == Device::Cpu && src->device_ == Device::Cpu) {
      std::memcpy(dst.data_, src->data_, bytes);
    } else {
#if KG_WITH_CUDA
      if (dst.device_ == Device::Cuda && src->device_ == Device::Cuda) cuda::copy_d2d(dst.data_, src->data_, bytes);
      else if (dst.device_ == Device::Cuda) cuda::copy_h2d(dst.data_, src->data_, bytes);
      else cuda::copy_d2h(dst.data_, src->data_, bytes);
#endif
    }
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  return env.Undefined();
}

// A disposed storage has no elements and no device left.
Napi::Value Storage::getNumel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Storage* s = live(env, info.This());
  if (s == nullptr && !is(env, info.This())) throw Napi::TypeError::New(env, "Storage.numel: `this` is not a Storage");
  return Napi::Number::New(env, s ? static_cast<double>(s->numel_) : 0.0);
}
Napi::Value Storage::getDevice(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), device_name(self(info, "device").device_));
}
Napi::Value Storage::getDisposed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!is(env, info.This())) throw Napi::TypeError::New(env, "Storage.disposed: `this` is not a Storage");
  return Napi::Boolean::New(env, live(env, info.This()) == nullptr);
}

// setGcReporting(on): whether storages made from now on tell V8 about their bytes (kg.tidy turns it
// off for the storages it frees itself).
static Napi::Value set_gc_reporting(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsBoolean()) throw Napi::TypeError::New(env, "kernelgrad.setGcReporting: expected one boolean");
  env.GetInstanceData<AddonData>()->report_allocations = info[0].As<Napi::Boolean>().Value();
  return env.Undefined();
}

void register_storage_reporting(Napi::Env env, Napi::Object exports) {
  exports.Set("setGcReporting", Napi::Function::New<set_gc_reporting>(env, "setGcReporting"));
}

}  // namespace kg
