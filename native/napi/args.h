// Defensive unpacking of a binding's arguments. Every op binding starts with `Args a(info, "name", n)`
// and reads its arguments through it: a wrong count, a wrong type, a disposed storage, a storage too
// small for the shapes or storages on different devices throw a JS TypeError/RangeError that names
// the op, never a crash. The TypeScript layer checks shapes first with friendlier messages; these
// checks are the last line that keeps bad calls away from the kernels.
#pragma once
#include <napi.h>

#include <cmath>
#include <initializer_list>
#include <iomanip>
#include <sstream>
#include <string>
#include <vector>

#include "storage.h"

namespace kg {

class Args {
 public:
  Args(const Napi::CallbackInfo& info, const char* op, size_t count) : info_(info), op_(op) {
    if (info.Length() != count) {
      throw Napi::TypeError::New(env(), prefix() + "expected " + std::to_string(count) + " arguments, got " +
                                            std::to_string(info.Length()));
    }
  }

  Napi::Env env() const { return info_.Env(); }

  Storage& storage(size_t i, const char* name) const {
    if (!Storage::is(env(), info_[i])) {
      throw Napi::TypeError::New(env(), prefix() + name + " must be a Storage");
    }
    Storage* s = Storage::live(env(), info_[i]);
    if (s == nullptr) throw Napi::Error::New(env(), prefix() + name + " was disposed");
    return *s;
  }
  // null or undefined gives nullptr.
  Storage* optional_storage(size_t i, const char* name) const {
    if (info_[i].IsNull() || info_[i].IsUndefined()) return nullptr;
    return &storage(i, name);
  }

  // An integer in [min, kMaxSize]: a size, an index or a stride.
  int64_t i64(size_t i, const char* name, int64_t min = 0) const {
    if (!info_[i].IsNumber()) throw Napi::TypeError::New(env(), prefix() + name + " must be a number");
    double v = info_[i].As<Napi::Number>().DoubleValue();
    if (!is_size(v) || v < static_cast<double>(min)) {
      throw Napi::RangeError::New(env(), prefix() + name + " must be an integer in [" + std::to_string(min) + ", 2^53], got " +
                                             number(v));
    }
    return static_cast<int64_t>(v);
  }
  float f32(size_t i, const char* name) const {
    if (!info_[i].IsNumber()) throw Napi::TypeError::New(env(), prefix() + name + " must be a number");
    double v = info_[i].As<Napi::Number>().DoubleValue();
    if (!std::isfinite(v)) throw Napi::RangeError::New(env(), prefix() + name + " must be finite");
    return static_cast<float>(v);
  }
  // A finite number kept in double, for host-side weights that are rounded to float only after
  // some arithmetic.
  double f64(size_t i, const char* name) const {
    if (!info_[i].IsNumber()) throw Napi::TypeError::New(env(), prefix() + name + " must be a number");
    double v = info_[i].As<Napi::Number>().DoubleValue();
    if (!std::isfinite(v)) throw Napi::RangeError::New(env(), prefix() + name + " must be finite");
    return v;
  }
  // An array of exactly `len` non-negative integers (a shape description).
  std::vector<int64_t> ints(size_t i, const char* name, size_t len) const {
    if (!info_[i].IsArray()) throw Napi::TypeError::New(env(), prefix() + name + " must be an array");
    auto arr = info_[i].As<Napi::Array>();
    if (arr.Length() != len) {
      throw Napi::RangeError::New(env(), prefix() + name + " must have " + std::to_string(len) + " entries");
    }
    std::vector<int64_t> out(len);
    for (uint32_t j = 0; j < len; ++j) {
      Napi::Value v = arr.Get(j);
      double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1.0;
      if (!is_size(d)) {
        throw Napi::RangeError::New(env(), prefix() + name + "[" + std::to_string(j) +
                                               "] must be an integer in [0, 2^53], got " +
                                               (v.IsNumber() ? number(d) : std::string("a non-number")));
      }
      out[j] = static_cast<int64_t>(d);
    }
    return out;
  }
  bool boolean(size_t i, const char* name) const {
    if (!info_[i].IsBoolean()) throw Napi::TypeError::New(env(), prefix() + name + " must be a boolean");
    return info_[i].As<Napi::Boolean>().Value();
  }

