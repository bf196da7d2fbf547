// flag_nonfinite_stats on the CPU (ops.inc): the same scan as the CUDA kernel.
#include <cmath>

#include "kg/ops.h"

namespace kg::cpu {

void flag_nonfinite_stats(int64_t c, const float* mean, const float* invstd, const float* var, float layer,
                          float* flag) {
  if (flag[0] != 0.0f) return;
  for (int64_t ch = 0; ch < c; ++ch) {
    const int kind = !std::isfinite(mean[ch])          ? 1
                     : invstd[ch] == INFINITY           ? 2
                     : !(invstd[ch] > 0.0f)             ? 3
                     : var && !std::isfinite(var[ch])   ? 4
                                                        : 0;
    if (kind) {
      flag[0] = static_cast<float>(kind);
      flag[1] = static_cast<float>(ch);
      flag[2] = layer;
      return;
    }
  }
}

}  // namespace kg::cpu
