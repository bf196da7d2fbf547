// The CUDA runtime API as far as kernelgrad uses it, emulated: errors, one pretend device,
// streams, events and copies.
//
// Streams are not modelled: every launch and copy runs to completion when it is issued (or, on a
// capturing stream, is recorded: graphs.cpp), so stream order always holds and a synchronize has
// nothing to wait for. For copies from pageable host memory that is also what CUDA guarantees:
// the bytes are staged before cudaMemcpyAsync returns, so the caller may free or reuse them at
// once. What this cannot show: page-locked memory (cudaMallocHost) read or freed before the
// stream reached a copy into or out of it, a missing synchronize before the host reads a result,
// or work on two streams racing. An
// event records the host clock when it is recorded, which, with launches run at once, makes
// cudaEventElapsedTime the emulated work's wall time between the two records.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "cuda_runtime.h"
#include "internal.h"

struct CUstream_st {
  unsigned flags;
};
struct CUevent_st {
  bool recorded = false;
  std::chrono::steady_clock::time_point when;
};

namespace emu {
namespace {
cudaError_t g_last_error = cudaSuccess;

// EMU_DEVICE_COUNT_ERROR: the failure cudaGetDeviceCount reports, to test how it is shown.
cudaError_t device_count_error() {
  const char* e = std::getenv("EMU_DEVICE_COUNT_ERROR");
  if (!e || !*e) return cudaSuccess;
  if (std::string(e) == "no-device") return cudaErrorNoDevice;
  return cudaErrorInsufficientDriver;
}
}  // namespace
void set_last_error(cudaError_t e) { g_last_error = e; }
cudaError_t take_last_error() {
  const cudaError_t e = g_last_error;
  g_last_error = cudaSuccess;
  return e;
}

namespace {
std::map<uintptr_t, size_t> g_pinned;  // page-locked host buffers: start -> bytes
}  // namespace
bool is_pinned(const void* p, size_t bytes) {
  std::lock_guard<std::recursive_mutex> lock(device_lock());
  const auto a = reinterpret_cast<uintptr_t>(p);
  auto it = g_pinned.upper_bound(a);
  if (it == g_pinned.begin()) return false;
  --it;
  return a + bytes <= it->first + it->second;
}
}  // namespace emu

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorIllegalState: return "cudaErrorIllegalState";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureUnmatched: return "cudaErrorStreamCaptureUnmatched";
    case cudaErrorStreamCaptureImplicit: return "cudaErrorStreamCaptureImplicit";
    default: return "cudaError(emulated)";
  }
}
const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidValue: return "invalid argument";
    // CUDA's own wording for these two.
    case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureImplicit:
      return "operation would make the legacy stream depend on a capturing blocking stream";
    case cudaErrorIllegalState: return "the operation cannot be performed in the present state";
    default: return cudaGetErrorName(e);
  }
}
cudaError_t cudaGetLastError() { return emu::take_last_error(); }
cudaError_t cudaGetDeviceCount(int* n) {
  const cudaError_t err = emu::device_count_error();
  *n = err == cudaSuccess ? 1 : 0;
  if (err != cudaSuccess) emu::set_last_error(err);
  return err;
}
cudaError_t cudaDriverGetVersion(int* v) {
  *v = emu::device_count_error() == cudaErrorInsufficientDriver ? 11080 : CUDART_VERSION;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device) {
  if (device != 0 || emu::device_count_error() != cudaSuccess) return cudaErrorInvalidValue;
  std::snprintf(p->name, sizeof p->name, "kernelgrad CUDA emulator");
  p->totalGlobalMem = emu::device_total();
  p->major = 9;
  p->minor = 0;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* d) {
  *d = 0;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr, int) {
  const char* sms = std::getenv("EMU_SMS");
  *v = sms ? std::atoi(sms) : 132;
  return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags) {
  *s = new CUstream_st{flags};
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) { return emu::capture_sync_stream(s); }
cudaError_t cudaDeviceSynchronize() { return emu::capture_unsafe_call(); }

cudaError_t cudaMalloc(void** p, size_t bytes) {
  cudaError_t err = emu::capture_unsafe_call();
  if (err == cudaSuccess) err = emu::device_malloc(p, bytes);
  if (err != cudaSuccess) emu::set_last_error(err);
  return err;
}
cudaError_t cudaFree(void* p) {
  const cudaError_t err = emu::capture_unsafe_call();
  return err != cudaSuccess ? err : emu::device_free(p);
}
cudaError_t cudaMallocHost(void** p, size_t bytes) {
  if (const cudaError_t err = emu::capture_unsafe_call()) return err;
  *p = std::malloc(bytes ? bytes : 1);
  if (!*p) return cudaErrorMemoryAllocation;
  std::lock_guard<std::recursive_mutex> lock(emu::device_lock());
  emu::g_pinned[reinterpret_cast<uintptr_t>(*p)] = bytes;
  return cudaSuccess;
}
cudaError_t cudaFreeHost(void* p) {
  if (const cudaError_t err = emu::capture_unsafe_call()) return err;
  std::lock_guard<std::recursive_mutex> lock(emu::device_lock());
  if (!p || !emu::g_pinned.erase(reinterpret_cast<uintptr_t>(p))) return cudaErrorInvalidValue;
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  *total_bytes = emu::device_total();
  *free_bytes = *total_bytes - emu::device_used();
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s) {
  return emu::submit_copy(s, dst, src, bytes, kind);
}
cudaError_t cudaEventCreate(cudaEvent_t* e) {
  *e = new CUevent_st{};
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  if (!e) return cudaErrorInvalidValue;
  auto record = [e] {
    e->recorded = true;
    e->when = std::chrono::steady_clock::now();
  };
  cudaError_t err = cudaSuccess;
  if (emu::record_if_capturing(s, record, &err)) return err;
  record();
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  if (!e) return cudaErrorInvalidValue;
  return emu::capture_unsafe_call();
}
cudaError_t cudaEventQuery(cudaEvent_t e) {
  if (!e) return cudaErrorInvalidValue;
  return emu::capture_unsafe_call();
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  if (!a || !b || !a->recorded || !b->recorded) return cudaErrorInvalidValue;
  *ms = std::chrono::duration<float, std::milli>(b->when - a->when).count();
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
