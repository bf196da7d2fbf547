// The dropout mask as a pure function of (seed, index), shared by the CPU and CUDA kernels so
// that both backends, and any number of threads, draw the same mask. It is splitmix64: the
// index-th output of the generator seeded with mix(seed). No state, so backward recomputes the
// mask instead of saving it.
#pragma once
#include <cstdint>

#ifdef __CUDACC__
#define KG_HOST_DEVICE __host__ __device__
#else
#define KG_HOST_DEVICE
#endif

namespace kg {

KG_HOST_DEVICE inline uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The generator's state for a seed; computed once per call of a kernel, not per element.
KG_HOST_DEVICE inline uint64_t dropout_key(uint64_t seed) { return splitmix64_mix(seed + 0x9E3779B97F4A7C15ull); }

// Uniform in [0, 1) with 24 random bits: exact in float32, so `u >= p` means the same on every
// backend. `key` is dropout_key(seed).
KG_HOST_DEVICE inline float dropout_uniform(uint64_t key, uint64_t index) {
  const uint64_t z = splitmix64_mix(key + (index + 1) * 0x9E3779B97F4A7C15ull);
  return static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
}

}  // namespace kg
