// Devices, the library's stream, copies and error reporting.
//
// One stream for everything: kernels and copies are queued on it and run in order, so no op
// ever waits for the GPU except a device-to-host copy (its caller is about to read the bytes)
// and an explicit synchronize(). The stream is non-blocking with respect to the legacy default
// stream, so other CUDA code in the process (another addon) cannot serialize against us.
#include <atomic>
#include <mutex>

#include "common.cuh"

namespace kg::cuda {

namespace detail {

namespace {

// Errors after which the CUDA context is unusable until the process exits.
bool is_sticky(cudaError_t err) {
  switch (err) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorAssert:
    case cudaErrorECCUncorrectable:
      return true;
    default:
      return false;
  }
}

// Errors of a call that a graph capture cannot hold.
bool is_capture_error(cudaError_t err) {
  return err == cudaErrorStreamCaptureUnsupported || err == cudaErrorStreamCaptureInvalidated ||
         err == cudaErrorStreamCaptureImplicit;
}

std::mutex g_stream_mutex;
std::atomic<cudaStream_t> g_stream{nullptr};
std::atomic<int> g_sm_count{0};

std::atomic<uint64_t> g_kernel_launches{0}, g_graph_replays{0}, g_graph_kernels{0}, g_host_syncs{0},
    g_event_waits{0};

}  // namespace

void note_launch() {
  if (!note_captured_launch()) g_kernel_launches.fetch_add(1, std::memory_order_relaxed);
}
void note_replay(int64_t kernels) {
  g_graph_replays.fetch_add(1, std::memory_order_relaxed);
  g_graph_kernels.fetch_add(static_cast<uint64_t>(kernels), std::memory_order_relaxed);
}
void note_host_sync() { g_host_syncs.fetch_add(1, std::memory_order_relaxed); }
void note_event_wait() { g_event_waits.fetch_add(1, std::memory_order_relaxed); }

void fail(cudaError_t err, const char* what, const std::string& sizes) {
  (void)cudaGetLastError();  // reset the recoverable error so the next check does not see it
  std::string msg = std::string("CUDA error: ") + what + " failed: " + cudaGetErrorName(err) + ": " +
                    cudaGetErrorString(err);
  if (!sizes.empty()) msg += " [" + sizes + "]";
  if (is_capture_error(err)) {
    msg += ". A CUDA graph capture (kg.train.compileStep) cannot hold this call: reading a tensor on the host, "
           "synchronizing or copying from host memory inside a captured step spoils the capture";
  }
  if (is_sticky(err)) {
    msg += ". The GPU context is now unusable (an earlier kernel faulted); restart the process";
  }
  throw CudaError(msg);
}

// Created lazily (the addon also loads on machines without a GPU) and never destroyed: at
// process exit the driver may already be gone, and destroying it then would only fail.
cudaStream_t stream() {
  cudaStream_t s = g_stream.load(std::memory_order_acquire);
  if (s) return s;
  std::lock_guard<std::mutex> lock(g_stream_mutex);
  s = g_stream.load(std::memory_order_relaxed);
  if (!s) {
    KG_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "creating the library's stream");
    g_stream.store(s, std::memory_order_release);
  }
  return s;
}

int sm_count() {
  int n = g_sm_count.load(std::memory_order_relaxed);
  if (n > 0) return n;
  int device = 0;
  KG_CUDA_CHECK(cudaGetDevice(&device), "querying the current device");
  KG_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device), "device ", device);
  n = std::max(n, 1);
  g_sm_count.store(n, std::memory_order_relaxed);
  return n;
}

}  // namespace detail

namespace {

// "12.4" for 12040.
std::string cuda_version(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }

}  // namespace

DeviceQuery query_devices() {
  DeviceQuery q{{}, "", "", 0, CUDART_VERSION};
  try {
    (void)cudaDriverGetVersion(&q.driver_version);
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      // No driver, no GPU, a driver too old for this runtime: no device, but the reason is kept,
      // so that "the driver is too old" does not read as "there is no GPU".
      q.error_name = cudaGetErrorName(err);
      q.error = "cudaGetDeviceCount failed: " + q.error_name + ": " + cudaGetErrorString(err) + " (" +
                (q.driver_version ? "the NVIDIA driver supports CUDA " + cuda_version(q.driver_version)
                                  : "no NVIDIA driver was found") +
                "; kernelgrad's statically linked CUDA runtime is " + cuda_version(q.runtime_version) + ")";
      return q;
    }
    for (int i = 0; i < count; ++i) {
      cudaDeviceProp prop;
      if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) {
        (void)cudaGetLastError();
        continue;
      }
#ifdef KG_CUDA_EMULATED  // defined by the emulator's cuda_runtime.h
      const bool emulated = true;
#else
      const bool emulated = false;
#endif
      q.devices.push_back(DeviceInfo{i, prop.name, prop.totalGlobalMem, prop.major, prop.minor, emulated});
    }
  } catch (...) {
    // bad_alloc building the list: still never throw from here
  }
  return q;
}

std::vector<DeviceInfo> devices() { return query_devices().devices; }

void copy_h2d(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  // From pageable memory the driver stages the bytes before returning, so the caller may reuse
  // `src` at once; the copy itself is ordered after the kernels already queued.
  KG_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, detail::stream()),
                "host to device, ", bytes, " bytes");
}

void copy_d2h(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  cudaStream_t s = detail::stream();
  KG_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s), "device to host, ", bytes,
                " bytes");
  // The caller reads `dst` next. This is also where a fault in any earlier kernel is reported.
  KG_CUDA_CHECK(cudaStreamSynchronize(s), "waiting for a device to host copy of ", bytes, " bytes");
  detail::note_host_sync();
}

void copy_d2d(void* dst, const void* src, size_t bytes) {
  if (bytes == 0 || dst == src) return;
  KG_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, detail::stream()),
                "device to device, ", bytes, " bytes");
}

void synchronize() {
  KG_CUDA_CHECK(cudaStreamSynchronize(detail::stream()), "the library's stream");
  detail::note_host_sync();
}

Counters counters() {
  using namespace detail;
  return Counters{g_kernel_launches.load(), g_graph_replays.load(), g_graph_kernels.load(), g_host_syncs.load(),
                  g_event_waits.load()};
}

// ops.inc: copy n floats, device to device.
void copy(int64_t n, const float* x, float* out) {
  if (n <= 0) return;
  copy_d2d(out, x, static_cast<size_t>(n) * sizeof(float));
}

}  // namespace kg::cuda
