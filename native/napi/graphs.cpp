// Bindings of CUDA graph capture, the page-locked readback of results, and the work counters.
// Graphs and readbacks are handed to JS as externals whose finalizers free them; dispose frees
// one earlier. In a build without CUDA only the counters exist (all zero).
#include <cstring>
#include <memory>
#include <string>

#include "addon.h"
#include "args.h"
#if KG_WITH_CUDA
#include "kg/cuda_runtime.h"
#endif

namespace kg {
namespace {

Napi::Value cuda_counters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto o = Napi::Object::New(env);
#if KG_WITH_CUDA
  const cuda::Counters c = cuda::counters();
  o.Set("kernelLaunches", static_cast<double>(c.kernel_launches));
  o.Set("graphReplays", static_cast<double>(c.graph_replays));
  o.Set("graphKernels", static_cast<double>(c.graph_kernels));
  o.Set("hostSyncs", static_cast<double>(c.host_syncs));
  o.Set("eventWaits", static_cast<double>(c.event_waits));
#else
  for (const char* k : {"kernelLaunches", "graphReplays", "graphKernels", "hostSyncs", "eventWaits"}) o.Set(k, 0);
#endif
  return o;
}

#if KG_WITH_CUDA

// Runs `body`, turning a CudaError into a JS Error that names the binding.
template <class F>
auto guarded(Napi::Env env, const char* name, F body) -> decltype(body()) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("kernelgrad.") + name + ": " + e.what());
  }
}

// What an external points at: the object, or null once disposed.
template <class T>
struct Holder {
  std::unique_ptr<T, void (*)(T*)> object;
};

void destroy_graph(cuda::Graph* g) { cuda::destroy(g); }
void destroy_readback(cuda::Readback* r) { delete r; }

// Each kind of external carries its own type tag, so that a graph is never taken for a readback
// (or any other addon's external for either).
template <class T>
const napi_type_tag* tag_of();
template <>
const napi_type_tag* tag_of<cuda::Graph>() {
  static const napi_type_tag tag{0x6b67677261706821ull, 0x1f3a9c2d4e5b6071ull};
  return &tag;
}
template <>
const napi_type_tag* tag_of<cuda::Readback>() {
  static const napi_type_tag tag{0x6b67726561646261ull, 0x2e4b8d1c3f5a6972ull};
  return &tag;
}

template <class T>
Napi::External<Holder<T>> wrap(Napi::Env env, T* object, void (*destroy)(T*)) {
  auto e = Napi::External<Holder<T>>::New(env, new Holder<T>{{object, destroy}}, [](Napi::Env, Holder<T>* h) { delete h; });
  e.TypeTag(tag_of<T>());
  return e;
}

// The holder of argument 0 when it is an external of kind T, else a TypeError.
template <class T>
Holder<T>* holder(const Napi::CallbackInfo& info, const char* name, const char* what) {
  if (info.Length() < 1 || !info[0].IsExternal() || !info[0].As<Napi::External<Holder<T>>>().CheckTypeTag(tag_of<T>())) {
    throw Napi::TypeError::New(info.Env(), std::string("kernelgrad.") + name + ": expected a " + what);
  }
  return info[0].As<Napi::External<Holder<T>>>().Data();
}

template <class T>
T& unwrap(const Napi::CallbackInfo& info, const char* name, const char* what) {
  Holder<T>* h = holder<T>(info, name, what);
  if (!h->object) throw Napi::Error::New(info.Env(), std::string("kernelgrad.") + name + ": the " + what + " was disposed");
  return *h->object;
}

Napi::Value capture_begin(const Napi::CallbackInfo& info) {
  guarded(info.Env(), "cudaCaptureBegin", [] { cuda::begin_capture(); });
  return info.Env().Undefined();
}

Napi::Value capture_end(const Napi::CallbackInfo& info) {
  cuda::Graph* g = guarded(info.Env(), "cudaCaptureEnd", [] { return cuda::end_capture(); });
  return wrap(info.Env(), g, destroy_graph);
}

Napi::Value capture_abandon(const Napi::CallbackInfo& info) {
  guarded(info.Env(), "cudaCaptureAbandon", [] { cuda::abandon_capture(); });
  return info.Env().Undefined();
}

Napi::Value capturing(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), cuda::capturing()); }

