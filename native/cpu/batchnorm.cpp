// Batch normalization over x seen as (n, c, l): statistics per channel c over the m = n * l
// values, l = h * w for images and l = 1 for (n, c) matrices.
//
// Accuracy, the point of this library:
// - mean and variance come from one pass over memory, accumulated in double: each run of a
//   channel (one sample's plane, or a chunk of rows) is summed, then its squared deviations are
//   summed around its own mean while it is still in L1, and the runs' (count, mean, M2) are merged
//   in a fixed order with Chan's update, M2 += M2_b + delta^2 * n_a * n_b / n. Never
//   E[x^2] - E[x]^2, which cancels catastrophically when |mean| >> std: every term is a square.
//   The mean itself is the plain double sum of the runs' sums over m. The variance is never
//   negative, and a constant channel gets exactly its value as mean (m * v is exact in double)
//   and exactly zero variance (every run's mean is v, every delta 0).
// - x - mean is formed as (x - hi) - lo, with the double mean carried as the float pair hi =
//   float(mean), lo = float(mean - hi). Near the mean, x - hi is exact (Sterbenz), so the only
//   rounding is that of a number of the order of the spread: at mean 1e4 and spread 0.1 the
//   normalized output is good to about 1e-7, where x - float(mean) alone would be off by up to
//   half an ulp of 1e4, 5e-3 of the spread. A constant channel has hi = the constant and lo = 0,
//   so it normalizes to exactly 0 and the output is exactly beta. Backward gets the same pair, so
//   forward is exactly the map that backward differentiates. The cost is one subtraction per
//   element in passes that are bound by memory.
// - invstd = float(1 / sqrt(double(var) + double(eps))) with var the float variance, the same
//   expression in every kernel: a single rounding. (eps = 0 with a constant channel gives an
//   infinite invstd; callers use eps > 0.)
// - Values near +-1e38: (x - mean)^2 is summed in double, which holds it, but the variance itself
//   may exceed float (it is reported as infinite). invstd is then formed from the double variance:
//   about 1e-38, representable, so such a channel still normalizes to +-1 instead of to beta.
//
// The training forward pass also checks each channel's statistics and updates the running
// statistics of the channels that pass, on the rules of kg/batchnorm_update.h, shared with CUDA.
//
// Determinism: the work items (channel x sample chunk, or row chunks when l == 1) depend only on
// the shape; each item sums in double in a fixed order and items are combined in a fixed order.
// Whether the items of a channel run on one thread, right before that channel's output pass
// (channel_major), or spread over the threads, only decides who computes what.
#include <algorithm>
#include <cmath>
#include <vector>

#include "accumulate.h"
#include "isa.h"
#include "kg/ops.h"
#include "parallel.h"
#include "pool_plane.h"
#include "scratch.h"
#include "simd.h"
#if defined(KG_ISA_BUILDS)
#include <immintrin.h>
#endif

