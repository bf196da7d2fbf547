#include "scratch.h"

#include <algorithm>
#include <cstdlib>
#include <new>

namespace kg::cpu {
namespace {

struct ThreadBuffers {
  float* data[static_cast<int>(Scratch::Count)] = {};
  size_t capacity[static_cast<int>(Scratch::Count)] = {};
  ~ThreadBuffers() {
    for (float* p : data) std::free(p);
  }
};

thread_local ThreadBuffers buffers;

}  // namespace

float* scratch(Scratch slot, size_t floats) {
  const int i = static_cast<int>(slot);
  if (floats > buffers.capacity[i]) {
    // Grow by 1.5x at least, rounded to whole cache lines (aligned_alloc needs a multiple).
    size_t want = std::max(floats, buffers.capacity[i] + buffers.capacity[i] / 2);
    size_t bytes = (want * sizeof(float) + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, bytes);
    if (!p) throw std::bad_alloc();
    std::free(buffers.data[i]);
    buffers.data[i] = static_cast<float*>(p);
    buffers.capacity[i] = bytes / sizeof(float);
  }
  return buffers.data[i];
}

}  // namespace kg::cpu
