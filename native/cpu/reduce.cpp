// Reductions: reduce_sum over the middle axis of (outer, r, inner), and argmax over rows.
#include <algorithm>
#include <vector>

#include "accumulate.h"
#include "kg/ops.h"
#include "parallel.h"

namespace kg::cpu {
namespace {

constexpr int64_t kReduceChunk = 32768;  // elements per work item
constexpr int64_t kInnerBlock = 1024;    // inner positions summed side by side per item
constexpr int64_t kMaxPieces = 32;       // pieces the r axis is cut into when outputs are few

}  // namespace

// Sums in double. Output blocks ("slabs": one outer index times up to kInnerBlock inner ones)
// are independent items; when there are few of them (a full reduction, a bias gradient) the r
// axis is also cut into pieces, whose partial sums are added in piece order. The cut depends on
// the shape only, so results are the same for any number of threads.
void reduce_sum(int64_t outer, int64_t r, int64_t inner, float scale, const float* x, float* y) {
  if (outer * inner == 0) return;
  if (r == 0) {
    std::fill(y, y + outer * inner, 0.0f);
    return;
  }
  const int64_t block = std::min(inner, kInnerBlock);
  const int64_t blocks = ceil_div(inner, block);
  const int64_t slabs = outer * blocks;
  int64_t pieces = slabs >= 16 ? 1 : std::clamp<int64_t>(r * block / kReduceChunk, 1, kMaxPieces);
  const int64_t piece_len = ceil_div(r, pieces);
  pieces = ceil_div(r, piece_len);
  const bool parallel = outer * r * inner > kParallelElements;

  // Each item sums into a local block; with one piece per slab that is the result, otherwise
  // the pieces' partial sums are kept and added in piece order afterwards.
  std::vector<double> partial(pieces > 1 ? size_t(slabs * pieces * block) : 0);
  parallel_for(slabs * pieces, parallel, [&](int64_t item) {
    const int64_t slab = item / pieces, piece = item % pieces;
    const int64_t o = slab / blocks, i0 = slab % blocks * block, len = std::min(block, inner - i0);
    const int64_t r0 = piece * piece_len, r1 = std::min(r, r0 + piece_len);
    double acc[kInnerBlock];
    if (inner == 1) {
      acc[0] = sum(x + o * r + r0, r1 - r0);  // contiguous: the 16-lane sum
    } else {
      std::fill(acc, acc + len, 0.0);
      for (int64_t k = r0; k < r1; ++k) add_row(acc, x + (o * r + k) * inner + i0, len);
    }
    if (pieces == 1) {
      for (int64_t i = 0; i < len; ++i) y[o * inner + i0 + i] = float(double(scale) * acc[i]);
    } else {
      std::copy(acc, acc + len, &partial[size_t(item * block)]);
    }
  });
  if (pieces == 1) return;
  parallel_for(slabs, parallel, [&](int64_t slab) {
    const int64_t o = slab / blocks, i0 = slab % blocks * block, len = std::min(block, inner - i0);
    for (int64_t i = 0; i < len; ++i) {
      double total = 0.0;
      for (int64_t piece = 0; piece < pieces; ++piece) total += partial[size_t((slab * pieces + piece) * block + i)];
      y[o * inner + i0 + i] = float(double(scale) * total);
    }
  });
}

// The first maximum of each row; a NaN counts as larger than everything (the first NaN wins),
// like numpy.argmax, so a row that went NaN is never reported as a confident class.
void argmax_rows(int64_t n, int64_t k, const float* x, float* out) {
  parallel_range(n, std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(k, 1)), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float* row = x + i * k;
      int64_t best = 0;
      for (int64_t j = 1; j < k && row[best] == row[best]; ++j) {
        if (row[j] > row[best] || row[j] != row[j]) best = j;
      }
      out[i] = float(best);
    }
  });
}

}  // namespace kg::cpu
