// A convolution's bias gradient, db[k] = the sum of filter k's planes of dy over the samples.
// Each plane is summed on its own (accumulate.h's sum, in double) and the planes are added in
// sample order, so the result depends only on dy. The filter gradient's kernels take the sums of
// a sample's planes right after reading them (they are then in the cache), where a pass of its
// own would read dy from memory once more: conv2d_backward_bias and those kernels give the same
// bits.
#pragma once
#include <cstdint>
#include <vector>

#include "kg/shapes.h"

namespace kg::cpu {

class BiasSums {
 public:
  // For db (nothing is gathered where db is null).
  BiasSums(const ConvShape& s, float* db);
  // Sample n's planes summed (from any thread, each sample once).
  void sample(const float* dy, int64_t n);
  // db written from the samples' sums.
  void finish() const;

 private:
  int64_t k_, n_, pixels_;
  float* db_;
  std::vector<double> planes_;  // per (sample, filter)
};

}  // namespace kg::cpu