  // The product of sizes (each in [0, kMaxSize], as i64() and ints() return them). A product past
  // kMaxSize is no storage's size: refused here, so it can never wrap and match a small storage.
  int64_t numel(std::initializer_list<int64_t> sizes, const char* what) const {
    int64_t p = 1;
    for (int64_t d : sizes) {
      if (d == 0) return 0;
    }
    for (int64_t d : sizes) {
      if (__builtin_mul_overflow(p, d, &p) || p > kMaxSize) {
        std::string list;
        for (int64_t e : sizes) list += (list.empty() ? "" : " x ") + std::to_string(e);
        throw Napi::RangeError::New(env(), prefix() + "the sizes of " + what + " (" + list +
                                               ") multiply to more than 2^53 elements");
      }
    }
    return p;
  }
  // a + b * c for sizes and strides, refused past kMaxSize like numel().
  int64_t extent(int64_t a, int64_t b, int64_t c, const char* what) const {
    int64_t bc = numel({b, c}, what), out = 0;
    if (__builtin_add_overflow(a, bc, &out) || out > kMaxSize) {
      throw Napi::RangeError::New(env(), prefix() + "the sizes of " + what + " reach past 2^53 elements");
    }
    return out;
  }

  // The storage must hold exactly the product of `sizes` elements.
  void expect_numel(const Storage& s, std::initializer_list<int64_t> sizes, const char* name) const {
    expect_numel(s, numel(sizes, name), name);
  }
  void expect_numel(const Storage& s, int64_t numel, const char* name) const {
    if (s.numel() != numel) {
      throw Napi::RangeError::New(env(), prefix() + name + " has " + std::to_string(s.numel()) +
                                             " elements, the shapes need " + std::to_string(numel));
    }
  }

  // All storages on one device (null entries skipped); returns it.
  Device same_device(std::initializer_list<const Storage*> all) const { return same_device<>(all); }
  template <class Storages = std::initializer_list<const Storage*>>
  Device same_device(const Storages& all) const {
    const Storage* first = nullptr;
    for (const Storage* s : all) {
      if (!s) continue;
      if (!first) first = s;
      else if (s->device() != first->device()) {
        throw Napi::Error::New(env(), prefix() + "operands are on different devices (" +
                                          device_name(first->device()) + " and " + device_name(s->device()) +
                                          "); move them with .to(device) first");
      }
    }
    return first ? first->device() : Device::Cpu;
  }

  std::string prefix() const { return std::string("kernelgrad.") + op_ + ": "; }

  // A number as JavaScript prints it for the usual cases: 3, 1000000000, 0.5, NaN, -Infinity.
  static std::string number(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
    std::ostringstream o;
    if (v == std::floor(v) && std::fabs(v) < 1e21) o << std::fixed << std::setprecision(0) << v;
    else o << std::setprecision(17) << v;
    return o.str();
  }

  // Every size, stride and index is at most 2^53 (the integers a JS number holds exactly), so a
  // sum of a few of them never overflows int64 and products go through numel().
  static constexpr int64_t kMaxSize = int64_t{1} << 53;

 private:
  static bool is_size(double v) { return std::isfinite(v) && v == std::floor(v) && v >= 0 && v <= double(kMaxSize); }

  const Napi::CallbackInfo& info_;
  const char* op_;
};

// Runs a CPU kernel, turning C++ exceptions (out of memory) into JS errors that name the op.
#define KG_RUN_CPU(args, call)                                                       \
  do {                                                                               \
    try {                                                                            \
      ::kg::cpu::call;                                                               \
    } catch (const Napi::Error&) {                                                   \
      throw;                                                                         \
    } catch (const std::exception& e) {                                              \
      throw Napi::Error::New((args).env(), (args).prefix() + e.what());              \
    }                                                                                \
  } while (0)

// Runs a kernel on the device of its operands, turning C++ exceptions (CUDA errors, out of memory)
// into JS errors that name the op. In a build without CUDA no storage can live on the GPU.
#if KG_WITH_CUDA
#define KG_RUN(args, device, call)                                                   \
  do {                                                                               \
    try {                                                                            \
      if ((device) == ::kg::Device::Cuda) ::kg::cuda::call;                          \
      else ::kg::cpu::call;                                                          \
    } catch (const Napi::Error&) {                                                   \
      throw;                                                                         \
    } catch (const std::exception& e) {                                              \
      throw Napi::Error::New((args).env(), (args).prefix() + e.what());              \
    }                                                                                \
  } while (0)
#else
#define KG_RUN(args, device, call) \
  do {                             \
    (void)(device);                \
    KG_RUN_CPU(args, call);        \
  } while (0)
#endif

}  // namespace kg