namespace kg::cpu {
namespace {

// Elements per statistics work item, and channels per item for (n, c) inputs.
constexpr int64_t kStatsChunk = 16384;
constexpr int64_t kChannelBlock = 1024;

float inv_std(float var, float eps) { return float(1.0 / std::sqrt(double(var) + double(eps))); }

// The work items of the statistics, a function of the shape alone (so sums never depend on the
// thread count). Planes (l > 1): a channel's planes over `per_item` samples, `chunks` of them per
// channel. Rows (l == 1): `chunks` chunks of `per_chunk` rows.
struct PlaneItems {
  int64_t per_item, chunks;
};
PlaneItems plane_items(const BnShape& s) {
  const int64_t per_item = std::clamp<int64_t>(kStatsChunk / s.l, 1, s.n);  // samples
  return {per_item, ceil_div(s.n, per_item)};
}
struct RowChunks {
  int64_t chunks, per_chunk;
};
// At most 64 chunks (and at most one per 8 rows) keep the chunks' c-wide partial sums small next to x.
RowChunks row_chunks(const BnShape& s) {
  const int64_t chunks = std::clamp<int64_t>(s.n * s.c / kStatsChunk, 1, std::max<int64_t>(1, std::min<int64_t>(64, s.n / 8)));
  return {chunks, ceil_div(s.n, chunks)};
}

// The K per-element terms' sums over plane item `item` (channel item / chunks, its samples
// chunk item % chunks of plane_items): acc[k] = a running double sum over the samples' runs.
//   run(offset, len, ch, double t[K]):  t = the terms' sums over x[offset, offset + len), all in
//                                       channel ch
template <int K, class Run>
void plane_item_sums(const BnShape& s, const PlaneItems& plan, int64_t item, Run& run, double* acc) {
  const int64_t ch = item / plan.chunks, first = item % plan.chunks * plan.per_item;
  std::fill(acc, acc + K, 0.0);
  for (int64_t i = first; i < std::min(s.n, first + plan.per_item); ++i) {
    double t[K];
    run((i * s.c + ch) * s.l, s.l, ch, t);
    for (int k = 0; k < K; ++k) acc[k] += t[k];
  }
}

// Channel ch's sums (l > 1): its items' sums added in item order. The item-parallel schedule of
// channel_sums adds the same partial sums in the same order, so both give the same bits.
template <int K, class Run>
void channel_plane_sums(const BnShape& s, const PlaneItems& plan, int64_t ch, Run& run, double* out) {
  std::fill(out, out + K, 0.0);
  for (int64_t ck = 0; ck < plan.chunks; ++ck) {
    double acc[K];
    plane_item_sums<K>(s, plan, ch * plan.chunks + ck, run, acc);
    for (int k = 0; k < K; ++k) out[k] += acc[k];
  }
}

// out[k * c + ch] = the sum over channel ch's elements of K per-element terms, in double.
//   run(offset, len, ch, double t[K]):  as for plane_item_sums (used when l > 1: contiguous runs)
//   row(offset, acc, c0, len):          acc[k * c + j] += the terms of x[offset + j] for
//                                       c0 <= j < c0 + len (used when l == 1: a slice of one
//                                       row of the (n, c) matrix)
template <int K, class Run, class Row>
void channel_sums(const BnShape& s, double* out, Run&& run, Row&& row) {
  const int64_t c = s.c;
  std::fill(out, out + K * c, 0.0);
  if (s.n * s.c * s.l == 0) return;
  const bool parallel = s.n * s.c * s.l > kParallelElements;
  if (s.l > 1) {
    const PlaneItems plan = plane_items(s);
    std::vector<double> partial(c * plan.chunks * K, 0.0);
    parallel_for(c * plan.chunks, parallel, [&](int64_t item) { plane_item_sums<K>(s, plan, item, run, &partial[size_t(item * K)]); });
    for (int64_t ch = 0; ch < c; ++ch) {
      for (int k = 0; k < K; ++k) {
        double total = 0.0;
        for (int64_t ck = 0; ck < plan.chunks; ++ck) total += partial[size_t((ch * plan.chunks + ck) * K + k)];
        out[k * c + ch] = total;
      }
    }
  } else {
    // Items: (chunk of rows) x (block of channels). Each row chunk has its own c-wide partial sums.
    const RowChunks rc = row_chunks(s);
    const int64_t chunks = rc.chunks, per_chunk = rc.per_chunk;
    const int64_t block = std::min<int64_t>(c, kChannelBlock), blocks = ceil_div(c, block);
    std::vector<double> partial(chunks * K * c, 0.0);
    parallel_for(chunks * blocks, parallel, [&](int64_t item) {
      const int64_t ck = item / blocks, c0 = item % blocks * block, len = std::min(block, c - c0);
      double* acc = &partial[size_t(ck * K * c)];
      for (int64_t i = ck * per_chunk; i < std::min(s.n, (ck + 1) * per_chunk); ++i) row(i * c, acc, c0, len);
    });
    for (int64_t ck = 0; ck < chunks; ++ck) {
      for (int64_t j = 0; j < K * c; ++j) out[j] += partial[size_t(ck * K * c + j)];
    }
  }
}

// Count, mean and sum of squared deviations (M2) of a set of values, and Chan's merge of two sets:
// exact in the count, a sum of non-negative terms in M2.
struct Moments {
  double n = 0.0, mean = 0.0, m2 = 0.0;
  void merge(double n_b, double mean_b, double m2_b) {
    if (n == 0.0) {  // (the general update would form 0 * delta^2, NaN for an infinite mean_b)
      *this = {n_b, mean_b, m2_b};
      return;
    }
    const double total = n + n_b, delta = mean_b - mean;
    mean += delta * (n_b / total);
    m2 += m2_b + delta * delta * (n * n_b / total);
    n = total;
  }
};

// One plane item's share of a channel's moments: the double sum of its values, and their moments
// merged sample by sample, each sample's plane summed, then squared around its own mean.
struct MomentItem {
  double sum = 0.0;
  Moments moments;
};
MomentItem plane_item_moments(const BnShape& s, const PlaneItems& plan, const float* x, int64_t item) {
  const int64_t ch = item / plan.chunks, first = item % plan.chunks * plan.per_item;
  MomentItem it;
  for (int64_t i = first; i < std::min(s.n, first + plan.per_item); ++i) {
    const float* run = x + (i * s.c + ch) * s.l;
    const double run_sum = sum(run, s.l), run_mean = run_sum / double(s.l);
    it.sum += run_sum;
    it.moments.merge(double(s.l), run_mean, sum_squared_deviation(run, s.l, run_mean));
  }
  return it;
}

// A channel's mean and M2 from its items, merged in item order; item(ck) gives item ck.
template <class Item>
void merge_items(int64_t chunks, double m, const Item& item, double* mean, double* m2) {
  double total = 0.0;
  Moments all;
  for (int64_t ck = 0; ck < chunks; ++ck) {
    const MomentItem it = item(ck);
    total += it.sum;
    all.merge(it.moments.n, it.moments.mean, it.moments.m2);
  }
  *mean = total / m;
  *m2 = all.m2;
}

// Channel ch's mean and M2 (l > 1), its items computed in order on the calling thread.
void channel_plane_moments(const BnShape& s, const PlaneItems& plan, const float* x, int64_t ch, double* mean,
                           double* m2) {
  merge_items(plan.chunks, double(s.n * s.l), [&](int64_t ck) { return plane_item_moments(s, plan, x, ch * plan.chunks + ck); },
              mean, m2);
}

// Per channel: mean[ch] = the double sum of its m values over m, and m2[ch] = their sum of squared
// deviations from the mean, both from one pass over x (see the top of this file). The work items
// are channel_sums' (they depend on the shape alone), so the mean is bitwise the mean of the
// two-pass form; M2 differs from it only by double rounding.
void channel_moments(const BnShape& s, const float* x, double* mean, double* m2) {
  const int64_t c = s.c;
  const double m = double(s.n * s.l);
  std::fill(mean, mean + c, 0.0);
  std::fill(m2, m2 + c, 0.0);
  if (s.n * s.c * s.l == 0) return;
  const bool parallel = s.n * s.c * s.l > kParallelElements;
  if (s.l > 1) {
    const PlaneItems plan = plane_items(s);
    std::vector<MomentItem> items(size_t(c * plan.chunks));
    parallel_for(c * plan.chunks, parallel, [&](int64_t item) { items[size_t(item)] = plane_item_moments(s, plan, x, item); });
    for (int64_t ch = 0; ch < c; ++ch) {
      merge_items(plan.chunks, m, [&](int64_t ck) { return items[size_t(ch * plan.chunks + ck)]; }, &mean[ch], &m2[ch]);
    }
    return;
  }
  // Rows of an (n, c) matrix: a chunk of rows is one run per channel, summed down its columns,
  // then squared around the chunk's column means while the chunk is still in cache.
  const RowChunks rc = row_chunks(s);
  const int64_t chunks = rc.chunks, per_chunk = rc.per_chunk;
  const int64_t block = std::min<int64_t>(c, kChannelBlock), blocks = ceil_div(c, block);
  std::vector<double> sums(size_t(chunks * c), 0.0), means(size_t(chunks * c)), devs(size_t(chunks * c), 0.0);
  parallel_for(chunks * blocks, parallel, [&](int64_t item) {
    const int64_t ck = item / blocks, c0 = item % blocks * block, len = std::min(block, c - c0);
    const int64_t r0 = ck * per_chunk, r1 = std::min(s.n, r0 + per_chunk);
    double* sum_c = &sums[size_t(ck * c)];
    double* mean_c = &means[size_t(ck * c)];
    for (int64_t i = r0; i < r1; ++i) add_row(sum_c + c0, x + i * c + c0, len);
    for (int64_t j = c0; j < c0 + len; ++j) mean_c[j] = sum_c[j] / double(std::max<int64_t>(1, r1 - r0));
    for (int64_t i = r0; i < r1; ++i) add_row_squared_deviation(&devs[size_t(ck * c)] + c0, x + i * c + c0, mean_c + c0, len);
  });
  for (int64_t ch = 0; ch < c; ++ch) {
    double total = 0.0;
    Moments all;
    for (int64_t ck = 0; ck < chunks; ++ck) {
      const int64_t rows = std::max<int64_t>(0, std::min(s.n, (ck + 1) * per_chunk) - ck * per_chunk);
      total += sums[size_t(ck * c + ch)];
      if (rows > 0) all.merge(double(rows), means[size_t(ck * c + ch)], devs[size_t(ck * c + ch)]);
    }
    mean[ch] = total / m;
    m2[ch] = all.m2;
  }
}

// Calls run(offset, len, ch) over contiguous runs of one channel (l > 1), or row(offset) over
// rows of c channels (l == 1), in parallel chunks: the elementwise passes.
template <class Run, class Row>
void for_each_block(const BnShape& s, Run&& run, Row&& row) {
  if (s.n * s.c * s.l == 0) return;
  if (s.l > 1) {
    parallel_range(s.n * s.c, std::max<int64_t>(1, kElementwiseGrain / s.l), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) run(r * s.l, s.l, r % s.c);
    });
  } else {
    parallel_range(s.n, std::max<int64_t>(1, kElementwiseGrain / s.c), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) row(r * s.c);
    });
  }
}

