// A CPU stand-in for <cuda_runtime.h>, enough to run kernelgrad's kernels without a GPU (see
// README.md beside this file). The kernels are compiled as plain C++ after translate.py has
// rewritten their launches, shared-memory declarations and vector casts: each block runs its
// threads as cooperative coroutines that switch at __syncthreads and warp shuffles (execution.cpp),
// shared memory is an arena filled with NaN at every block's start, device memory is host memory
// that host code cannot touch outside kernels and copies (device_memory.cpp). Slow, but it executes
// the real index arithmetic, bounds and barriers, which is what a review without a GPU cannot.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
// __shared__ declarations are rewritten by translate.py; one it missed fails to compile.
#define __shared__ static_assert(false, "translate.py rewrites __shared__ declarations");
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __restrict__ __restrict

struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
  unsigned int x, y, z;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(8) float2 {
  float x, y;
};
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
inline float2 make_float2(float x, float y) { return float2{x, y}; }

namespace emu {
extern uint3 thread_idx, block_idx;
extern dim3 block_dim, grid_dim;
// `site` names the __syncthreads call ("file:line"): every thread of a block must reach the same one.
void sync_block(const char* site);
// Marks the kernel now running, for reports (translate.py puts one call at the top of every kernel).
void enter_kernel(const char* name);
// Shared memory (execution.cpp): `bytes` from the block's arena, at the same address for every
// thread of the launch. translate.py turns `__shared__ T name[N];` into `auto& name = shared<T[N], id>();`.
void* shared_alloc(size_t bytes, size_t align, unsigned* generation, size_t* offset);
void* shared_base();
// Vector accesses (float2/float4) must be aligned to their size, as the GPU requires.
void misaligned(const void* p, size_t align, const char* type);
// Exchanges one 8-byte value per lane over the calling thread's warp; returns lane `src`'s.
uint64_t exchange(uint64_t mine, int src, unsigned mask);
int lane();

template <typename A, int Id>
inline A& shared() {
  static unsigned generation = 0;  // the launch that placed this variable
  static size_t offset = 0;
  return *static_cast<A*>(shared_alloc(sizeof(A), alignof(A) < 16 ? 16 : alignof(A), &generation, &offset));
}

template <typename P>
inline P* vector_ptr(P* p) {
  if (reinterpret_cast<uintptr_t>(p) % sizeof(P) != 0) misaligned(p, sizeof(P), sizeof(P) == 16 ? "float4" : "float2");
  return p;
}
template <typename P>
inline const P* vector_ptr(const P* p) {
  if (reinterpret_cast<uintptr_t>(p) % sizeof(P) != 0) misaligned(p, sizeof(P), sizeof(P) == 16 ? "float4" : "float2");
  return p;
}
}  // namespace emu

#define threadIdx (::emu::thread_idx)
#define blockIdx (::emu::block_idx)
#define blockDim (::emu::block_dim)
#define gridDim (::emu::grid_dim)

#define EMU_STR2(x) #x
#define EMU_STR(x) EMU_STR2(x)
#define __syncthreads() ::emu::sync_block(__FILE__ ":" EMU_STR(__LINE__))

template <typename T>
inline T emu_shuffle(T v, int src, unsigned mask) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle of a small trivial type");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = emu::exchange(bits, src, mask);
  T r;
  std::memcpy(&r, &bits, sizeof(T));
  return r;
}
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T v, int o) {
  return emu_shuffle(v, emu::lane() ^ o, mask);
}
template <typename T>
inline T __shfl_down_sync(unsigned mask, T v, int d) {
  const int src = emu::lane() + d;
  return emu_shuffle(v, src < 32 ? src : emu::lane(), mask);
}

template <typename T>
inline T __ldg(const T* p) {
  return *p;
}
inline unsigned int __umulhi(unsigned int a, unsigned int b) {
  return static_cast<unsigned int>((static_cast<uint64_t>(a) * b) >> 32);
}
// CUDA's device min/max overloads, for one type at a time.
template <typename T>
inline T min(T a, T b) {
  return a < b ? a : b;
}
template <typename T>
inline T max(T a, T b) {
  return a < b ? b : a;
}

