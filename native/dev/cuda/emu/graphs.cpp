// Stream capture and graphs, emulated. A capturing stream records its launches and copies (the
// launch's arguments were copied when it was issued, as CUDA copies them) instead of running
// them; cudaGraphLaunch runs the recorded work in capture order, which is the order the one
// stream would have run it in.
//
// The rules are CUDA's, so that code which captures cleanly here captures on a GPU:
//  - a "potentially unsafe" call (cudaMalloc, cudaFree, cudaMallocHost, synchronizing a stream,
//    the device or an event, querying an event) while a capture is under way fails with
//    cudaErrorStreamCaptureUnsupported and invalidates the capture, unless the calling thread
//    has switched itself to cudaStreamCaptureModeRelaxed (cudaThreadExchangeStreamCaptureMode)
//    or the capture is another thread's and not in global mode;
//  - a captured copy to or from pageable host memory fails the same way: the graph would read or
//    write that host memory at every replay, long after the caller may have freed it; only
//    page-locked memory (cudaMallocHost) may be captured;
//  - work on the legacy default stream during a capture fails with
//    cudaErrorStreamCaptureImplicit (it would synchronize with the capturing stream);
//  - once invalidated, every further op on the stream fails with
//    cudaErrorStreamCaptureInvalidated, and so does cudaStreamEndCapture, which ends the capture.
#include <thread>
#include <vector>

#include "internal.h"

struct CUgraph_st {
  std::vector<std::function<void()>> nodes;
};
struct CUgraphExec_st {
  std::vector<std::function<void()>> nodes;
};

namespace emu {
namespace {

struct Capture {
  cudaStream_t stream;
  cudaStreamCaptureMode mode;
  std::thread::id thread;
  bool invalidated;
  CUgraph_st* graph;
};
std::vector<Capture> g_captures;  // under device_lock()
thread_local cudaStreamCaptureMode t_mode = cudaStreamCaptureModeGlobal;

Capture* capture_of(cudaStream_t s) {
  if (!s) return nullptr;
  for (Capture& c : g_captures)
    if (c.stream == s) return &c;
  return nullptr;
}

// Whether capture `c` forbids unsafe calls from this thread (CUDA's cudaStreamCaptureMode rules).
bool forbids(const Capture& c) {
  if (c.mode == cudaStreamCaptureModeRelaxed || t_mode == cudaStreamCaptureModeRelaxed) return false;
  if (c.thread == std::this_thread::get_id()) return true;
  return c.mode == cudaStreamCaptureModeGlobal && t_mode == cudaStreamCaptureModeGlobal;
}

// Invalidates every capture that forbids the call; returns `err` if there was one.
cudaError_t refuse_if_capturing(cudaError_t err) {
  bool refused = false;
  for (Capture& c : g_captures) {
    if (!forbids(c)) continue;
    c.invalidated = true;
    refused = true;
  }
  return refused ? err : cudaSuccess;
}

// What an op on stream `s` does: record into `*graph` (set), fail (returned), or run now.
cudaError_t route(cudaStream_t s, CUgraph_st** graph) {
  *graph = nullptr;
  if (Capture* c = capture_of(s)) {
    if (c->invalidated) return cudaErrorStreamCaptureInvalidated;
    *graph = c->graph;
    return cudaSuccess;
  }
  if (!s) return refuse_if_capturing(cudaErrorStreamCaptureImplicit);
  return cudaSuccess;
}

}  // namespace

cudaError_t capture_unsafe_call() {
  std::lock_guard<std::recursive_mutex> lock(device_lock());
  return refuse_if_capturing(cudaErrorStreamCaptureUnsupported);
}

cudaError_t capture_sync_stream(cudaStream_t s) {
  std::lock_guard<std::recursive_mutex> lock(device_lock());
  if (Capture* c = capture_of(s)) {
    c->invalidated = true;
    return cudaErrorStreamCaptureUnsupported;
  }
  return refuse_if_capturing(cudaErrorStreamCaptureUnsupported);
}

void submit_launch(cudaStream_t s, dim3 grid, dim3 block, std::function<void()> body) {
  std::lock_guard<std::recursive_mutex> lock(device_lock());
  CUgraph_st* graph = nullptr;
  cudaError_t err = route(s, &graph);
  if (err == cudaSuccess && graph && !launch_config_ok(grid, block)) err = cudaErrorInvalidConfiguration;
  if (err != cudaSuccess) {
    set_last_error(err);
    return;
  }
  if (graph) {
    graph->nodes.push_back([grid, block, body = std::move(body)] { run_grid(grid, block, body); });
  } else {
    run_grid(grid, block, body);
  }
}

cudaError_t submit_copy(cudaStream_t s, void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  std::lock_guard<std::recursive_mutex> lock(device_lock());
  CUgraph_st* graph = nullptr;
  const cudaError_t err = route(s, &graph);
  if (err != cudaSuccess) return err;
  if (!graph) {
    device_memmove(dst, src, bytes);
    return cudaSuccess;
  }
  const bool pageable = (kind == cudaMemcpyHostToDevice && !is_pinned(src, bytes)) ||
                        (kind == cudaMemcpyDeviceToHost && !is_pinned(dst, bytes)) || kind == cudaMemcpyHostToHost;
  if (pageable) {
    capture_of(s)->invalidated = true;
    return cudaErrorStreamCaptureUnsupported;
  }
  graph->nodes.push_back([dst, src, bytes] { device_memmove(dst, src, bytes); });
  return cudaSuccess;
}

bool record_if_capturing(cudaStream_t s, std::function<void()> node, cudaError_t* err) {
  std::lock_guard<std::recursive_mutex> lock(device_lock());
  CUgraph_st* graph = nullptr;
  *err = route(s, &graph);
  if (*err != cudaSuccess) return true;
  if (!graph) return false;
  graph->nodes.push_back(std::move(node));
  return true;
}

}  // namespace emu

cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode) {
  std::lock_guard<std::recursive_mutex> lock(emu::device_lock());
  if (!s) return cudaErrorStreamCaptureUnsupported;  // the legacy stream cannot be captured
  if (emu::capture_of(s)) return cudaErrorIllegalState;
  emu::g_captures.push_back(emu::Capture{s, mode, std::this_thread::get_id(), false, new CUgraph_st{}});
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* graph) {
  std::lock_guard<std::recursive_mutex> lock(emu::device_lock());
  *graph = nullptr;
  emu::Capture* c = emu::capture_of(s);
  if (!c) return cudaErrorIllegalState;
  const emu::Capture done = *c;
  emu::g_captures.erase(emu::g_captures.begin() + (c - emu::g_captures.data()));
  if (done.invalidated) {
    delete done.graph;
    return cudaErrorStreamCaptureInvalidated;
  }
  *graph = done.graph;
  return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus* status) {
  std::lock_guard<std::recursive_mutex> lock(emu::device_lock());
  const emu::Capture* c = emu::capture_of(s);
  *status = !c ? cudaStreamCaptureStatusNone
               : c->invalidated ? cudaStreamCaptureStatusInvalidated : cudaStreamCaptureStatusActive;
  return cudaSuccess;
}

cudaError_t cudaThreadExchangeStreamCaptureMode(cudaStreamCaptureMode* mode) {
  std::swap(*mode, emu::t_mode);
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  if (!exec || !graph) return cudaErrorInvalidValue;
  *exec = new CUgraphExec_st{graph->nodes};
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s) {
  if (!exec) return cudaErrorInvalidValue;
  cudaError_t err = cudaSuccess;
  // Into a capture, the whole replay becomes one recorded node.
  if (emu::record_if_capturing(s, [exec] { for (auto& node : exec->nodes) node(); }, &err)) return err;
  std::lock_guard<std::recursive_mutex> lock(emu::device_lock());
  for (auto& node : exec->nodes) node();
  return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}