// max(v, 0) when Relu, with NaN kept: the expression of relu_forward, so fused and unfused agree.
template <bool Relu>
inline float activate(float v) {
  if constexpr (Relu) return (v > 0.0f || v != v) ? v : 0.0f;
  return v;
}

// The gradient reaching the batch norm: dy, or with the fused ReLU dy where its output y > 0.
// Both loads come first, so that the choice is a blend, not a branch on the activation's sign.
inline float through_relu(const float* dy, const float* relu_y, int64_t i) {
  const float d = dy[i], y = relu_y[i];
  return y > 0.0f ? d : 0.0f;
}

// The elementwise passes below work on one contiguous run of a channel, or on one row of an (n, c)
// matrix with per-column constants, and are compiled twice (KG_MULTIVERSION, simd.h): for AVX2 +
// FMA and for the baseline. A layer that fits in the cache runs them at the speed of the
// arithmetic, where the baseline's 4-wide SSE code took twice as long as PyTorch's AVX2.
//
// batch norm's output, ((x - hi) - lo) * k + b. Every pass that evaluates it -- the forward and
// the ReLU mask that the pooled backward recomputes -- calls this in a multiversioned function, so
// that the clone contracts it into the same FMA everywhere and the mask agrees with the forward
// bit for bit.
inline float normalized(float x, float mh, float ml, float k, float b) { return ((x - mh) - ml) * k + b; }

// y = act(normalized(x)) over one run of channel constants (mh, ml, k, b).
KG_MULTIVERSION void affine_run(bool relu, const float* x, int64_t len, float mh, float ml, float k, float b,
                                float* y) {
  if (relu) {
    for (int64_t i = 0; i < len; ++i) y[i] = activate<true>(normalized(x[i], mh, ml, k, b));
  } else {
    for (int64_t i = 0; i < len; ++i) y[i] = normalized(x[i], mh, ml, k, b);
  }
}

#if defined(KG_ISA_BUILDS)
// affine_run with AVX-512: a run's last partial vector as one masked load and store instead of a
// scalar remainder loop, which on planes of 81 pixels (9 x 9) cost as much as the vectors. The same
// FMA as the multiversioned loop's contraction, and the same ReLU (NaN kept: "not <= 0"), so the
// same bits.
KG_AVX512 void affine_run_avx512(bool relu, const float* x, int64_t len, float mh, float ml, float k, float b,
                                 float* y) {
  const __m512 vmh = _mm512_set1_ps(mh), vml = _mm512_set1_ps(ml), vk = _mm512_set1_ps(k), vb = _mm512_set1_ps(b);
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t i = 0; i < len; i += 16) {
    const __mmask16 lanes = len - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (len - i)) - 1u);
    __m512 v = _mm512_fmadd_ps(_mm512_sub_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(lanes, x + i), vmh), vml), vk, vb);
    if (relu) v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, zero, _CMP_NLE_UQ), v);
    _mm512_mask_storeu_ps(y + i, lanes, v);
  }
}
#endif

