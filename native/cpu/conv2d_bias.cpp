#include "conv2d_bias.h"

#include "accumulate.h"
#include "kg/ops.h"
#include "parallel.h"

namespace kg::cpu {

BiasSums::BiasSums(const ConvShape& s, float* db)
    : k_(s.k), n_(s.n), pixels_(s.oh * s.ow), db_(db), planes_(db ? size_t(s.n * s.k) : 0) {}

void BiasSums::sample(const float* dy, int64_t n) {
  if (!db_) return;
  for (int64_t k = 0; k < k_; ++k) planes_[size_t(n * k_ + k)] = sum(dy + (n * k_ + k) * pixels_, pixels_);
}

void BiasSums::finish() const {
  if (!db_) return;
  for (int64_t k = 0; k < k_; ++k) {
    double total = 0.0;
    for (int64_t n = 0; n < n_; ++n) total += planes_[size_t(n * k_ + k)];
    db_[k] = float(total);
  }
}

void conv2d_backward_bias(const ConvShape& s, const float* dy, float* db) {
  BiasSums sums(s, db);
  parallel_for(s.n, s.n * s.k * s.oh * s.ow >= kParallelElements, [&](int64_t n) { sums.sample(dy, n); });
  sums.finish();
}

}  // namespace kg::cpu
