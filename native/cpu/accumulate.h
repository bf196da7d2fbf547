// Sums of float data accumulated in double precision, in a fixed order, for the statistics of
// batch norm and the reductions. The contiguous sums run 16 independent double lanes (lane j
// takes elements j, j + 16, ...; vectorizable without reassociating anything), then add the
// lanes pairwise in a fixed tree and finally the tail, so a result depends only on the data.
// The row forms accumulate a (rows, c) matrix down its columns, elementwise across c.
#pragma once
#include <cstdint>

namespace kg::cpu {

double sum(const float* x, int64_t n);
// sum (x - mean)^2
double sum_squared_deviation(const float* x, int64_t n, double mean);
// *sdy = sum dy, *sdyx = sum dy * (x - mean); with relu_y, dy counts only where relu_y > 0 (the
// gradient through a ReLU whose output is relu_y)
void sum_grad_terms(const float* x, const float* dy, int64_t n, double mean, double* sdy, double* sdyx,
                    const float* relu_y = nullptr);

// acc[j] += x[j]
void add_row(double* acc, const float* x, int64_t c);
// acc[j] += (x[j] - mean[j])^2
void add_row_squared_deviation(double* acc, const float* x, const double* mean, int64_t c);
// sdy[j] += dy[j], sdyx[j] += dy[j] * (x[j] - mean[j]); relu_y as for sum_grad_terms
void add_row_grad_terms(double* sdy, double* sdyx, const float* x, const float* dy, const double* mean, int64_t c,
                        const float* relu_y = nullptr);

}  // namespace kg::cpu
