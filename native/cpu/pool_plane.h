// One image plane of average pooling, for kernels that pool planes they have just formed in a
// buffer of their own (batch norm + ReLU + pool) rather than a whole tensor in memory.
#pragma once

#include "kg/shapes.h"

namespace kg::cpu {

// out (oh x ow) = the average pool of one plane `in` (h x w) of shape s; s.n and s.c are ignored.
// avgpool2d_forward runs exactly this on every plane, so the results are the same bits.
void avgpool2d_plane(const PoolShape& s, const float* in, float* out);

}  // namespace kg::cpu
