// What batch norm's training forward pass does with a channel's statistics besides normalizing:
// it checks them and moves the running statistics towards them, in the kernel that has just
// computed them, so that a training layer costs no launch beyond its own two. The rules are shared
// by the CPU and CUDA kernels so that both backends agree to the bit.
#pragma once
#include <cfloat>
#include <cstdint>

#ifndef KG_HOST_DEVICE
#ifdef __CUDACC__
#define KG_HOST_DEVICE __host__ __device__
#else
#define KG_HOST_DEVICE
#endif
#endif

namespace kg {

// The optional extras of batchnorm_forward_train (ops.inc). Every pointer may be null; a default
// BnRunningUpdate does nothing.
struct BnRunningUpdate {
  // c floats each, both or neither: running = (1 - momentum) * batch + momentum * running.
  float* running_mean = nullptr;
  float* running_var = nullptr;
  // The weight of the old running value (exponential averaging). 0 takes the batch's statistics
  // as they are, whatever the running values hold (even NaN), as the first batch does.
  double momentum = 0.0;
  // The running variance tracks the batch variance times m / (m - 1) (m values per channel).
  bool unbiased = false;
  // One float, the count of batches averaged so far, incremented once per call; given only with
  // the running statistics.
  float* num_batches_tracked = nullptr;
  // Cumulative averaging: momentum = seen / (seen + 1), seen being the count before this batch,
  // read on the device (a captured step cannot read it on the host).
  bool cumulative = false;
  // status[status_offset + ch] = the failure kind of channel ch (BnFailure), written for every
  // channel on every call: a buffer shared by the layers of a step needs no clearing.
  float* status = nullptr;
  int64_t status_offset = 0;
};

// Why a channel's statistics cannot be used. A channel that fails keeps its running statistics.
enum BnFailure : int {
  kBnFine = 0,
  kBnMeanNotFinite = 1,      // the batch holds NaN or infinite values
  kBnInvstdInfinite = 2,     // zero variance with eps 0
  kBnInvstdNotPositive = 3,  // a variance that overflowed where it was computed
  kBnVarianceNotFinite = 4,  // beyond float, so the running variance cannot hold it (tracked only)
};

KG_HOST_DEVICE inline bool bn_finite(float v) { return v >= -FLT_MAX && v <= FLT_MAX; }

KG_HOST_DEVICE inline int bn_failure(float mean, float invstd, float var, bool tracked) {
  if (!bn_finite(mean)) return kBnMeanNotFinite;
  if (invstd > FLT_MAX) return kBnInvstdInfinite;
  if (!(invstd > 0.0f)) return kBnInvstdNotPositive;
  if (tracked && !bn_finite(var)) return kBnVarianceNotFinite;
  return kBnFine;
}

// The weights of one update, each rounded once to float from double, as the host formed them when
// the update was a separate axpby: old = momentum, mean = 1 - momentum, var = mean's weight times
// m / (m - 1) when unbiased. `seen` is the count before this batch (read only when cumulative).
struct BnRunningWeights {
  float old, mean, var;
};
KG_HOST_DEVICE inline BnRunningWeights bn_running_weights(const BnRunningUpdate& u, double m, float seen) {
  const double momentum = u.cumulative ? static_cast<double>(seen) / (static_cast<double>(seen) + 1.0) : u.momentum;
  const double batch = 1.0 - momentum;
  return {static_cast<float>(momentum), static_cast<float>(batch),
          static_cast<float>(u.unbiased ? batch * (m / (m - 1.0)) : batch)};
}

// axpby's expression (elementwise.cu, elementwise.cpp), which this update replaces: a zero weight
// on the old value does not read it.
KG_HOST_DEVICE inline float bn_running_average(float running, float batch, float w_batch, float w_old) {
  return w_old == 0.0f ? w_batch * batch : w_batch * batch + w_old * running;
}

}  // namespace kg
