// Up to kSgdGroupMax parameters updated by one SGD launch (sgd_update_many in ops.inc). Passed
// to the kernel by value, as its parameter block (CUDA allows 4 KiB), so a captured launch holds
// the whole table and needs no device copy of it.
#pragma once
#include <cstdint>

namespace kg {

constexpr int kSgdGroupMax = 64;

struct SgdTensor {
  float* param;
  const float* grad;
  float* velocity;  // null without momentum
  int64_t n;
  float weight_decay;
};

struct SgdGroup {
  int count;
  float momentum;
  bool nesterov;
  SgdTensor items[kSgdGroupMax];
};

}  // namespace kg