// affine_run through the widest build the CPU has.
void affine(bool relu, const float* x, int64_t len, float mh, float ml, float k, float b, float* y) {
#if defined(KG_ISA_BUILDS)
  static const bool avx512 = cpu_isa() == Isa::Avx512;
  if (avx512) return affine_run_avx512(relu, x, len, mh, ml, k, b, y);
#endif
  affine_run(relu, x, len, mh, ml, k, b, y);
}

// The same over one row of c channels.
KG_MULTIVERSION void affine_row(bool relu, const float* x, int64_t c, const float* hi, const float* lo,
                                const float* scale, const float* shift, float* y) {
  if (relu) {
    for (int64_t j = 0; j < c; ++j) y[j] = activate<true>(normalized(x[j], hi[j], lo[j], scale[j], shift[j]));
  } else {
    for (int64_t j = 0; j < c; ++j) y[j] = normalized(x[j], hi[j], lo[j], scale[j], shift[j]);
  }
}

// y = act(((x - hi[ch]) - lo[ch]) * scale[ch] + shift[ch]), the mean given as the pair (hi, lo)
void affine_relu(bool relu, const BnShape& s, const float* x, const float* hi, const float* lo, const float* scale,
                 const float* shift, float* y) {
  for_each_block(
      s,
      [&](int64_t off, int64_t len, int64_t ch) {
        affine(relu, x + off, len, hi[ch], lo[ch], scale[ch], shift[ch], y + off);
      },
      [&](int64_t off) { affine_row(relu, x + off, s.c, hi, lo, scale, shift, y + off); });
}

// Backward's dx = k * ((g - a) - ((x - mh) - ml) * b), g = dy, or dy masked where relu_y > 0 when
// relu_y is given; over one run of channel constants.
KG_MULTIVERSION void input_grad_run(const float* x, const float* dy, const float* relu_y, int64_t len, float mh,
                                    float ml, float k, float a, float b, float* dx) {
  if (relu_y) {
    for (int64_t i = 0; i < len; ++i) dx[i] = k * ((through_relu(dy, relu_y, i) - a) - ((x[i] - mh) - ml) * b);
  } else {
    for (int64_t i = 0; i < len; ++i) dx[i] = k * ((dy[i] - a) - ((x[i] - mh) - ml) * b);
  }
}

// input_grad_run without relu_y, in place: g holds the gradient reaching batch norm and gets dx.
// (One pointer for both, so that the compiler need not guard the vector loop against overlap.)
KG_MULTIVERSION void input_grad_in_place(const float* x, float* g, int64_t len, float mh, float ml, float k, float a,
                                         float b) {
  for (int64_t i = 0; i < len; ++i) g[i] = k * ((g[i] - a) - ((x[i] - mh) - ml) * b);
}

// The same over one row of c channels.
KG_MULTIVERSION void input_grad_row(const float* x, const float* dy, const float* relu_y, int64_t c, const float* hi,
                                    const float* lo, const float* k, const float* a, const float* b, float* dx) {
  for (int64_t j = 0; j < c; ++j) {
    const float g = relu_y ? through_relu(dy, relu_y, j) : dy[j];
    dx[j] = k[j] * ((g - a[j]) - ((x[j] - hi[j]) - lo[j]) * b[j]);
  }
}

// dx = g * k, g as in input_grad_run: backward with fixed statistics, through the fused ReLU; k
// one constant for the run (stride 0) or one per element of a row (stride 1).
KG_MULTIVERSION void masked_scale(const float* dy, const float* relu_y, int64_t len, const float* k, int64_t k_stride,
                                  float* dx) {
  for (int64_t i = 0; i < len; ++i) dx[i] = through_relu(dy, relu_y, i) * k[i * k_stride];
}

// Per channel: sdy = sum dy and sdyx = sum dy * (x - mean), the sums both backward forms need.
// The gradient reaching batch norm, run by run: runs(off, len, ch) points at its values for
// x[off, off + len). DyRuns reads them from dy; the pooled backward forms each plane in a buffer.
// Rows (l == 1) always read dy itself (rows_dy).
struct DyRuns {
  const float* dy;
  const float* operator()(int64_t off, int64_t, int64_t) const { return dy + off; }
};

// The double mean of each channel from the saved pair (hi, lo); lo may be null (a mean given as one float).
std::vector<double> means_of(int64_t c, const float* hi, const float* lo) {
  std::vector<double> mean(c);
  for (int64_t ch = 0; ch < c; ++ch) mean[ch] = double(hi[ch]) + (lo ? double(lo[ch]) : 0.0);
  return mean;
}

// The run function of the gradient sums (channel_sums' `run`): t = {sum g, sum g * (x - mean)} over
// one run of channel ch, g the gradient reaching batch norm there (runs, masked by relu_y if given).
template <class Runs>
struct GradTermRuns {
  const float* x;
  const Runs& runs;
  const float* relu_y;
  const double* mean;
  void operator()(int64_t off, int64_t len, int64_t ch, double* t) const {
    sum_grad_terms(x + off, runs(off, len, ch), len, mean[ch], &t[0], &t[1], relu_y ? relu_y + off : nullptr);
  }
};

