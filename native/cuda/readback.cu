// Readback: device-to-host copies the host reads later. The copy goes to page-locked memory (a
// copy to pageable memory would make the host wait for it) and an event marks its end; wait()
// blocks on that event only, that is on the work queued before the copy, not on what the host
// queued since. A training loop that reads step k's loss while step k+1 runs never drains the
// stream.
#include "common.cuh"

namespace kg::cuda {

Readback::Readback(size_t bytes) : bytes_(bytes) {
  KG_CUDA_CHECK(cudaMallocHost(&host_, bytes ? bytes : 1), "page-locked host memory of ", bytes, " bytes");
  cudaEvent_t e = nullptr;
  const cudaError_t err = cudaEventCreate(&e);
  if (err != cudaSuccess) {
    (void)cudaFreeHost(host_);
    detail::fail(err, "cudaEventCreate", "a readback event");
  }
  done_ = e;
}

Readback::~Readback() {
  (void)cudaEventDestroy(static_cast<cudaEvent_t>(done_));
  (void)cudaFreeHost(host_);
}

void Readback::enqueue(const void* src, size_t at, size_t bytes) {
  if (at > bytes_ || bytes > bytes_ - at) {
    throw CudaError(detail::describe("Readback: ", bytes, " bytes at offset ", at, " do not fit in ", bytes_));
  }
  cudaStream_t s = detail::stream();
  KG_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(host_) + at, src, bytes, cudaMemcpyDeviceToHost, s),
                "device to page-locked host, ", bytes, " bytes");
  KG_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(done_), s), "recording a readback event");
}

const void* Readback::wait() {
  KG_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(done_)), "waiting for a readback");
  detail::note_event_wait();
  return host_;
}

}  // namespace kg::cuda
