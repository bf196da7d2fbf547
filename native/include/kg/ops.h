// The kernels of every backend, over plain pointers and shapes. See ops.inc for the contract.
#pragma once
#include <cstdint>
#include "kg/batchnorm_update.h"
#include "kg/sgd_group.h"
#include "kg/shapes.h"

namespace kg::cpu {
#include "kg/ops.inc"
}  // namespace kg::cpu

#if KG_WITH_CUDA
namespace kg::cuda {
#include "kg/ops.inc"
}  // namespace kg::cuda
#endif