template <class Runs>
void grad_sums(const BnShape& s, const float* x, const Runs& runs, const float* rows_dy, const float* relu_y,
               const float* hi, const float* lo, std::vector<double>& sdy, std::vector<double>& sdyx) {
  const std::vector<double> mean_d = means_of(s.c, hi, lo);
  std::vector<double> out(2 * s.c);
  channel_sums<2>(s, out.data(), GradTermRuns<Runs>{x, runs, relu_y, mean_d.data()},
                  [&](int64_t off, double* acc, int64_t c0, int64_t len) {
                    add_row_grad_terms(acc + c0, acc + s.c + c0, x + off + c0, rows_dy + off + c0, mean_d.data() + c0,
                                       len, relu_y ? relu_y + off + c0 : nullptr);
                  });
  sdy.assign(out.begin(), out.begin() + s.c);
  sdyx.assign(out.begin() + s.c, out.end());
}

// Checks channel ch's statistics and moves its running statistics towards them (see
// kg/batchnorm_update.h); `w` holds the weights of this batch.
void update_channel(const BnRunningUpdate& u, const BnRunningWeights& w, int64_t ch, float mean, float invstd,
                    float var) {
  const int kind = bn_failure(mean, invstd, var, u.running_mean != nullptr);
  if (u.status) u.status[u.status_offset + ch] = static_cast<float>(kind);
  if (u.running_mean && kind == kBnFine) {
    u.running_mean[ch] = bn_running_average(u.running_mean[ch], mean, w.mean, w.old);
    u.running_var[ch] = bn_running_average(u.running_var[ch], var, w.var, w.old);
  }
}

// Where the training forward saves each channel's statistics: the mean as the pair (mean, mean_lo),
// invstd and the batch variance (var may be null).
struct SavedStatistics {
  float *mean, *mean_lo, *invstd, *var;
};

// Channel ch's statistics from its double mean and M2 over m values: saved, checked, and the
// running statistics moved towards them (with this batch's weights w); returns the channel's
// scale gamma * invstd for the output pass.
float finish_channel(int64_t ch, double mean, double m2, double m, const float* gamma, float eps,
                     const SavedStatistics& save, const BnRunningUpdate& u, const BnRunningWeights& w) {
  save.mean[ch] = float(mean);
  save.mean_lo[ch] = float(mean - double(save.mean[ch]));
  const double var_d = m2 / m;
  const float var = float(var_d);
  if (save.var) save.var[ch] = var;
  save.invstd[ch] = std::isinf(var) ? float(1.0 / std::sqrt(var_d + double(eps))) : inv_std(var, eps);
  update_channel(u, w, ch, save.mean[ch], save.invstd[ch], var);
  return gamma[ch] * save.invstd[ch];
}

// The training forward's statistics of every channel (finish_channel); returns the channels'
// scales for the output pass (empty when there is no data to normalize).
std::vector<float> train_statistics(const BnShape& s, const float* x, const float* gamma, float eps,
                                    const SavedStatistics& save, const BnRunningUpdate& u) {
  const int64_t c = s.c, m = s.n * s.l;
  if (c == 0) return {};
  if (m == 0) {  // no data: report zero mean and variance rather than 0/0
    for (int64_t ch = 0; ch < c; ++ch) {
      save.mean[ch] = save.mean_lo[ch] = 0.0f;
      if (save.var) save.var[ch] = 0.0f;
      save.invstd[ch] = inv_std(0.0f, eps);
    }
    return {};
  }
  std::vector<double> mean(c), m2(c);
  channel_moments(s, x, mean.data(), m2.data());
  // Every channel's update sees the count from before this batch; it is incremented once.
  const float seen = u.num_batches_tracked ? *u.num_batches_tracked : 0.0f;
  const BnRunningWeights weights = bn_running_weights(u, double(m), seen);
  std::vector<float> scale(c);
  for (int64_t ch = 0; ch < c; ++ch) scale[ch] = finish_channel(ch, mean[ch], m2[ch], double(m), gamma, eps, save, u, weights);
  if (u.num_batches_tracked) *u.num_batches_tracked = seen + 1.0f;
  return scale;
}

// Whether the two passes of a batch norm over planes (l > 1) run channel by channel: each thread
// takes whole channels and makes both passes over one channel before the next, so that the second
// pass finds the channel's planes in the cache. Pass by pass, each pass reads the whole of x: the
// tutorial's first layer (3.5 MB) then came from memory twice inside a training step, where its
// fused backward took twice as long as alone. Channels are then the only work items, so there
// must be enough of them to keep the threads even. Both schedules give the same bits.
bool channel_major(const BnShape& s) { return s.l > 1 && s.n > 0 && s.c >= 4 * int64_t(available_threads()); }

// The training forward over planes: train_statistics, then the output plane by plane,
// out(plane, ch, scale) for each plane = sample * c + ch; channel by channel where channel_major.
template <class Out>
void forward_train_planes(const BnShape& s, const float* x, const float* gamma, float eps, const SavedStatistics& save,
                          const BnRunningUpdate& u, const Out& out) {
  const int64_t c = s.c;
  if (!channel_major(s)) {
    const std::vector<float> scale = train_statistics(s, x, gamma, eps, save, u);
    if (scale.empty()) return;
    parallel_range(s.n * c, std::max<int64_t>(1, kElementwiseGrain / s.l), [&](int64_t first, int64_t last) {
      for (int64_t pl = first; pl < last; ++pl) out(pl, pl % c, scale[size_t(pl % c)]);
    });
    return;
  }
  // As train_statistics, with each channel's output right after its statistics.
  const float seen = u.num_batches_tracked ? *u.num_batches_tracked : 0.0f;
  const BnRunningWeights weights = bn_running_weights(u, double(s.n * s.l), seen);
  const PlaneItems plan = plane_items(s);
  parallel_for_dynamic(c, s.n * c * s.l > kParallelElements, [&](int64_t ch) {
    double mean, m2;
    channel_plane_moments(s, plan, x, ch, &mean, &m2);
    const float scale = finish_channel(ch, mean, m2, double(s.n * s.l), gamma, eps, save, u, weights);
    for (int64_t i = 0; i < s.n; ++i) out(i * c + ch, ch, scale);
  });
  if (u.num_batches_tracked) *u.num_batches_tracked = seen + 1.0f;
}

