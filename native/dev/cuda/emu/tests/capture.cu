// The emulator's model of stream capture, one case per rule (run.sh checks what each prints).
// Plain CUDA: built with nvcc, every case prints the same on a GPU.
//
// usage: capture CASE     prints one line per fact the case checks
#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>
#include <string>

namespace {

constexpr int kN = 64;

__global__ void add_one(float* x) { x[threadIdx.x] += 1.0f; }

float* device_zeros(cudaStream_t s) {
  void* p = nullptr;
  if (cudaMalloc(&p, kN * sizeof(float)) != cudaSuccess) return nullptr;
  static float zeros[kN] = {};
  cudaMemcpyAsync(p, zeros, sizeof zeros, cudaMemcpyHostToDevice, s);
  cudaStreamSynchronize(s);
  return static_cast<float*>(p);
}

float first(const float* d, cudaStream_t s) {
  float h[kN];
  cudaMemcpyAsync(h, d, sizeof h, cudaMemcpyDeviceToHost, s);
  cudaStreamSynchronize(s);
  return h[0];
}

void say(const char* what, cudaError_t err) { std::printf("%s %s\n", what, cudaGetErrorName(err)); }

// Begins a capture, runs `forbidden` inside it, ends it: prints what the call and the end returned.
template <class F>
int refused(cudaStream_t s, float* x, F forbidden) {
  cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal);
  add_one<<<1, kN, 0, s>>>(x);
  say("call", forbidden());
  add_one<<<1, kN, 0, s>>>(x);
  say("launch-after", cudaGetLastError());
  cudaGraph_t g = nullptr;
  say("end", cudaStreamEndCapture(s, &g));
  std::printf("graph %s\n", g ? "made" : "none");
  cudaStreamCaptureStatus st;
  cudaStreamIsCapturing(s, &st);
  std::printf("capturing %d\n", static_cast<int>(st));
  std::printf("x %g\n", first(x, s));  // nothing captured ran; the stream works again
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string c = argc > 1 ? argv[1] : "";
  cudaStream_t s;
  cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  float* x = device_zeros(s);
  if (c == "replay") {
    // Recorded, not run; each launch of the graph runs the two kernels and the copy again.
    float* y = device_zeros(s);
    cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal);
    add_one<<<1, kN, 0, s>>>(x);
    add_one<<<1, kN, 0, s>>>(x);
    cudaMemcpyAsync(y, x, kN * sizeof(float), cudaMemcpyDeviceToDevice, s);
    cudaGraph_t g = nullptr;
    say("end", cudaStreamEndCapture(s, &g));
    std::printf("after-capture %g\n", first(x, s));
    cudaGraphExec_t e = nullptr;
    say("instantiate", cudaGraphInstantiate(&e, g, 0));
    for (int i = 0; i < 3; ++i) say("launch", cudaGraphLaunch(e, s));
    std::printf("after-replays %g %g\n", first(x, s), first(y, s));
    cudaGraphExecDestroy(e);
    cudaGraphDestroy(g);
    return 0;
  }
  if (c == "pinned-readback") {
    // A captured copy into page-locked memory happens at every replay.
    float* h = nullptr;
    cudaMallocHost(reinterpret_cast<void**>(&h), sizeof(float));
    *h = -1.0f;
    cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal);
    add_one<<<1, kN, 0, s>>>(x);
    say("copy", cudaMemcpyAsync(h, x, sizeof(float), cudaMemcpyDeviceToHost, s));
    cudaGraph_t g = nullptr;
    say("end", cudaStreamEndCapture(s, &g));
    cudaGraphExec_t e = nullptr;
    cudaGraphInstantiate(&e, g, 0);
    cudaGraphLaunch(e, s);
    cudaGraphLaunch(e, s);
    cudaStreamSynchronize(s);
    std::printf("host %g\n", *h);
    cudaFreeHost(h);
    return 0;
  }
  if (c == "malloc") {
    return refused(s, x, [] {
      void* p = nullptr;
      return cudaMalloc(&p, 256);
    });
  }
  if (c == "malloc-relaxed") {
    // A thread in relaxed mode may allocate (a caching allocator growing its pool does this).
    cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal);
    cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
    cudaThreadExchangeStreamCaptureMode(&mode);
    void* p = nullptr;
    say("malloc", cudaMalloc(&p, 256));
    cudaThreadExchangeStreamCaptureMode(&mode);
    add_one<<<1, kN, 0, s>>>(x);
    cudaGraph_t g = nullptr;
    say("end", cudaStreamEndCapture(s, &g));
    cudaGraphDestroy(g);
    cudaFree(p);
    return 0;
  }
  if (c == "stream-sync") return refused(s, x, [s] { return cudaStreamSynchronize(s); });
  if (c == "device-sync") return refused(s, x, [] { return cudaDeviceSynchronize(); });
  if (c == "free") return refused(s, x, [x] { return cudaFree(x); });
  if (c == "pageable-copy") {
    return refused(s, x, [s, x] {
      static float h[kN];
      return cudaMemcpyAsync(h, x, sizeof h, cudaMemcpyDeviceToHost, s);
    });
  }
  if (c == "legacy-stream") {
    return refused(s, x, [x] {
      add_one<<<1, kN>>>(x);
      return cudaGetLastError();
    });
  }
  if (c == "nested-begin") {
    cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal);
    say("again", cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
    cudaGraph_t g = nullptr;
    say("end", cudaStreamEndCapture(s, &g));
    say("end-again", cudaStreamEndCapture(s, &g));
    cudaGraphDestroy(g);
    return 0;
  }
  std::fprintf(stderr, "unknown case '%s'\n", c.c_str());
  return 2;
}
