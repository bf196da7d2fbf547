// Softmax cross-entropy over the rows of (n, k) logits, with labels given as float class indices.
// Stable: exponentials are taken of x - max(row) <= 0 and accumulated in double, so logits of any
// magnitude (1e4 and beyond) give finite losses.
//
// The binding refuses labels that are not class indices; the kernels still never read outside a
// row whatever the labels hold, and give NaN (loss and gradient) for such a row.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kg/ops.h"
#include "parallel.h"

namespace kg::cpu {
namespace {

struct RowStats {
  float max;
  double sum_exp;  // sum exp(x - max)
};

RowStats row_stats(const float* row, int64_t k) {
  float mx = row[0];
  for (int64_t j = 1; j < k; ++j) mx = std::max(mx, row[j]);
  double total = 0.0;
  for (int64_t j = 0; j < k; ++j) total += std::exp(double(row[j]) - double(mx));
  return {mx, total};
}

// The class index a label holds, or -1 when it holds none (fractional, NaN, out of [0, k)).
int64_t class_index(float label, int64_t k) {
  if (!(label >= 0.0f && label < static_cast<float>(k)) || label != std::floor(label)) return -1;
  return static_cast<int64_t>(label);
}

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

template <class F>
void for_rows(int64_t n, int64_t k, F&& f) {
  parallel_range(n, std::max<int64_t>(1, kElementwiseGrain / 8 / std::max<int64_t>(k, 1)),
                 [&](int64_t begin, int64_t end) {
                   for (int64_t i = begin; i < end; ++i) f(i);
                 });
}

}  // namespace

void softmax_xent_forward(int64_t n, int64_t k, const float* logits, const float* labels, float* loss) {
  for_rows(n, k, [&](int64_t i) {
    const float* row = logits + i * k;
    const RowStats st = row_stats(row, k);
    const int64_t label = class_index(labels[i], k);
    loss[i] = label < 0 ? kNaN : float(std::log(st.sum_exp) + (double(st.max) - double(row[label])));
  });
}

void softmax_xent_forward_sum(int64_t n, int64_t k, const float* logits, const float* labels, float scale,
                              float* out, float* grad) {
  std::vector<float> losses(static_cast<size_t>(n));
  softmax_xent_forward(n, k, logits, labels, losses.data());
  reduce_sum(1, n, 1, scale, losses.data(), out);
  if (grad) {
    const float one = 1.0f;  // the upstream gradient backward() starts from, for every row
    softmax_xent_backward(n, k, logits, labels, &one, false, scale, grad);
  }
}

void softmax_xent_backward(int64_t n, int64_t k, const float* logits, const float* labels, const float* dloss,
                           bool per_row, float scale, float* dlogits) {
  for_rows(n, k, [&](int64_t i) {
    const float* row = logits + i * k;
    const RowStats st = row_stats(row, k);
    const int64_t label = class_index(labels[i], k);
    if (label < 0) {
      std::fill(dlogits + i * k, dlogits + (i + 1) * k, kNaN);
      return;
    }
    const double g = dloss[per_row ? i : 0] * scale, inv_sum = 1.0 / st.sum_exp;
    for (int64_t j = 0; j < k; ++j) {
      const double p = std::exp(double(row[j]) - double(st.max)) * inv_sum;
      dlogits[i * k + j] = float((p - (j == label ? 1.0 : 0.0)) * g);
    }
  });
}

}  // namespace kg::cpu