void forward_train(bool relu, const BnShape& s, const float* x, const float* gamma, const float* beta, float eps,
                   float* y, const SavedStatistics& save, const BnRunningUpdate& u) {
  if (s.l > 1) {
    return forward_train_planes(s, x, gamma, eps, save, u, [&](int64_t pl, int64_t ch, float scale) {
      affine(relu, x + pl * s.l, s.l, save.mean[ch], save.mean_lo[ch], scale, beta[ch], y + pl * s.l);
    });
  }
  const std::vector<float> scale = train_statistics(s, x, gamma, eps, save, u);
  if (!scale.empty()) affine_relu(relu, s, x, save.mean, save.mean_lo, scale.data(), beta, y);
}

void forward_infer(bool relu, const BnShape& s, const float* x, const float* gamma, const float* beta,
                   const float* mean, const float* var, float eps, float* y) {
  std::vector<float> scale(s.c), zero(s.c, 0.0f);
  for (int64_t ch = 0; ch < s.c; ++ch) scale[ch] = gamma[ch] * inv_std(var[ch], eps);
  affine_relu(relu, s, x, mean, zero.data(), scale.data(), beta, y);
}

// dx = gamma * invstd * (dy - sum(dy) / m - xhat * sum(dy * xhat) / m), xhat = (x - mean) * invstd,
// evaluated per element as k * ((dy - a) - (x - mean) * b) with per-channel constants
// k = gamma * invstd, a = sum(dy) / m, b = invstd^2 * sum(dy * (x - mean)) / m, and x - mean
// formed from the saved pair as in forward. With the fused ReLU (relu_y, its output), dy is first
// masked to where relu_y > 0. grad_constants forms k, a and b from the gradient sums (with
// dgamma and dbeta); the gradient reaches it run by run (DyRuns, or the pooled backward's planes).
struct ChannelGrad {
  float k, a, b;
};
// Channel ch's constants from its gradient sums sdy and sdyx over m values; writes its dgamma and dbeta.
ChannelGrad channel_grad(int64_t ch, double sdy, double sdyx, int64_t m, const float* gamma, const float* save_invstd,
                         float* dgamma, float* dbeta) {
  const double invstd = save_invstd[ch];
  dbeta[ch] = float(sdy);
  dgamma[ch] = float(sdyx * invstd);
  return {float(double(gamma[ch]) * invstd), m ? float(sdy / double(m)) : 0.0f,
          m ? float(invstd * invstd * sdyx / double(m)) : 0.0f};
}

struct BnGradConstants {
  std::vector<float> k, a, b;
};
template <class Runs>
BnGradConstants grad_constants(const BnShape& s, const float* x, const Runs& runs, const float* rows_dy,
                               const float* relu_y, const float* gamma, const float* save_mean,
                               const float* save_mean_lo, const float* save_invstd, float* dgamma, float* dbeta) {
  const int64_t c = s.c;
  std::vector<double> sdy, sdyx;
  grad_sums(s, x, runs, rows_dy, relu_y, save_mean, save_mean_lo, sdy, sdyx);
  BnGradConstants g{std::vector<float>(c), std::vector<float>(c), std::vector<float>(c)};
  for (int64_t ch = 0; ch < c; ++ch) {
    const ChannelGrad cg = channel_grad(ch, sdy[ch], sdyx[ch], s.n * s.l, gamma, save_invstd, dgamma, dbeta);
    g.k[ch] = cg.k;
    g.a[ch] = cg.a;
    g.b[ch] = cg.b;
  }
  return g;
}

// The training backward over planes (l > 1): each channel's gradient sums (the gradient reaching
// batch norm from `runs`) and its constants, then, when want_dx, dx plane by plane:
// input_grad(off, len, ch, constants) for each plane of channel ch. Channel by channel where
// channel_major (see there), else pass by pass.
template <class Runs, class InputGrad>
void backward_train_planes(const BnShape& s, const float* x, const Runs& runs, const float* relu_y, const float* gamma,
                           const float* save_mean, const float* save_mean_lo, const float* save_invstd, float* dgamma,
                           float* dbeta, bool want_dx, const InputGrad& input_grad) {
  const int64_t c = s.c, l = s.l;
  if (!channel_major(s)) {
    const BnGradConstants g =
        grad_constants(s, x, runs, nullptr, relu_y, gamma, save_mean, save_mean_lo, save_invstd, dgamma, dbeta);
    if (!want_dx) return;
    parallel_range(s.n * c, std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(1, l)), [&](int64_t first, int64_t last) {
      for (int64_t pl = first; pl < last; ++pl) input_grad(pl * l, l, pl % c, ChannelGrad{g.k[pl % c], g.a[pl % c], g.b[pl % c]});
    });
    return;
  }
  const std::vector<double> mean_d = means_of(c, save_mean, save_mean_lo);
  const GradTermRuns<Runs> terms{x, runs, relu_y, mean_d.data()};
  const PlaneItems plan = plane_items(s);
  parallel_for_dynamic(c, s.n * c * l > kParallelElements, [&](int64_t ch) {
    double sums[2];
    channel_plane_sums<2>(s, plan, ch, terms, sums);
    const ChannelGrad g = channel_grad(ch, sums[0], sums[1], s.n * l, gamma, save_invstd, dgamma, dbeta);
    if (want_dx) {
      for (int64_t i = 0; i < s.n; ++i) input_grad((i * c + ch) * l, l, ch, g);
    }
  });
}

