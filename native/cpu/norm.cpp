// l2_norm: the Euclidean norm of a vector, for gradient clipping. Squares are summed in double
// (accumulate.h), chunk by chunk in parallel, and the chunks' sums are added in chunk order; the
// chunks depend on n alone, so the result is the same for any number of threads.
#include <cmath>
#include <vector>

#include "accumulate.h"
#include "kg/ops.h"
#include "parallel.h"

namespace kg::cpu {

void l2_norm(int64_t n, const float* x, float* out) {
  const int64_t chunks = ceil_div(n, kElementwiseGrain);
  std::vector<double> partial(static_cast<size_t>(chunks));
  parallel_for(chunks, chunks > 1, [&](int64_t c) {
    const int64_t begin = c * kElementwiseGrain, len = std::min(n - begin, kElementwiseGrain);
    partial[static_cast<size_t>(c)] = sum_squared_deviation(x + begin, len, 0.0);
  });
  double total = 0.0;
  for (double p : partial) total += p;
  *out = static_cast<float>(std::sqrt(total));
}

}  // namespace kg::cpu
