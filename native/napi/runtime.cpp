// Bindings that describe and manage the machine: CUDA devices and memory, CPU threads.
#include "addon.h"
#include "args.h"
#include "../cpu/host_allocator.h"
#include "../cpu/isa.h"
#include "../cpu/simd.h"
#include "../cpu/thread_pool.h"
#if KG_WITH_CUDA
#include "kg/cuda_runtime.h"
#endif

namespace kg {
namespace {

Napi::Value built_with_cuda(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), KG_WITH_CUDA != 0);
}

// cudaDevices(): { devices: [{ index, name, totalMemory, major, minor, emulated }], error,
// errorName, driverVersion, runtimeVersion }. No driver or no GPU: no devices, and `error` says
// why (empty when the runtime could count the devices, and in a build without CUDA).
Napi::Value cuda_devices(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto out = Napi::Object::New(env);
  auto list = Napi::Array::New(env);
#if KG_WITH_CUDA
  const cuda::DeviceQuery q = cuda::query_devices();
  uint32_t i = 0;
  for (const auto& d : q.devices) {
    auto o = Napi::Object::New(env);
    o.Set("index", d.index);
    o.Set("name", d.name);
    o.Set("totalMemory", static_cast<double>(d.total_memory));
    o.Set("major", d.major);
    o.Set("minor", d.minor);
    o.Set("emulated", d.emulated);
    list.Set(i++, o);
  }
  out.Set("error", q.error);
  out.Set("errorName", q.error_name);
  out.Set("driverVersion", q.driver_version);
  out.Set("runtimeVersion", q.runtime_version);
#else
  out.Set("error", "");
  out.Set("errorName", "");
  out.Set("driverVersion", 0);
  out.Set("runtimeVersion", 0);
#endif
  out.Set("devices", list);
  return out;
}

#if KG_WITH_CUDA
// Whether this machine has a GPU. The synchronize and cache calls promise to be harmless without
// one, but the runtime under them would first try to create the library's stream, and fail.
bool have_gpu() {
  static const bool present = !cuda::devices().empty();
  return present;
}
#endif

Napi::Value cuda_memory_stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto o = Napi::Object::New(env);
#if KG_WITH_CUDA
  auto s = cuda::memory_stats();
  o.Set("allocated", static_cast<double>(s.allocated));
  o.Set("reserved", static_cast<double>(s.reserved));
  o.Set("peakAllocated", static_cast<double>(s.peak_allocated));
  o.Set("peakReserved", static_cast<double>(s.peak_reserved));
  o.Set("numMallocs", static_cast<double>(s.num_mallocs));
#else
  for (const char* k : {"allocated", "reserved", "peakAllocated", "peakReserved", "numMallocs"}) o.Set(k, 0);
#endif
  return o;
}

Napi::Value cuda_empty_cache(const Napi::CallbackInfo& info) {
#if KG_WITH_CUDA
  if (!have_gpu()) return info.Env().Undefined();
  try {
    cuda::empty_cache();
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), std::string("kernelgrad.cudaEmptyCache: ") + e.what());
  }
#endif
  return info.Env().Undefined();
}

Napi::Value cuda_synchronize(const Napi::CallbackInfo& info) {
#if KG_WITH_CUDA
  if (!have_gpu()) return info.Env().Undefined();
  try {
    cuda::synchronize();
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), std::string("kernelgrad.cudaSynchronize: ") + e.what());
  }
#endif
  return info.Env().Undefined();
}

// hostMemoryStats(): the host caching allocator's counters (native/cpu/host_allocator.h), in bytes.
Napi::Value host_memory_stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const cpu::HostMemoryStats s = cpu::host_memory_stats();
  auto o = Napi::Object::New(env);
  o.Set("allocated", static_cast<double>(s.allocated));
  o.Set("reserved", static_cast<double>(s.reserved));
  o.Set("peakAllocated", static_cast<double>(s.peak_allocated));
  o.Set("peakReserved", static_cast<double>(s.peak_reserved));
  o.Set("numMallocs", static_cast<double>(s.num_mallocs));
  o.Set("numReuses", static_cast<double>(s.num_reuses));
  return o;
}

Napi::Value host_empty_cache(const Napi::CallbackInfo& info) {
  cpu::host_empty_cache();
  return info.Env().Undefined();
}

// The number of threads the CPU kernels use.
Napi::Value cpu_threads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), cpu::pool_threads());
}

// More threads than any machine runs well (a million would exhaust the process's threads).
constexpr int64_t kMaxCpuThreads = 1024;

// The instruction set of the CPU kernels' hand-vectorized paths: "avx512", "avx2" or "baseline".
Napi::Value cpu_isa(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), cpu::isa_name(cpu::cpu_isa())); }

// Whether the hot loops marked KG_MULTIVERSION (simd.h) carry an AVX2 + FMA clone beside the
// baseline code: false in the build that tests the fallback (npm run build:baseline).
Napi::Value cpu_multiversioned(const Napi::CallbackInfo& info) {
#if defined(KG_MULTIVERSION_ENABLED)
  return Napi::Boolean::New(info.Env(), true);
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

Napi::Value set_cpu_threads(const Napi::CallbackInfo& info) {
  Args a(info, "setCpuThreads", 1);
  int64_t n = a.i64(0, "threads", 1);
  if (n > kMaxCpuThreads) {
    throw Napi::RangeError::New(a.env(), a.prefix() + "threads must be at most " + std::to_string(kMaxCpuThreads) +
                                             ", got " + std::to_string(n));
  }
  cpu::set_pool_threads(static_cast<int>(n));
  return info.Env().Undefined();
}

}  // namespace

void register_runtime(Napi::Env env, Napi::Object exports) {
  exports.Set("builtWithCuda", Napi::Function::New<built_with_cuda>(env, "builtWithCuda"));
  exports.Set("cudaDevices", Napi::Function::New<cuda_devices>(env, "cudaDevices"));
  exports.Set("cudaMemoryStats", Napi::Function::New<cuda_memory_stats>(env, "cudaMemoryStats"));
  exports.Set("cudaEmptyCache", Napi::Function::New<cuda_empty_cache>(env, "cudaEmptyCache"));
  exports.Set("cudaSynchronize", Napi::Function::New<cuda_synchronize>(env, "cudaSynchronize"));
  exports.Set("hostMemoryStats", Napi::Function::New<host_memory_stats>(env, "hostMemoryStats"));
  exports.Set("hostEmptyCache", Napi::Function::New<host_empty_cache>(env, "hostEmptyCache"));
  exports.Set("cpuThreads", Napi::Function::New<cpu_threads>(env, "cpuThreads"));
  exports.Set("cpuIsa", Napi::Function::New<cpu_isa>(env, "cpuIsa"));
  exports.Set("cpuMultiversioned", Napi::Function::New<cpu_multiversioned>(env, "cpuMultiversioned"));
  exports.Set("setCpuThreads", Napi::Function::New<set_cpu_threads>(env, "setCpuThreads"));
}

}  // namespace kg
