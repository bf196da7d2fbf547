// What the emulator's own files share (not seen by the kernels): errors, the device lock, the
// launch in progress, device memory and the fault handlers that watch both kinds of memory.
#pragma once
#include <ucontext.h>

#include <cstddef>
#include <mutex>
#include <string>

#include "cuda_runtime.h"

namespace emu {

void set_last_error(cudaError_t e);
cudaError_t take_last_error();

// One GPU: launches, copies and allocations from any host thread take this lock in turn.
std::recursive_mutex& device_lock();

// The launch in progress (execution.cpp), for reports: "kernel K, block (x,y,z), thread (x,y,z)".
std::string where();
// Prints "emu: <msg> (<where>)" and aborts: what a GPU would turn into a sticky error, the
// emulator reports at the line that caused it.
[[noreturn]] void die(const std::string& msg);

// The thread running now (execution.cpp): its linear index in the block, and the epochs that
// order its accesses: how many __syncthreads its block has passed, how many shuffles its warp has.
int current_thread();
unsigned block_epoch();
unsigned warp_epoch(int warp);

// Shared memory (shared_memory.cpp): one arena for the block that runs, NaN-filled at each block's
// start; under EMU_RACECHECK=1 every access is checked against the other threads' since the last
// barrier.
void shared_launch_begin();
void shared_block_begin();
void shared_launch_end();

// Device memory (device_memory.cpp): every buffer ends right before an inaccessible page, and
// host code outside kernels and copies cannot touch it at all.
cudaError_t device_malloc(void** p, size_t bytes);
cudaError_t device_free(void* p);
size_t device_total();
size_t device_used();
// memmove for copies that touch device memory (cudaMemcpy*): runs with the device lock held and
// the buffers involved open to the copy, as a DMA engine would.
void device_memmove(void* dst, const void* src, size_t bytes);
// During a launch, device memory is readable and each block's writes are tracked, so two blocks
// writing the same word are reported (block_end compares each page a block wrote with its image
// from before the block).
void device_launch_begin();
void device_block_end(const uint3& block);
void device_launch_end();

// Whether CUDA accepts this launch configuration (execution.cpp).
bool launch_config_ok(dim3 grid, dim3 block);

// Stream capture (graphs.cpp). A "potentially unsafe" call during a capture (allocating, freeing,
// synchronizing) returns cudaErrorStreamCaptureUnsupported here, and the capture is invalidated;
// cudaSuccess means it may go ahead. capture_sync_stream is that check for synchronizing `s`.
cudaError_t capture_unsafe_call();
cudaError_t capture_sync_stream(cudaStream_t s);
// A copy on `s`: run now, recorded into the capture, or refused (returns the error).
cudaError_t submit_copy(cudaStream_t s, void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
// Records `node` when `s` is capturing (true; *err says whether it was accepted); false: run it now.
bool record_if_capturing(cudaStream_t s, std::function<void()> node, cudaError_t* err);
// Page-locked host memory (cudaMallocHost, runtime_api.cpp): whether [p, p + bytes) lies in it.
bool is_pinned(const void* p, size_t bytes);

// Fault handling (faults.cpp dispatches SIGSEGV/SIGBUS/SIGTRAP; any fault that is not the
// emulator's goes to the handler that was there before).
bool shared_fault(void* addr, bool write, ucontext_t* uc);  // execution.cpp, race checking
void shared_step_done(ucontext_t* uc);                       // after the single-stepped access
bool device_fault(void* addr, bool write);                   // device_memory.cpp
void request_single_step(ucontext_t* uc);
void end_single_step(ucontext_t* uc);
void print_host_backtrace();

}  // namespace emu