Napi::Value graph_replay(const Napi::CallbackInfo& info) {
  cuda::Graph& g = unwrap<cuda::Graph>(info, "cudaGraphReplay", "CUDA graph");
  guarded(info.Env(), "cudaGraphReplay", [&] { cuda::replay(&g); });
  return info.Env().Undefined();
}

Napi::Value graph_kernels(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(cuda::graph_kernels(&unwrap<cuda::Graph>(info, "cudaGraphKernels", "CUDA graph"))));
}

template <class T>
Napi::Value dispose(const Napi::CallbackInfo& info) {
  holder<T>(info, "dispose", "handle of this kind")->object.reset();
  return info.Env().Undefined();
}

// cudaReadbackCreate(floats)
Napi::Value readback_create(const Napi::CallbackInfo& info) {
  Args a(info, "cudaReadbackCreate", 1);
  const int64_t floats = a.i64(0, "floats", 1);
  auto* r = guarded(info.Env(), "cudaReadbackCreate", [&] { return new cuda::Readback(static_cast<size_t>(floats) * sizeof(float)); });
  return wrap(info.Env(), r, destroy_readback);
}

// cudaReadbackEnqueue(readback, storage, offset): copies the whole storage (on the GPU) to floats
// offset.. of the readback.
Napi::Value readback_enqueue(const Napi::CallbackInfo& info) {
  cuda::Readback& r = unwrap<cuda::Readback>(info, "cudaReadbackEnqueue", "readback");
  if (info.Length() != 3) throw Napi::TypeError::New(info.Env(), "kernelgrad.cudaReadbackEnqueue: expected 3 arguments");
  Args a(info, "cudaReadbackEnqueue", 3);
  Storage& s = a.storage(1, "storage");
  const int64_t offset = a.i64(2, "offset");
  if (s.device() != Device::Cuda) throw Napi::TypeError::New(info.Env(), a.prefix() + "storage must be on the GPU");
  const size_t bytes = static_cast<size_t>(s.numel()) * sizeof(float);
  guarded(info.Env(), "cudaReadbackEnqueue", [&] { r.enqueue(s.data("storage"), static_cast<size_t>(offset) * sizeof(float), bytes); });
  return info.Env().Undefined();
}

// cudaReadbackRead(readback): waits for the copies enqueued so far; a Float32Array of their values.
Napi::Value readback_read(const Napi::CallbackInfo& info) {
  cuda::Readback& r = unwrap<cuda::Readback>(info, "cudaReadbackRead", "readback");
  const void* host = guarded(info.Env(), "cudaReadbackRead", [&] { return r.wait(); });
  auto out = Napi::Float32Array::New(info.Env(), r.bytes() / sizeof(float));
  std::memcpy(out.Data(), host, r.bytes());
  return out;
}

#endif

}  // namespace

void register_graphs(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaCounters", Napi::Function::New<cuda_counters>(env, "cudaCounters"));
#if KG_WITH_CUDA
  exports.Set("cudaCaptureBegin", Napi::Function::New<capture_begin>(env, "cudaCaptureBegin"));
  exports.Set("cudaCaptureEnd", Napi::Function::New<capture_end>(env, "cudaCaptureEnd"));
  exports.Set("cudaCaptureAbandon", Napi::Function::New<capture_abandon>(env, "cudaCaptureAbandon"));
  exports.Set("cudaCapturing", Napi::Function::New<capturing>(env, "cudaCapturing"));
  exports.Set("cudaGraphReplay", Napi::Function::New<graph_replay>(env, "cudaGraphReplay"));
  exports.Set("cudaGraphKernels", Napi::Function::New<graph_kernels>(env, "cudaGraphKernels"));
  exports.Set("cudaGraphDispose", Napi::Function::New<dispose<cuda::Graph>>(env, "cudaGraphDispose"));
  exports.Set("cudaReadbackCreate", Napi::Function::New<readback_create>(env, "cudaReadbackCreate"));
  exports.Set("cudaReadbackEnqueue", Napi::Function::New<readback_enqueue>(env, "cudaReadbackEnqueue"));
  exports.Set("cudaReadbackRead", Napi::Function::New<readback_read>(env, "cudaReadbackRead"));
  exports.Set("cudaReadbackDispose", Napi::Function::New<dispose<cuda::Readback>>(env, "cudaReadbackDispose"));
#endif
}

}  // namespace kg