void backward_train(const BnShape& s, const float* x, const float* relu_y, const float* dy, const float* gamma,
                    const float* save_mean, const float* save_mean_lo, const float* save_invstd, float* dx,
                    float* dgamma, float* dbeta) {
  if (s.l > 1) {
    return backward_train_planes(s, x, DyRuns{dy}, relu_y, gamma, save_mean, save_mean_lo, save_invstd, dgamma, dbeta,
                                 dx != nullptr, [&](int64_t off, int64_t len, int64_t ch, const ChannelGrad& g) {
                                   input_grad_run(x + off, dy + off, relu_y ? relu_y + off : nullptr, len,
                                                  save_mean[ch], save_mean_lo[ch], g.k, g.a, g.b, dx + off);
                                 });
  }
  const BnGradConstants g =
      grad_constants(s, x, DyRuns{dy}, dy, relu_y, gamma, save_mean, save_mean_lo, save_invstd, dgamma, dbeta);
  if (!dx) return;
  for_each_block(s, [](int64_t, int64_t, int64_t) {}, [&](int64_t off) {
    input_grad_row(x + off, dy + off, relu_y ? relu_y + off : nullptr, s.c, save_mean, save_mean_lo, g.k.data(),
                   g.a.data(), g.b.data(), dx + off);
  });
}

// The statistics are constants here: dx = dy * gamma * invstd, dgamma = sum dy * xhat, dbeta = sum dy
// (dy masked by the fused ReLU's output where relu_y is given).
void backward_infer(const BnShape& s, const float* x, const float* relu_y, const float* dy, const float* gamma,
                    const float* mean, const float* var, float eps, float* dx, float* dgamma, float* dbeta) {
  const int64_t c = s.c;
  std::vector<double> sdy, sdyx;
  grad_sums(s, x, DyRuns{dy}, dy, relu_y, mean, nullptr, sdy, sdyx);
  std::vector<float> scale(c), zero(c, 0.0f);
  for (int64_t ch = 0; ch < c; ++ch) {
    const float invstd = inv_std(var[ch], eps);
    dbeta[ch] = float(sdy[ch]);
    dgamma[ch] = float(sdyx[ch] * double(invstd));
    scale[ch] = gamma[ch] * invstd;
  }
  if (!dx) return;
  if (!relu_y) {
    affine_relu(false, s, dy, zero.data(), zero.data(), scale.data(), zero.data(), dx);
    return;
  }
  for_each_block(
      s,
      [&](int64_t off, int64_t len, int64_t ch) { masked_scale(dy + off, relu_y + off, len, &scale[ch], 0, dx + off); },
      [&](int64_t off) { masked_scale(dy + off, relu_y + off, c, scale.data(), 1, dx + off); });
}

}  // namespace

void batchnorm_forward_train(const BnShape& s, const float* x, const float* gamma, const float* beta, float eps,
                             float* y, float* save_mean, float* save_mean_lo, float* save_invstd, float* batch_var,
                             const BnRunningUpdate& update) {
  forward_train(false, s, x, gamma, beta, eps, y, {save_mean, save_mean_lo, save_invstd, batch_var}, update);
}
void batchnorm_relu_forward_train(const BnShape& s, const float* x, const float* gamma, const float* beta, float eps,
                                  float* y, float* save_mean, float* save_mean_lo, float* save_invstd,
                                  float* batch_var, const BnRunningUpdate& update) {
  forward_train(true, s, x, gamma, beta, eps, y, {save_mean, save_mean_lo, save_invstd, batch_var}, update);
}

void batchnorm_forward_infer(const BnShape& s, const float* x, const float* gamma, const float* beta,
                             const float* mean, const float* var, float eps, float* y) {
  forward_infer(false, s, x, gamma, beta, mean, var, eps, y);
}
void batchnorm_relu_forward_infer(const BnShape& s, const float* x, const float* gamma, const float* beta,
                                  const float* mean, const float* var, float eps, float* y) {
  forward_infer(true, s, x, gamma, beta, mean, var, eps, y);
}

void batchnorm_backward_train(const BnShape& s, const float* x, const float* dy, const float* gamma,
                              const float* save_mean, const float* save_mean_lo, const float* save_invstd,
                              float* dx, float* dgamma, float* dbeta) {
  backward_train(s, x, nullptr, dy, gamma, save_mean, save_mean_lo, save_invstd, dx, dgamma, dbeta);
}
void batchnorm_relu_backward_train(const BnShape& s, const float* x, const float* y, const float* dy,
                                   const float* gamma, const float* save_mean, const float* save_mean_lo,
                                   const float* save_invstd, float* dx, float* dgamma, float* dbeta) {
  backward_train(s, x, y, dy, gamma, save_mean, save_mean_lo, save_invstd, dx, dgamma, dbeta);
}

void batchnorm_backward_infer(const BnShape& s, const float* x, const float* dy, const float* gamma,
                              const float* mean, const float* var, float eps, float* dx, float* dgamma,
                              float* dbeta) {
  backward_infer(s, x, nullptr, dy, gamma, mean, var, eps, dx, dgamma, dbeta);
}
void batchnorm_relu_backward_infer(const BnShape& s, const float* x, const float* y, const float* dy,
                                   const float* gamma, const float* mean, const float* var, float eps, float* dx,
                                   float* dgamma, float* dbeta) {
  backward_infer(s, x, y, dy, gamma, mean, var, eps, dx, dgamma, dbeta);
}

