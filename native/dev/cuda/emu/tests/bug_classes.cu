// One small kernel per class of bug the emulator must catch, and one correct kernel it must pass
// (run.sh runs each case in its own process and checks what the emulator says). Each case is
// plain CUDA: on a GPU, compute-sanitizer finds the same bugs (memcheck, racecheck, synccheck).
//
// usage: bug_classes CASE     (prints the kernel's results, one per line, when it survives)
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr int kThreads = 64;

// Past the end of a buffer of n floats.
__global__ void read_past_end(const float* x, int n, float* out) { out[threadIdx.x] = x[n + threadIdx.x]; }
__global__ void write_past_end(float* out, int n) { out[n + threadIdx.x] = 1.0f; }

// Shared memory no thread wrote: NaN in the emulator; on a GPU whatever the last block left.
__global__ void uninitialized_shared(float* out) {
  __shared__ float s[kThreads];
  out[threadIdx.x] = s[threadIdx.x];
}

// Thread i reads what thread i-1 wrote, with no __syncthreads between: forward order (each
// thread runs to its end in turn) hides it, the race checker and the reverse order do not.
__global__ void missing_barrier(float* out) {
  __shared__ float s[kThreads];
  s[threadIdx.x] = static_cast<float>(threadIdx.x);
  out[threadIdx.x] = threadIdx.x > 0 ? s[threadIdx.x - 1] : 0.0f;
}

// Thread i overwrites the word thread i-1 reads in the same barrier interval.
__global__ void write_after_read(float* out) {
  __shared__ float s[kThreads + 1];
  s[threadIdx.x] = static_cast<float>(threadIdx.x);
  if (threadIdx.x == 0) s[kThreads] = 0.0f;
  __syncthreads();
  const float next = s[threadIdx.x + 1];
  s[threadIdx.x] = next * 2.0f;
  out[threadIdx.x] = next;
}

// Two different barriers for two halves of the block.
__global__ void divergent_barrier(float* out) {
  if (threadIdx.x < kThreads / 2) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1.0f;
}

// A barrier that half the block never reaches.
__global__ void barrier_after_exit(float* out) {
  if (threadIdx.x >= kThreads / 2) return;
  __syncthreads();
  out[threadIdx.x] = 1.0f;
}

// Every block writes the same word.
__global__ void blocks_write_one_word(float* out) {
  if (threadIdx.x == 0) out[0] = static_cast<float>(blockIdx.x + 1);
}

// A float4 load from an address that is not 16-byte aligned.
__global__ void misaligned_vector(const float* x, float* out) {
  const float4 v = *reinterpret_cast<const float4*>(x + 1);
  out[threadIdx.x] = v.x;
}

// A correct block reduction: shared memory written, a barrier, a tree of barriers, warp shuffles.
__global__ void correct_reduction(const float* x, float* out) {
  __shared__ float s[kThreads];
  float v = x[blockIdx.x * kThreads + threadIdx.x];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  s[threadIdx.x] = v;
  __syncthreads();
  for (int stride = kThreads / 2; stride >= 32; stride >>= 1) {
    if (threadIdx.x < stride) s[threadIdx.x] += s[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = s[0];
}

float* device(const std::vector<float>& h) {
  void* p = nullptr;
  if (cudaMalloc(&p, h.size() * sizeof(float)) != cudaSuccess) std::abort();
  cudaMemcpyAsync(p, h.data(), h.size() * sizeof(float), cudaMemcpyHostToDevice, nullptr);
  return static_cast<float*>(p);
}

std::vector<float> host(const float* d, size_t n) {
  std::vector<float> h(n);
  cudaMemcpyAsync(h.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost, nullptr);
  cudaDeviceSynchronize();
  return h;
}

int print(const std::vector<float>& v) {
  for (float f : v) std::printf("%g\n", f);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string c = argc > 1 ? argv[1] : "";
  std::vector<float> ramp(4 * kThreads);
  for (size_t i = 0; i < ramp.size(); ++i) ramp[i] = static_cast<float>(i % 7) - 3.0f;
  float* x = device(ramp);
  float* out = device(std::vector<float>(4 * kThreads, 0.0f));
  if (c == "read-past-end") read_past_end<<<1, kThreads>>>(x, 4 * kThreads - 8, out);
  else if (c == "write-past-end") write_past_end<<<1, kThreads>>>(out, 4 * kThreads - 8);
  else if (c == "uninitialized-shared") uninitialized_shared<<<1, kThreads>>>(out);
  else if (c == "missing-barrier") missing_barrier<<<1, kThreads>>>(out);
  else if (c == "write-after-read") write_after_read<<<1, kThreads>>>(out);
  else if (c == "divergent-barrier") divergent_barrier<<<1, kThreads>>>(out);
  else if (c == "barrier-after-exit") barrier_after_exit<<<1, kThreads>>>(out);
  else if (c == "blocks-write-one-word") blocks_write_one_word<<<4, kThreads>>>(out);
  else if (c == "misaligned-vector") misaligned_vector<<<1, kThreads>>>(x, out);
  else if (c == "host-reads-device-memory") return print({x[3]});
  else if (c == "host-writes-device-memory") {
    out[0] = 1.0f;
    return 0;
  } else if (c == "correct-reduction") correct_reduction<<<4, kThreads>>>(x, out);
  else {
    std::fprintf(stderr, "unknown case '%s'\n", c.c_str());
    return 2;
  }
  if (cudaGetLastError() != cudaSuccess) return 3;
  return print(host(out, kThreads));
}
