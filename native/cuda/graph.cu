// Graph capture and replay of the library's stream.
//
// A capture is global mode (CUDA's default): any call that could synchronize with the stream
// while it records (cudaMalloc, a device-to-host read, a synchronize) fails and spoils the
// capture. The caching allocator switches to relaxed mode for the one cudaMalloc it may need to
// grow the graph's pool. Kernels are counted as they are recorded (note_launch), so a graph knows
// how many it replays.
#include <atomic>

#include "common.cuh"

namespace kg::cuda {

struct Graph {
  cudaGraphExec_t exec = nullptr;
  int64_t pool = 0;
  int64_t kernels = 0;
};

namespace detail {
namespace {

std::atomic<int64_t> g_capture_pool{0};  // the pool of the capture under way, 0: none
std::atomic<int64_t> g_captured_kernels{0};

}  // namespace

bool note_captured_launch() {
  if (g_capture_pool.load(std::memory_order_relaxed) == 0) return false;
  g_captured_kernels.fetch_add(1, std::memory_order_relaxed);
  return true;
}

}  // namespace detail

bool capturing() { return detail::g_capture_pool.load() != 0; }

void begin_capture() {
  using namespace detail;
  if (capturing()) throw CudaError("CUDA graph capture: a capture is already under way");
  const int64_t pool = pool_create();
  pool_set_current(pool);
  const cudaError_t err = cudaStreamBeginCapture(stream(), cudaStreamCaptureModeGlobal);
  if (err != cudaSuccess) {
    pool_set_current(0);
    pool_drop(pool);
    fail(err, "cudaStreamBeginCapture", "the library's stream");
  }
  g_captured_kernels.store(0);
  g_capture_pool.store(pool);
}

namespace {

// Ends the capture; the graph, or nullptr with *err set when the capture was spoiled.
cudaGraph_t finish(cudaError_t* err, int64_t* pool) {
  using namespace detail;
  *pool = g_capture_pool.exchange(0);
  pool_set_current(0);
  cudaGraph_t graph = nullptr;
  *err = cudaStreamEndCapture(stream(), &graph);
  (void)cudaGetLastError();  // the launches refused after the capture was spoiled
  return graph;
}

}  // namespace

Graph* end_capture() {
  using namespace detail;
  cudaError_t err = cudaSuccess;
  int64_t pool = 0;
  cudaGraph_t graph = finish(&err, &pool);
  auto* g = new Graph{nullptr, pool, g_captured_kernels.load()};
  if (err == cudaSuccess) err = cudaGraphInstantiate(&g->exec, graph, 0);
  if (graph) (void)cudaGraphDestroy(graph);  // the executable graph is all replays need
  if (err != cudaSuccess) {
    destroy(g);
    fail(err, "cudaStreamEndCapture", "the capture was spoiled by a call CUDA cannot capture");
  }
  return g;
}

void abandon_capture() {
  // Nothing to end, and no stream to touch: on a machine whose driver cannot create one, asking
  // for it would throw.
  if (!capturing()) return;
  cudaError_t err = cudaSuccess;
  int64_t pool = 0;
  cudaGraph_t graph = finish(&err, &pool);
  if (graph) (void)cudaGraphDestroy(graph);
  pool_drop(pool);
}

void replay(Graph* g) {
  using namespace detail;
  KG_CUDA_CHECK(cudaGraphLaunch(g->exec, stream()), "replaying a graph of ", g->kernels, " kernels");
  note_replay(g->kernels);
}

void destroy(Graph* g) {
  if (!g) return;
  if (g->exec) (void)cudaGraphExecDestroy(g->exec);
  pool_drop(g->pool);
  delete g;
}

int64_t graph_kernels(const Graph* g) { return g->kernels; }

}  // namespace kg::cuda