// Batch norm + ReLU + average pooling. On the CPU the forward takes batch norm's statistics, then
// runs batch norm's output pass and the pool plane by plane through a buffer that stays in L1 (no
// activation written to memory and read back), so its results are the unfused ops' by
// construction. Backward forms the masked, unpooled gradient plane by plane
// (pooled_relu_gradient_plane) inside batch norm's first backward pass, writing it into dx, and
// the second pass turns dx into the input's gradient in place: two passes over x, and no buffer
// as large as x beside dx.
namespace {

BnShape planes_of(const PoolShape& p) { return {p.n, p.c, p.h * p.w}; }

// The gradient reaching the batch norm from the pooled gradient dy, in one pass over x: a pixel of
// window (i, j) gets dy[i, j] / area (avgpool2d_backward's product) where the ReLU's output,
// recomputed as the forward computed it (normalized()), is positive, and 0 elsewhere: what the
// unfused chain hands to batch norm + ReLU's backward once its mask is applied, without the
// activation in memory. One plane (x `in`, pooled gradient g) per call, with its channel's constants.
KG_MULTIVERSION void pooled_relu_gradient_plane(const PoolShape& p, const float* in, const float* g, float inv_area,
                                                float mh, float ml, float k, float b, float* out) {
  // The window rows: the pooled gradient spread over each row (2-wide windows, the usual pool, as
  // a loop the compiler vectorizes), pixels no window covers 0; then one pass masks the whole
  // covered area, contiguous in the plane, where the ReLU's output is not positive.
  const int64_t covered = p.oh * p.kh * p.w;
  for (int64_t i = 0; i < p.oh * p.kh; ++i) {
    const float* gi = g + (i / p.kh) * p.ow;
    float* row = out + i * p.w;
    if (p.kw == 2) {
      for (int64_t oj = 0; oj < p.ow; ++oj) row[2 * oj] = row[2 * oj + 1] = gi[oj] * inv_area;
    } else {
      for (int64_t oj = 0; oj < p.ow; ++oj) {
        const float d = gi[oj] * inv_area;
        for (int64_t q = 0; q < p.kw; ++q) row[oj * p.kw + q] = d;
      }
    }
    std::fill(row + p.ow * p.kw, row + p.w, 0.0f);
  }
  for (int64_t j = 0; j < covered; ++j) out[j] = activate<true>(normalized(in[j], mh, ml, k, b)) > 0.0f ? out[j] : 0.0f;
  std::fill(out + covered, out + p.h * p.w, 0.0f);
}

// The gradient reaching batch norm, plane by plane for grad_sums: plane `off / l` formed from the
// pooled gradient with its channel's forward constants, into dx (where the input gradient pass
// then turns it into dx in place) or, without dx, into the calling thread's buffer.
struct PooledRuns {
  const PoolShape& p;
  const float *x, *dy, *hi, *lo, *scale, *shift;
  float* dx;
  const float* operator()(int64_t off, int64_t len, int64_t ch) const {
    float* plane = dx ? dx + off : scratch(Scratch::Block, size_t(len));
    const float* g = dy + off / len * p.oh * p.ow;
    // (An AVX-512 form of this, masked loads and stores, measured slower inside a training step.)
    pooled_relu_gradient_plane(p, x + off, g, 1.0f / float(p.kh * p.kw), hi[ch], lo[ch], scale[ch], shift[ch], plane);
    return plane;
  }
};

}  // namespace

void batchnorm_relu_pool_forward_train(const PoolShape& p, const float* x, const float* gamma, const float* beta,
                                       float eps, float* y, float* save_mean, float* save_mean_lo, float* save_invstd,
                                       float* batch_var, const BnRunningUpdate& update) {
  // Plane by plane: the rectified plane into a per-thread buffer that stays in L1, then pooled from
  // there, with batch norm's and the pool's own kernels (so the bits are theirs).
  const BnShape s = planes_of(p);
  forward_train_planes(s, x, gamma, eps, {save_mean, save_mean_lo, save_invstd, batch_var}, update,
                       [&](int64_t pl, int64_t ch, float scale) {
                         float* activation = scratch(Scratch::Block, size_t(s.l));
                         affine(true, x + pl * s.l, s.l, save_mean[ch], save_mean_lo[ch], scale, beta[ch], activation);
                         avgpool2d_plane(p, activation, y + pl * p.oh * p.ow);
                       });
}

void batchnorm_relu_pool_backward_train(const PoolShape& p, const float* x, const float* dy, const float* gamma,
                                        const float* beta, const float* save_mean, const float* save_mean_lo,
                                        const float* save_invstd, float* dx, float* dgamma, float* dbeta) {
  const BnShape s = planes_of(p);
  std::vector<float> scale(s.c);
  for (int64_t ch = 0; ch < s.c; ++ch) scale[ch] = gamma[ch] * save_invstd[ch];  // forward_train's
  // Planes have more than one pixel (the binding refuses others), so batch norm takes its per-plane
  // runs and never its row form, which would read a whole gradient from memory.
  const PooledRuns runs{p, x, dy, save_mean, save_mean_lo, scale.data(), beta, dx};
  backward_train_planes(s, x, runs, nullptr, gamma, save_mean, save_mean_lo, save_invstd, dgamma, dbeta, dx != nullptr,
                        [&](int64_t off, int64_t len, int64_t ch, const ChannelGrad& g) {
                          input_grad_in_place(x + off, dx + off, len, save_mean[ch], save_mean_lo[ch], g.k, g.a, g.b);
                        });
}

}  // namespace kg::cpu