// ---- the runtime API, as far as kernelgrad uses it
// Code that reports the device (kg::cuda::query_devices) says from this that it is emulated.
#define KG_CUDA_EMULATED 1
// The CUDA version the emulator poses as (CUDA's own encoding: 1000 * major + 10 * minor).
#define CUDART_VERSION 12040
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInsufficientDriver = 35,
  cudaErrorNoDevice = 100,
  cudaErrorNotReady = 600,
  cudaErrorStreamCaptureUnsupported = 900,
  cudaErrorStreamCaptureInvalidated = 901,
  cudaErrorStreamCaptureUnmatched = 903,
  cudaErrorStreamCaptureImplicit = 906,
  cudaErrorIllegalState = 401,
  cudaErrorIllegalAddress = 700,
  cudaErrorLaunchFailure = 719,
  cudaErrorHardwareStackError = 714,
  cudaErrorIllegalInstruction = 715,
  cudaErrorMisalignedAddress = 716,
  cudaErrorInvalidAddressSpace = 717,
  cudaErrorInvalidPc = 718,
  cudaErrorAssert = 710,
  cudaErrorECCUncorrectable = 214,
};
using cudaError = cudaError_t;
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3
};
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount = 16 };
constexpr unsigned cudaStreamNonBlocking = 1;
struct CUstream_st;
using cudaStream_t = CUstream_st*;
struct CUevent_st;
using cudaEvent_t = CUevent_st*;
struct CUgraph_st;
using cudaGraph_t = CUgraph_st*;
struct CUgraphExec_st;
using cudaGraphExec_t = CUgraphExec_st*;
enum cudaStreamCaptureMode {
  cudaStreamCaptureModeGlobal = 0,
  cudaStreamCaptureModeThreadLocal = 1,
  cudaStreamCaptureModeRelaxed = 2
};
enum cudaStreamCaptureStatus {
  cudaStreamCaptureStatusNone = 0,
  cudaStreamCaptureStatusActive = 1,
  cudaStreamCaptureStatusInvalidated = 2
};
struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  int major, minor;
};

const char* cudaGetErrorName(cudaError_t e);
const char* cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetLastError();
// EMU_DEVICE_COUNT_ERROR=insufficient-driver|no-device makes it fail as on a machine whose driver
// is too old for the runtime (cudaDriverGetVersion then reports CUDA 11.8) or that has no GPU.
cudaError_t cudaGetDeviceCount(int* n);
cudaError_t cudaDriverGetVersion(int* v);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device);
cudaError_t cudaGetDevice(int* d);
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int device);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaMalloc(void** p, size_t bytes);
cudaError_t cudaFree(void* p);
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s);
cudaError_t cudaEventCreate(cudaEvent_t* e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b);
cudaError_t cudaEventQuery(cudaEvent_t e);
cudaError_t cudaEventDestroy(cudaEvent_t e);
// Page-locked host memory: the only host memory a captured copy may touch.
cudaError_t cudaMallocHost(void** p, size_t bytes);
cudaError_t cudaFreeHost(void* p);

// Stream capture and graphs (graphs.cpp). While a stream captures, its launches and copies are
// recorded instead of run, and cudaGraphLaunch replays them in order. What CUDA forbids during a
// capture (cudaMalloc, cudaFree, synchronizing, querying events, copies to or from pageable host
// memory, work on the legacy stream) fails with cudaErrorStreamCaptureUnsupported (or
// ...Implicit) and invalidates the capture, so that cudaStreamEndCapture fails with
// cudaErrorStreamCaptureInvalidated, as on a GPU. A thread in cudaStreamCaptureModeRelaxed
// (cudaThreadExchangeStreamCaptureMode) may call cudaMalloc and cudaFree.
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* graph);
cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus* status);
cudaError_t cudaThreadExchangeStreamCaptureMode(cudaStreamCaptureMode* mode);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long flags = 0);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);

namespace emu {
// Runs body() once per thread of every block. Returns cudaErrorInvalidConfiguration (and runs
// nothing) for a configuration a GPU would reject.
cudaError_t run_grid(dim3 grid, dim3 block, const std::function<void()>& body);

// Runs the launch now, or records it when `s` is capturing (graphs.cpp); a launch CUDA would
// refuse during a capture sets the last error instead.
void submit_launch(cudaStream_t s, dim3 grid, dim3 block, std::function<void()> body);

// What `kernel<<<grid, block, smem, stream>>>(args...)` becomes (see translate.py). The arguments
// are copied at the launch, as CUDA copies them, so a recorded launch replays with the same ones.
template <typename... P, typename... A>
void launch(cudaStream_t s, dim3 grid, dim3 block, void (*kernel)(P...), A&&... args) {
  auto params = std::make_shared<std::tuple<std::decay_t<P>...>>(std::forward<A>(args)...);
  submit_launch(s, grid, block, [kernel, params] { std::apply(kernel, *params); });
}
}  // namespace emu
