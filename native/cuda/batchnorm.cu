// Batch normalization over x viewed as (n, c, l): statistics per channel c over n * l values.
//
// Every op here is memory-bound and follows the same two-pass shape:
//  1. a statistics pass: the (channel, split) pairs are spread over blocks; each block reduces
//     its share of one channel (or of BX channels, below) and writes one partial result to
//     scratch memory: a Welford (count, mean, M2) for the forward pass, (sum dy, sum dy*(x-mean))
//     for the backward pass;
//  2. an elementwise pass with the same blocking: each block first merges the partials of its
//     channel, always in split order, into that channel's coefficients (the block of split 0
//     also writes the per-channel outputs: saved mean/invstd/variance or dgamma/dbeta), then
//     normalizes (or back-propagates through) its share.
// Because every block of a channel merges the same partials in the same order, all of them see
// bitwise the same statistics, and results are identical from run to run: no atomics anywhere.
// Inference forward is pass 2 alone, with the given running statistics.
//
// Small layers (at most kSinglePassUnitsPerThread units per thread and channel) get one split,
// and then both passes run in one launch (the *_single kernels): the block that wrote a channel's
// partial is the only one that merges it, after a barrier, and its second read of x comes from
// the cache. The results are the two-pass kernels' with one split, bit for bit. A training step
// of a small network is mostly launches, so this halves batch norm's share of them.
//
// Training forward also does, within its two launches, the rest of a layer's training step
// (kg/batchnorm_update.h), so that the layer costs no other launch: in pass 2 the channel's writer
// thread checks its statistics, writes the failure kind (0: fine) to the caller's status word for
// the channel, and, if they are usable, moves the running statistics towards them. The batch count
// is incremented in pass 1 by one thread, which leaves the old count in scratch memory: cumulative
// averaging weighs every channel's update by the count from before the batch, read on the device,
// so a captured step reads nothing on the host.
//
// Fused with the ReLU that follows (the batchnorm_relu_* entry points): forward clamps in pass 2,
// backward reads the fused output y next to dy and masks dy where y <= 0 in both passes, so the
// ReLU costs one extra read in backward instead of a pass of its own.
//
// Two layouts, because coalescing needs different blockings:
//  - planar (l > 1, 4-D input): a channel is n rows of l contiguous values, rows c*l apart. A
//    block walks a contiguous range of the channel's n*l values (float4s when l % 4 == 0), so a
//    warp reads consecutive addresses. The row/column position is carried incrementally (a
//    block-wide step is a fixed number of rows plus a fixed number of values), so the loops do no
//    integer division.
//  - rows (l == 1, 2-D input (n, c)): a channel is a column with stride c. A block covers BX
//    adjacent channels x BY rows: lanes run along c, so a warp reads contiguous memory; the BY
//    row-partials of each channel are merged in a shared-memory tree. BX shrinks for narrow
//    inputs (c = 10 uses BX = 16) so that a warp still covers whole rows.
// Grids are 1-D and loop over their items, so there is no limit on n, c or l.
//
// Numerics of the forward statistics:
//  - per thread, values come in batches of 4 or 16 whose exact-order mean and M2 are merged
//    into the thread's running Welford state with Chan's formula (one division per batch);
//    threads merge by warp shuffles, warps in shared memory, splits in the elementwise pass;
//  - values are shifted by the channel's first value before anything else. In fp32 a running
//    mean near 1e4 can only move in steps of 1e-3, which is 1% of a standard deviation of 0.1;
//    shifted values are of the order of the spread, so the mean and M2 keep full relative
//    precision. The mean, shift + mean of the shifted values, is formed in double and kept as a
//    float pair (hi, lo): x - mean is evaluated as (x - hi) - lo, where x - hi is exact near the
//    mean, so the normalized output is exact to the rounding of the spread, not of the mean (as
//    on the CPU; backward gets the same pair);
//  - a constant channel gives shifted values of exactly 0: mean exactly the constant, variance
//    exactly 0, y exactly beta. M2 only ever adds non-negative terms, so the variance is never
//    negative (it is clamped at 0 anyway);
//  - invstd = float(1 / sqrt(double(var) + double(eps))), as on the CPU (not rsqrtf): one
//    rounding, the same bits as the CPU backend for the same variance;
//  - values near +-1e38: batch sums are scaled before they are added and M2 is a double, so
//    neither overflows; a variance beyond float is reported as infinite and invstd (about 1e-38)
//    comes from the double variance, so the channel still normalizes to +-1. Shifted values
//    themselves must fit in float: a channel spanning more than 3.4e38 from its first value
//    gets a non-finite mean, which the JS layer reports.
#include <cmath>

#include "common.cuh"

namespace kg::cuda {
namespace detail {
namespace {

constexpr int kThreads = 256;
// Splits of a channel: enough blocks for about two waves, never fewer than 4 units per thread,
// at most kMaxUnitsPerThread units per thread while the splits stay below kMaxSplits (every
// block merges all partials of its channel), and at most 2^24 values per partial (float counts
// stay exact).
constexpr int64_t kMinUnitsPerThread = 4;
constexpr int64_t kMaxUnitsPerThread = 256;
constexpr int64_t kMaxSplits = 1024;
constexpr int64_t kMaxPartialCount = int64_t{1} << 24;

// Result of the forward statistics pass for one (channel, split): Welford state of x - shift.
struct StatPartial {
  float shift, mean;
  double m2;
  float count;
};
// Result of the backward statistics pass for one (channel, split).
struct GradPartial {
  float sum_dy, sum_dy_xc;  // sum of dy, sum of dy * (x - mean)
};

enum class Mode { ForwardTrain, ForwardInfer, BackwardTrain, BackwardInfer };

// Everything the elementwise pass may read or write; each mode uses its own subset.
struct BnArgs {
  const float* x;
  const float* dy;
  float* out;  // y, or dx (null when dx is not wanted)
  const float* gamma;
  const float* beta;
  const float* mean;     // BackwardTrain: saved mean; *Infer: running mean
  const float* mean_lo;  // BackwardTrain: the rest of the saved mean; null otherwise
  const float* invstd;   // BackwardTrain: saved invstd
  const float* var;     // *Infer: running variance
  float eps;
  bool relu;            // Forward*: clamp the output at 0 (the fused ReLU)
  const float* relu_y;  // Backward*: the fused output, masking dy; null without the ReLU
  double count;  // n * l, values per channel
  const StatPartial* stat;
  const GradPartial* grad;
  int64_t splits;  // partials per channel (the same for both passes)
  float* save_mean;
  float* save_mean_lo;
  float* save_invstd;
  float* batch_var;
  BnRunningUpdate update;  // ForwardTrain: the checks and the running statistics
  const float* seen;       // ForwardTrain: the batch count before this batch (null without one)
  float* dgamma;
  float* dbeta;
};

// The elementwise formulas, with the channel's coefficients k[0..4], the mean as the pair
// (k[0], k[4]) and x - mean formed as (x - k[0]) - k[4]:
//   forward:        y  = (x - mean) * (gamma * invstd) + beta                k = mean, gamma*invstd, beta
//   backward train: dx = gamma*invstd * (dy - mean(dy) - (x - mean) * invstd * mean(dy*xhat))
//                                                     k = mean, gamma*invstd, mean(dy), invstd*mean(dy*xhat)
//   backward infer: dx = dy * (gamma * invstd)                               k = -, gamma*invstd
// Subtracting the mean first (not x * scale + shift) keeps precision when |mean| >> std.
constexpr int kCoefficients = 5;
template <Mode M>
__device__ __forceinline__ float bn_element(float x, float dy, const float* k) {
  if constexpr (M == Mode::ForwardTrain || M == Mode::ForwardInfer) {
    return ((x - k[0]) - k[4]) * k[1] + k[2];
  } else if constexpr (M == Mode::BackwardTrain) {
    return k[1] * (dy - k[2] - ((x - k[0]) - k[4]) * k[3]);
  } else {
    return dy * k[1];
  }
}
// max(v, 0) with NaN kept when relu: relu_forward's expression, so fused and unfused agree.
__device__ __forceinline__ float activate(bool relu, float v) { return relu && !(v > 0.0f || v != v) ? 0.0f : v; }

// dy where the fused ReLU's output is positive, else 0 (relu_y null: dy unchanged).
template <int VW>
__device__ __forceinline__ void mask_by_relu(Pack<VW>& g, const float* relu_y, int64_t offset) {
  if (!relu_y) return;
  const Pack<VW> y = load_pack<VW>(relu_y + offset);
#pragma unroll
  for (int e = 0; e < VW; ++e) g.v[e] = y.v[e] > 0.0f ? g.v[e] : 0.0f;
}
__device__ __forceinline__ float mask_by_relu(float g, const float* relu_y, int64_t at) {
  return !relu_y || relu_y[at] > 0.0f ? g : 0.0f;
}

template <Mode M>
__host__ __device__ constexpr bool reads_x() {
  return M != Mode::BackwardInfer;
}
template <Mode M>
__host__ __device__ constexpr bool reads_dy() {
  return M == Mode::BackwardTrain || M == Mode::BackwardInfer;
}

// invstd exactly as the CPU backend computes it: float(1 / sqrt(double(var) + double(eps))), one
// rounding. Per channel, so the double math costs nothing, and GPU and CPU agree to the bit here,
// and inference with running statistics equal to the batch's reproduces training's output.
__device__ __forceinline__ float inv_std(float var, float eps) {
  return static_cast<float>(1.0 / sqrt(static_cast<double>(var) + static_cast<double>(eps)));
}

// Checks a channel's statistics and moves its running statistics towards them
// (kg/batchnorm_update.h), on the CPU's rules: done by the channel's writer thread, the only one
// that touches the channel's words.
__device__ __forceinline__ void update_channel(const BnArgs& a, int64_t ch, float mean, float invstd, float var) {
  const BnRunningUpdate& u = a.update;
  const int kind = bn_failure(mean, invstd, var, u.running_mean != nullptr);
  if (u.status) u.status[u.status_offset + ch] = static_cast<float>(kind);
  if (u.running_mean && kind == kBnFine) {
    const BnRunningWeights w = bn_running_weights(u, a.count, a.seen ? *a.seen : 0.0f);
    u.running_mean[ch] = bn_running_average(u.running_mean[ch], mean, w.mean, w.old);
    u.running_var[ch] = bn_running_average(u.running_var[ch], var, w.var, w.old);
  }
}

// Turns a channel's merged statistics into its coefficients; `writer` (the channel's split-0
// block, one thread) also writes the per-channel outputs. The backward coefficients are formed in
// double from the fp32 sums, as on the CPU.
template <Mode M>
__device__ __forceinline__ void channel_coefficients(const BnArgs& a, int64_t ch, bool writer, float shift,
                                                     const Welford& w, float sum_dy, float sum_dy_xc, float* k) {
  const float g = a.gamma ? a.gamma[ch] : 1.0f;
  k[4] = 0.0f;
  if constexpr (M == Mode::ForwardTrain) {
    const double mean_d = static_cast<double>(shift) + static_cast<double>(w.mean);
    const float mean = static_cast<float>(mean_d);
    const double var_d = fmax(w.m2 / w.count, 0.0);  // biased: divided by n * l
    const float var = static_cast<float>(var_d);
    // A variance beyond float (values near +-1e38) is reported as infinite, but invstd, about
    // 1e-38, is still representable: from the double variance, as on the CPU.
    const float invstd = !(var <= kFloatMax) ? static_cast<float>(1.0 / sqrt(var_d + static_cast<double>(a.eps))) : inv_std(var, a.eps);
    k[0] = mean;
    k[1] = g * invstd;
    k[2] = a.beta ? a.beta[ch] : 0.0f;
    k[3] = 0.0f;
    k[4] = static_cast<float>(mean_d - static_cast<double>(mean));
    if (writer) {
      a.save_mean[ch] = mean;
      a.save_mean_lo[ch] = k[4];
      a.save_invstd[ch] = invstd;
      if (a.batch_var) a.batch_var[ch] = var;
      update_channel(a, ch, mean, invstd, var);
    }
  } else if constexpr (M == Mode::ForwardInfer) {
    k[0] = a.mean[ch];
    k[1] = g * inv_std(a.var[ch], a.eps);
    k[2] = a.beta ? a.beta[ch] : 0.0f;
    k[3] = 0.0f;
  } else {
    const double invstd = M == Mode::BackwardTrain ? a.invstd[ch] : inv_std(a.var[ch], a.eps);
    const double m = a.count;
    k[0] = a.mean[ch];
    if (a.mean_lo) k[4] = a.mean_lo[ch];
    k[1] = static_cast<float>(g * invstd);
    k[2] = static_cast<float>(sum_dy / m);
    k[3] = static_cast<float>(invstd * invstd * sum_dy_xc / m);
    if (writer) {
      a.dgamma[ch] = static_cast<float>(sum_dy_xc * invstd);  // sum of dy * xhat
      a.dbeta[ch] = sum_dy;
    }
  }
}

// The batch count of the running statistics, incremented by the statistics pass. The apply pass
// updates every channel with the count from before this batch, but its blocks cannot both read the
// count and increment it (blocks run in any order): the statistics pass, one launch earlier on the
// stream, keeps the old value in `seen` and increments the count.
struct BatchCount {
  float* count;  // null: no count
  float* seen;
};
__device__ __forceinline__ void count_batch(const BatchCount& n) {
  if (n.count && blockIdx.x == 0 && threadIdx.x == 0) {
    const float before = *n.count;
    *n.seen = before;
    *n.count = before + 1.0f;
  }
}

__device__ __forceinline__ Welford to_welford(const StatPartial& p) {
  Welford w;
  w.mean = p.mean;
  w.m2 = p.m2;
  w.count = p.count;
  return w;
}

// =============================================================================================
// Planar layout (l > 1)

// A channel's values in units of VW floats: unit u is row u / row_units, position u % row_units,
// at element offset (row * c + ch) * l + position * VW.
struct Planar {
  int64_t l, row_stride;  // row_stride = c * l
  int64_t channels, units, row_units;
  int64_t splits, chunk;  // chunk: units per split
  // A step of kThreads units: step_units more positions and step_rows more rows, i.e. step_offset
  // more elements; if the position then passes the row's end, wrap back and add wrap_offset.
  int64_t step_units, step_rows, step_offset, wrap_offset;
};

template <int VW>
struct Cursor {
  int64_t u, row, pos, offset;  // row: the sample

  __device__ __forceinline__ Cursor(const Planar& p, int64_t ch, int64_t unit) : u(unit) {
    row = unit / p.row_units;  // one division per thread and item
    pos = unit - row * p.row_units;
    offset = row * p.row_stride + ch * p.l + pos * VW;
  }
  __device__ __forceinline__ void advance(const Planar& p) {
    u += kThreads;
    row += p.step_rows;
    pos += p.step_units;
    offset += p.step_offset;
    if (pos >= p.row_units) {
      ++row;
      pos -= p.row_units;
      offset += p.wrap_offset;
    }
  }
};

// Where the backward passes get the gradient reaching the batch norm, for VW values at a cursor
// (given their x values, and the coefficients forward_coefficients made for the channel).
// PlainGradient: dy as given, masked by the fused ReLU's stored output (relu_y) when there is one.
struct PlainGradient {
  const float* dy;
  const float* relu_y;  // null without the ReLU

  __device__ __forceinline__ void forward_coefficients(int64_t, float, float, float*) const {}

  template <int VW>
  __device__ __forceinline__ Pack<VW> load(const Planar&, int64_t, const Cursor<VW>& cur, const Pack<VW>&,
                                           const float*) const {
    Pack<VW> g = load_pack<VW>(dy + cur.offset);
    mask_by_relu<VW>(g, relu_y, cur.offset);
    return g;
  }
};

// PooledGradient: batch norm + ReLU + average pooling over non-overlapping kh x kw windows, fused
// (the batchnorm_relu_pool_* entry points). dy is the pooled gradient: a pixel inside window
// (oi, oj) gets (0 + dy[oi, oj]) / area and a pixel no window covers 0, exactly what
// avgpool_backward_kernel writes; it is masked where the ReLU's output, recomputed from x and the
// saved statistics with the forward's own expression, is not positive. So the fused op needs
// neither the full-size activation nor its gradient in memory, and gives the unfused chain's bits.
struct PooledGradient {
  const float* dy;  // (n, c, oh, ow)
  const float* gamma;
  const float* beta;
  const float* invstd;
  DivU32 w, kh, kw;  // h * w < 2^31: checked by the binding
  int64_t oh, ow;
  float area;

  // The forward coefficients of channel ch (bn_element<ForwardTrain>'s k), with the mean pair.
  __device__ __forceinline__ void forward_coefficients(int64_t ch, float mean, float mean_lo, float* k) const {
    k[0] = mean;
    k[1] = (gamma ? gamma[ch] : 1.0f) * invstd[ch];
    k[2] = beta ? beta[ch] : 0.0f;
    k[3] = 0.0f;
    k[4] = mean_lo;
  }

  // VW values at the cursor, whose x values are xv; k: forward_coefficients.
  template <int VW>
  __device__ __forceinline__ Pack<VW> load(const Planar& p, int64_t ch, const Cursor<VW>& cur, const Pack<VW>& xv,
                                           const float* k) const {
    const float* plane = dy + (cur.row * p.channels + ch) * oh * ow;
    Pack<VW> g;
#pragma unroll
    for (int e = 0; e < VW; ++e) {
      const uint32_t at = static_cast<uint32_t>(cur.pos * VW + e);
      const uint32_t i = w.div(at), j = w.mod(at, i);
      const uint32_t oi = kh.div(i), oj = kw.div(j);
      const float d = oi < oh && oj < ow ? (0.0f + plane[oi * ow + oj]) / area : 0.0f / area;
      g.v[e] = activate(true, bn_element<Mode::ForwardTrain>(xv.v[e], 0.0f, k)) > 0.0f ? d : 0.0f;
    }
    return g;
  }
};

// One (channel, split) item of the statistics pass: its Welford partial to out[item].
template <int VW>
__device__ __forceinline__ void planar_stats_item(const Planar& p, const float* __restrict__ x,
                                                  StatPartial* __restrict__ out, int64_t item, Welford* smem) {
  const int64_t ch = item / p.splits, s = item - ch * p.splits;
  const int64_t end = min(p.units, (s + 1) * p.chunk);
  const float shift = x[ch * p.l];  // the channel's first value
  Welford w;
  Cursor<VW> cur(p, ch, s * p.chunk + threadIdx.x);
  // Four units per round, all loads issued before the arithmetic.
  while (cur.u + 3 * kThreads < end) {
    Pack<VW> v[4];
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      v[r] = load_pack<VW>(x + cur.offset);
      cur.advance(p);
    }
    float d[4 * VW];
#pragma unroll
    for (int r = 0; r < 4; ++r) {
#pragma unroll
      for (int e = 0; e < VW; ++e) d[r * VW + e] = v[r].v[e] - shift;
    }
    welford_add_batch<4 * VW>(w, d);
  }
  for (; cur.u < end; cur.advance(p)) {
    const Pack<VW> v = load_pack<VW>(x + cur.offset);
    float d[VW];
#pragma unroll
    for (int e = 0; e < VW; ++e) d[e] = v.v[e] - shift;
    if constexpr (VW == 1) welford_add(w, d[0]);
    else welford_add_batch<VW>(w, d);
  }
  w = block_welford<kThreads>(w, smem);
  if (threadIdx.x == 0) out[item] = StatPartial{shift, w.mean, w.m2, w.count};
}

template <int VW>
__global__ void __launch_bounds__(kThreads)
    planar_stats_kernel(const Planar p, const float* __restrict__ x, StatPartial* __restrict__ out, BatchCount n) {
  __shared__ Welford smem[kThreads / kWarp];
  count_batch(n);
  for (int64_t item = blockIdx.x; item < p.channels * p.splits; item += gridDim.x) {
    planar_stats_item<VW>(p, x, out, item, smem);
  }
}

// One item of the gradient statistics pass: (sum dy, sum dy * (x - mean)) to out[item].
template <int VW, class Gradient>
__device__ __forceinline__ void planar_grad_stats_item(const Planar& p, const float* __restrict__ x,
                                                       const Gradient& src, const float* __restrict__ mean,
                                                       const float* __restrict__ mean_lo,
                                                       GradPartial* __restrict__ out, int64_t item, float* smem) {
  const int64_t ch = item / p.splits, s = item - ch * p.splits;
  const int64_t end = min(p.units, (s + 1) * p.chunk);
  const float mu = mean[ch], mu_lo = mean_lo ? mean_lo[ch] : 0.0f;
  float kf[kCoefficients];
  src.forward_coefficients(ch, mu, mu_lo, kf);
  float sum_dy = 0.0f, sum_dy_xc = 0.0f;
  Cursor<VW> cur(p, ch, s * p.chunk + threadIdx.x);
  while (cur.u + 3 * kThreads < end) {
    Pack<VW> xv[4], gv[4];
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      xv[r] = load_pack<VW>(x + cur.offset);
      gv[r] = src.load(p, ch, cur, xv[r], kf);
      cur.advance(p);
    }
    float g[4 * VW], gx[4 * VW];
#pragma unroll
    for (int r = 0; r < 4; ++r) {
#pragma unroll
      for (int e = 0; e < VW; ++e) {
        g[r * VW + e] = gv[r].v[e];
        gx[r * VW + e] = gv[r].v[e] * ((xv[r].v[e] - mu) - mu_lo);
      }
    }
    sum_dy += pairwise_sum<4 * VW>(g);
    sum_dy_xc += pairwise_sum<4 * VW>(gx);
  }
  for (; cur.u < end; cur.advance(p)) {
    const Pack<VW> xv = load_pack<VW>(x + cur.offset);
    const Pack<VW> gv = src.load(p, ch, cur, xv, kf);
#pragma unroll
    for (int e = 0; e < VW; ++e) {
      sum_dy += gv.v[e];
      sum_dy_xc += gv.v[e] * ((xv.v[e] - mu) - mu_lo);
    }
  }
  sum_dy = block_sum<kThreads>(sum_dy, smem);
  sum_dy_xc = block_sum<kThreads>(sum_dy_xc, smem);
  if (threadIdx.x == 0) out[item] = GradPartial{sum_dy, sum_dy_xc};
}

template <int VW, class Gradient>
__global__ void __launch_bounds__(kThreads)
    planar_grad_stats_kernel(const Planar p, const float* __restrict__ x, const Gradient src,
                             const float* __restrict__ mean, const float* __restrict__ mean_lo,
                             GradPartial* __restrict__ out) {
  __shared__ float smem[kThreads / kWarp];
  for (int64_t item = blockIdx.x; item < p.channels * p.splits; item += gridDim.x) {
    planar_grad_stats_item<VW>(p, x, src, mean, mean_lo, out, item, smem);
  }
}

// Channel ch's coefficients k, the same bits in every block of the channel: warp 0 merges the
// channel's partials (lane j takes splits j, j + 32, ..., then a fixed shuffle tree) and the
// split-0 block also writes the per-channel outputs. `coef` is the block's shared staging area.
template <Mode M>
__device__ __forceinline__ void planar_coefficients(const BnArgs& a, int64_t ch, int64_t s, float* coef,
                                                    float (&k)[kCoefficients]) {
  if (threadIdx.x < kWarp) {
    const int lane = threadIdx.x;
    Welford w;
    float shift = 0.0f, sum_dy = 0.0f, sum_dy_xc = 0.0f;
    if constexpr (M == Mode::ForwardTrain) {
      for (int64_t j = lane; j < a.splits; j += kWarp) w = welford_merge(w, to_welford(a.stat[ch * a.splits + j]));
      w = warp_welford(w);
      shift = a.stat[ch * a.splits].shift;
    } else if constexpr (M == Mode::BackwardTrain || M == Mode::BackwardInfer) {
      for (int64_t j = lane; j < a.splits; j += kWarp) {
        const GradPartial g = a.grad[ch * a.splits + j];
        sum_dy += g.sum_dy;
        sum_dy_xc += g.sum_dy_xc;
      }
      sum_dy = warp_sum(sum_dy);
      sum_dy_xc = warp_sum(sum_dy_xc);
    }
    if (lane == 0) channel_coefficients<M>(a, ch, s == 0, shift, w, sum_dy, sum_dy_xc, coef);
  }
  __syncthreads();
#pragma unroll
  for (int e = 0; e < kCoefficients; ++e) k[e] = coef[e];
  __syncthreads();  // coef is rewritten by the next item
}

// One item of the elementwise pass; coef: the block's shared staging area (planar_coefficients).
template <int VW, Mode M, class Gradient>
__device__ __forceinline__ void planar_apply_item(const Planar& p, const BnArgs& a, const Gradient& src, int64_t item,
                                                  float* coef) {
  const int64_t ch = item / p.splits, s = item - ch * p.splits;
  if (!a.out && s != 0) return;  // no dx wanted: only the blocks writing dgamma/dbeta work
  float k[kCoefficients];
  planar_coefficients<M>(a, ch, s, coef, k);
  if (!a.out) return;
  float kf[kCoefficients];
  if constexpr (reads_dy<M>()) src.forward_coefficients(ch, a.mean[ch], a.mean_lo ? a.mean_lo[ch] : 0.0f, kf);

  const int64_t end = min(p.units, (s + 1) * p.chunk);
  Cursor<VW> cur(p, ch, s * p.chunk + threadIdx.x);
  while (cur.u + 3 * kThreads < end) {
    int64_t off[4];
    Pack<VW> xv[4] = {}, gv[4] = {};
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      off[r] = cur.offset;
      if constexpr (reads_x<M>()) xv[r] = load_pack<VW>(a.x + off[r]);
      if constexpr (reads_dy<M>()) gv[r] = src.load(p, ch, cur, xv[r], kf);
      cur.advance(p);
    }
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      Pack<VW> o;
#pragma unroll
      for (int e = 0; e < VW; ++e) o.v[e] = activate(a.relu, bn_element<M>(xv[r].v[e], gv[r].v[e], k));
      store_pack<VW>(a.out + off[r], o);
    }
  }
  for (; cur.u < end; cur.advance(p)) {
    Pack<VW> xv = {}, gv = {}, o;
    if constexpr (reads_x<M>()) xv = load_pack<VW>(a.x + cur.offset);
    if constexpr (reads_dy<M>()) gv = src.load(p, ch, cur, xv, kf);
#pragma unroll
    for (int e = 0; e < VW; ++e) o.v[e] = activate(a.relu, bn_element<M>(xv.v[e], gv.v[e], k));
    store_pack<VW>(a.out + cur.offset, o);
  }
}

template <int VW, Mode M, class Gradient>
__global__ void __launch_bounds__(kThreads) planar_apply_kernel(const Planar p, const BnArgs a, const Gradient src) {
  __shared__ float coef[kCoefficients];
  for (int64_t item = blockIdx.x; item < p.channels * p.splits; item += gridDim.x) {
    planar_apply_item<VW, M>(p, a, src, item, coef);
  }
}

// Forward of batch norm + ReLU + average pooling over non-overlapping windows (PooledGradient
// describes the backward): each thread takes whole windows of its channel's pooled outputs and
// writes only their averages. A window sums the activations of its taps in row-major order from 0,
// then divides by the area: avgpool_forward_kernel's arithmetic on the values BN + ReLU would have
// stored, so the result is the unfused chain's to the bit.
struct PoolForward {
  float* y;  // (n, c, oh, ow)
  int64_t w, kh, kw, oh, ow;
  DivU32 plane_outputs, out_cols;  // oh * ow, ow; n * oh * ow < 2^31: checked by the binding
  float area;
};

__device__ __forceinline__ void planar_pool_forward_item(const Planar& p, const BnArgs& a, const PoolForward& f,
                                                         int64_t item, float* coef) {
  const int64_t outputs = p.units / p.row_units * f.oh * f.ow;  // this channel's windows: n * oh * ow
  const int64_t chunk = ceil_div<int64_t>(outputs, p.splits);
  const int64_t ch = item / p.splits, s = item - ch * p.splits;
  float k[kCoefficients];
  planar_coefficients<Mode::ForwardTrain>(a, ch, s, coef, k);
  const int64_t end = min(outputs, (s + 1) * chunk);
  for (int64_t o = s * chunk + threadIdx.x; o < end; o += kThreads) {
    const uint32_t row = f.plane_outputs.div(static_cast<uint32_t>(o));
    const uint32_t q = f.plane_outputs.mod(static_cast<uint32_t>(o), row);
    const uint32_t oi = f.out_cols.div(q), oj = f.out_cols.mod(q, oi);
    const float* win = a.x + row * p.row_stride + ch * p.l + oi * f.kh * f.w + oj * f.kw;
    float sum = 0.0f;
    for (int64_t r = 0; r < f.kh; ++r) {
      for (int64_t c = 0; c < f.kw; ++c) sum += activate(true, bn_element<Mode::ForwardTrain>(win[r * f.w + c], 0.0f, k));
    }
    f.y[(row * p.channels + ch) * f.oh * f.ow + q] = sum / f.area;
  }
}

__global__ void __launch_bounds__(kThreads)
    planar_pool_forward_kernel(const Planar p, const BnArgs a, const PoolForward f) {
  __shared__ float coef[kCoefficients];
  for (int64_t item = blockIdx.x; item < p.channels * p.splits; item += gridDim.x) {
    planar_pool_forward_item(p, a, f, item, coef);
  }
}

// One block per channel (a plan of one split): both passes in one launch. The block's partial
// goes to global memory and back to the same block, which a barrier makes visible; no other block
// reads it. With cumulative averaging the two-pass kernels run instead: the count this batch adds
// must be read by every channel before it changes (BatchCount).
template <int VW, bool kPooled>
__global__ void __launch_bounds__(kThreads)
    planar_forward_single_kernel(const Planar p, const BnArgs a, StatPartial* partials, BatchCount n,
                                 const PoolForward f) {
  __shared__ Welford smem[kThreads / kWarp];
  __shared__ float coef[kCoefficients];
  count_batch(n);
  for (int64_t item = blockIdx.x; item < p.channels; item += gridDim.x) {
    planar_stats_item<VW>(p, a.x, partials, item, smem);
    __syncthreads();
    if constexpr (kPooled) planar_pool_forward_item(p, a, f, item, coef);
    else planar_apply_item<VW, Mode::ForwardTrain>(p, a, PlainGradient{}, item, coef);
  }
}

template <int VW, Mode M, class Gradient>
__global__ void __launch_bounds__(kThreads)
    planar_backward_single_kernel(const Planar p, const BnArgs a, const Gradient src, GradPartial* partials) {
  __shared__ float smem[kThreads / kWarp];
  __shared__ float coef[kCoefficients];
  for (int64_t item = blockIdx.x; item < p.channels; item += gridDim.x) {
    planar_grad_stats_item<VW>(p, a.x, src, a.mean, a.mean_lo, partials, item, smem);
    __syncthreads();
    planar_apply_item<VW, M>(p, a, src, item, coef);
  }
}

// =============================================================================================
// Rows layout (l == 1): x is (n, c), channel ch is column ch.

struct Rows {
  int64_t n, c;
  int bx_log2;  // BX = 1 << bx_log2 channels per block, BY = kThreads / BX rows
  int64_t groups, splits, chunk;  // chunk: rows per split
};

struct RowsThread {
  int tx, ty, bx, by;
  __device__ __forceinline__ explicit RowsThread(int bx_log2)
      : tx(threadIdx.x & ((1 << bx_log2) - 1)),
        ty(threadIdx.x >> bx_log2),
        bx(1 << bx_log2),
        by(kThreads >> bx_log2) {}
};

struct MergeWelford {
  __device__ __forceinline__ Welford operator()(const Welford& a, const Welford& b) const { return welford_merge(a, b); }
};
struct MergeSums {
  __device__ __forceinline__ float2 operator()(const float2& a, const float2& b) const {
    return make_float2(a.x + b.x, a.y + b.y);
  }
};

// Merges the BY values of each column (ty = 0..BY-1, fixed tree) and returns the column's
// result to every thread of the column. `smem` has kThreads entries; ends with a barrier after
// which smem may be reused.
template <class T, class Merge>
__device__ __forceinline__ T column_merge(T v, T* smem, const RowsThread& t, Merge merge) {
  smem[threadIdx.x] = v;
  __syncthreads();
  for (int half = t.by / 2; half > 0; half /= 2) {
    if (t.ty < half) smem[threadIdx.x] = merge(smem[threadIdx.x], smem[threadIdx.x + half * t.bx]);
    __syncthreads();
  }
  const T result = smem[t.tx];
  __syncthreads();
  return result;
}

__device__ __forceinline__ void rows_stats_item(const Rows& p, const float* __restrict__ x, StatPartial* __restrict__ out,
                                                int64_t item, const RowsThread& t, Welford* smem) {
  const int64_t g = item / p.splits, s = item - g * p.splits;
  const int64_t ch = g * t.bx + t.tx;
  const int64_t end = min(p.n, (s + 1) * p.chunk);
  const bool valid = ch < p.c;
  const float shift = valid ? x[ch] : 0.0f;  // the channel's first value (row 0)
  Welford w;
  if (valid) {
    int64_t i = s * p.chunk + t.ty;
    for (; i + 3 * t.by < end; i += 4 * t.by) {
      float d[4];
#pragma unroll
      for (int r = 0; r < 4; ++r) d[r] = x[(i + r * t.by) * p.c + ch];
#pragma unroll
      for (int r = 0; r < 4; ++r) d[r] -= shift;
      welford_add_batch<4>(w, d);
    }
    for (; i < end; i += t.by) welford_add(w, x[i * p.c + ch] - shift);
  }
  w = column_merge(w, smem, t, MergeWelford{});
  if (t.ty == 0 && valid) out[ch * p.splits + s] = StatPartial{shift, w.mean, w.m2, w.count};
}

__global__ void __launch_bounds__(kThreads)
    rows_stats_kernel(const Rows p, const float* __restrict__ x, StatPartial* __restrict__ out, BatchCount n) {
  __shared__ Welford smem[kThreads];
  count_batch(n);
  const RowsThread t(p.bx_log2);
  for (int64_t item = blockIdx.x; item < p.groups * p.splits; item += gridDim.x) rows_stats_item(p, x, out, item, t, smem);
}

__device__ __forceinline__ void rows_grad_stats_item(const Rows& p, const float* __restrict__ x,
                                                     const float* __restrict__ dy, const float* __restrict__ mean,
                                                     const float* __restrict__ mean_lo, const float* __restrict__ relu_y,
                                                     GradPartial* __restrict__ out, int64_t item, const RowsThread& t,
                                                     float2* smem) {
  const int64_t g = item / p.splits, s = item - g * p.splits;
  const int64_t ch = g * t.bx + t.tx;
  const int64_t end = min(p.n, (s + 1) * p.chunk);
  const bool valid = ch < p.c;
  float2 sums = make_float2(0.0f, 0.0f);
  if (valid) {
    const float mu = mean[ch], mu_lo = mean_lo ? mean_lo[ch] : 0.0f;
    int64_t i = s * p.chunk + t.ty;
    for (; i + 3 * t.by < end; i += 4 * t.by) {
      float xv[4], gv[4];
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int64_t at = (i + r * t.by) * p.c + ch;
        xv[r] = x[at];
        gv[r] = mask_by_relu(dy[at], relu_y, at);
      }
      float gx[4];
#pragma unroll
      for (int r = 0; r < 4; ++r) gx[r] = gv[r] * ((xv[r] - mu) - mu_lo);
      sums.x += pairwise_sum<4>(gv);
      sums.y += pairwise_sum<4>(gx);
    }
    for (; i < end; i += t.by) {
      const float gv = mask_by_relu(dy[i * p.c + ch], relu_y, i * p.c + ch);
      sums.x += gv;
      sums.y += gv * ((x[i * p.c + ch] - mu) - mu_lo);
    }
  }
  sums = column_merge(sums, smem, t, MergeSums{});
  if (t.ty == 0 && valid) out[ch * p.splits + s] = GradPartial{sums.x, sums.y};
}

__global__ void __launch_bounds__(kThreads)
    rows_grad_stats_kernel(const Rows p, const float* __restrict__ x, const float* __restrict__ dy,
                           const float* __restrict__ mean, const float* __restrict__ mean_lo,
                           const float* __restrict__ relu_y, GradPartial* __restrict__ out) {
  __shared__ float2 smem[kThreads];
  const RowsThread t(p.bx_log2);
  for (int64_t item = blockIdx.x; item < p.groups * p.splits; item += gridDim.x) {
    rows_grad_stats_item(p, x, dy, mean, mean_lo, relu_y, out, item, t, smem);
  }
}

// The shared memory of rows_apply_item.
struct RowsApplyShared {
  Welford w[kThreads];
  float2 g[kThreads];
  float coef[32][kCoefficients];
};

template <Mode M>
__device__ __forceinline__ void rows_apply_item(const Rows& p, const BnArgs& a, int64_t item, const RowsThread& t,
                                                RowsApplyShared& sh) {
  Welford* wsmem = sh.w;
  float2* gsmem = sh.g;
  float (*coef)[kCoefficients] = sh.coef;
  const int64_t g = item / p.splits, s = item - g * p.splits;
  if (!a.out && s != 0) return;  // no dx wanted: only the blocks writing dgamma/dbeta work
  const int64_t ch = g * t.bx + t.tx;
  const bool valid = ch < p.c;

  // The channel's partials: thread (tx, ty) merges splits ty, ty + BY, ..., then the column
  // tree; the same order in every block of the channel.
  Welford w;
  float2 sums = make_float2(0.0f, 0.0f);
  float shift = 0.0f;
  if constexpr (M == Mode::ForwardTrain) {
    if (valid) {
      for (int64_t j = t.ty; j < a.splits; j += t.by) w = welford_merge(w, to_welford(a.stat[ch * a.splits + j]));
      shift = a.stat[ch * a.splits].shift;
    }
    w = column_merge(w, wsmem, t, MergeWelford{});
  } else if constexpr (M == Mode::BackwardTrain || M == Mode::BackwardInfer) {
    if (valid) {
      for (int64_t j = t.ty; j < a.splits; j += t.by) {
        const GradPartial gp = a.grad[ch * a.splits + j];
        sums.x += gp.sum_dy;
        sums.y += gp.sum_dy_xc;
      }
    }
    sums = column_merge(sums, gsmem, t, MergeSums{});
  }
  if (t.ty == 0 && valid) channel_coefficients<M>(a, ch, s == 0, shift, w, sums.x, sums.y, coef[t.tx]);
  __syncthreads();
  float k[kCoefficients] = {};
  if (valid) {
#pragma unroll
    for (int e = 0; e < kCoefficients; ++e) k[e] = coef[t.tx][e];
  }
  __syncthreads();  // coef is rewritten by the next item

  if (!a.out || !valid) return;
  const int64_t end = min(p.n, (s + 1) * p.chunk);
  int64_t i = s * p.chunk + t.ty;
  for (; i + 3 * t.by < end; i += 4 * t.by) {
    float xv[4] = {}, gv[4] = {};
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int64_t at = (i + r * t.by) * p.c + ch;
      if constexpr (reads_x<M>()) xv[r] = a.x[at];
      if constexpr (reads_dy<M>()) gv[r] = mask_by_relu(a.dy[at], a.relu_y, at);
    }
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      a.out[(i + r * t.by) * p.c + ch] = activate(a.relu, bn_element<M>(xv[r], gv[r], k));
    }
  }
  for (; i < end; i += t.by) {
    const int64_t at = i * p.c + ch;
    const float xv = reads_x<M>() ? a.x[at] : 0.0f;
    const float gv = reads_dy<M>() ? mask_by_relu(a.dy[at], a.relu_y, at) : 0.0f;
    a.out[at] = activate(a.relu, bn_element<M>(xv, gv, k));
  }
}

template <Mode M>
__global__ void __launch_bounds__(kThreads) rows_apply_kernel(const Rows p, const BnArgs a) {
  __shared__ RowsApplyShared sh;
  const RowsThread t(p.bx_log2);
  for (int64_t item = blockIdx.x; item < p.groups * p.splits; item += gridDim.x) rows_apply_item<M>(p, a, item, t, sh);
}

// One block per group of channels (a plan of one split): both passes in one launch, as the planar
// *_single kernels.
__global__ void __launch_bounds__(kThreads)
    rows_forward_single_kernel(const Rows p, const BnArgs a, StatPartial* partials, BatchCount n) {
  __shared__ RowsApplyShared sh;
  count_batch(n);
  const RowsThread t(p.bx_log2);
  for (int64_t item = blockIdx.x; item < p.groups; item += gridDim.x) {
    rows_stats_item(p, a.x, partials, item, t, sh.w);
    __syncthreads();
    rows_apply_item<Mode::ForwardTrain>(p, a, item, t, sh);
  }
}

template <Mode M>
__global__ void __launch_bounds__(kThreads) rows_backward_single_kernel(const Rows p, const BnArgs a, GradPartial* partials) {
  __shared__ RowsApplyShared sh;
  const RowsThread t(p.bx_log2);
  for (int64_t item = blockIdx.x; item < p.groups; item += gridDim.x) {
    rows_grad_stats_item(p, a.x, a.dy, a.mean, a.mean_lo, a.relu_y, partials, item, t, sh.g);
    __syncthreads();
    rows_apply_item<M>(p, a, item, t, sh);
  }
}

// =============================================================================================
// Planning and launching

int64_t target_blocks() { return static_cast<int64_t>(sm_count()) * 16; }  // ~2 waves of 8 blocks

// Splits of `work` units (values or float4s of one channel, or of one column group) handled by
// blocks of kThreads threads, for `items` channels or groups, at most `per_partial` per split.
// A channel (or group of columns) of at most this many units per thread gets one block, and both
// passes then run in one launch (the *_single kernels): for layers that small, a second launch
// costs more than the parallelism of more blocks would buy.
constexpr int64_t kSinglePassUnitsPerThread = 32;

int64_t choose_splits(int64_t work, int64_t items, int64_t per_partial) {
  if (work <= kThreads * kSinglePassUnitsPerThread && work <= per_partial) return 1;
  int64_t splits = ceil_div<int64_t>(target_blocks(), items);                               // fill the GPU
  splits = std::min(splits, std::max<int64_t>(1, work / (kThreads * kMinUnitsPerThread)));  // real work each
  splits = std::max(splits, ceil_div<int64_t>(work, kThreads * kMaxUnitsPerThread));       // short sequences
  splits = std::min(splits, kMaxSplits);
  splits = std::max(splits, ceil_div<int64_t>(work, per_partial));  // exact float counts, always
  return std::max<int64_t>(1, splits);
}

Planar plan_planar(const BnShape& s, int vw) {
  Planar p{};
  p.l = s.l;
  p.row_stride = s.c * s.l;
  p.channels = s.c;
  p.row_units = s.l / vw;
  p.units = s.n * p.row_units;
  p.splits = choose_splits(p.units, s.c, kMaxPartialCount / vw);
  p.chunk = ceil_div<int64_t>(p.units, p.splits);
  p.splits = ceil_div<int64_t>(p.units, p.chunk);  // every split non-empty
  p.step_rows = kThreads / p.row_units;
  p.step_units = kThreads % p.row_units;
  p.step_offset = p.step_rows * p.row_stride + p.step_units * vw;
  p.wrap_offset = p.row_stride - p.l;
  return p;
}

Rows plan_rows(const BnShape& s) {
  Rows p{};
  p.n = s.n;
  p.c = s.c;
  p.bx_log2 = 0;
  while (p.bx_log2 < 5 && (int64_t{1} << p.bx_log2) < s.c) ++p.bx_log2;
  const int64_t by = kThreads >> p.bx_log2;
  p.groups = ceil_div<int64_t>(s.c, int64_t{1} << p.bx_log2);
  // choose_splits counts values per block of kThreads threads: a column group of n rows holds
  // n * BX of them. A partial's count is its number of rows, at most 2^24.
  const int64_t bx = kThreads / by;
  p.splits = choose_splits(s.n * bx, p.groups, kMaxPartialCount * bx);
  p.chunk = ceil_div<int64_t>(s.n, p.splits);
  p.splits = ceil_div<int64_t>(s.n, p.chunk);
  return p;
}

// Float4 access when every array of the pass is 16-byte aligned and rows are whole float4s.
bool planar_vec(const BnShape& s, std::initializer_list<const void*> ptrs) {
  if (s.l % 4 != 0) return false;
  for (const void* q : ptrs) {
    if (q && !aligned16(q)) return false;
  }
  return true;
}

template <class Sizes>
void stats_pass(const BnShape& s, bool vec, const float* x, StatPartial* out, const BatchCount& n, const Planar& pl,
                const Rows& rw, const Sizes& sizes) {
  if (s.l > 1) {
    const unsigned grid = grid_exact(pl.channels * pl.splits);
    if (vec) planar_stats_kernel<4><<<grid, kThreads, 0, stream()>>>(pl, x, out, n);
    else planar_stats_kernel<1><<<grid, kThreads, 0, stream()>>>(pl, x, out, n);
  } else {
    rows_stats_kernel<<<grid_exact(rw.groups * rw.splits), kThreads, 0, stream()>>>(rw, x, out, n);
  }
  check_launch("launch of batch-norm statistics kernel", sizes);
}

// The backward passes over planar input, the gradient coming from `src`: one launch for a plan of
// one split, else the statistics pass and the elementwise pass. out: the plan's partials.
template <Mode M, class Gradient, class Sizes>
void planar_backward_passes(const Planar& pl, bool vec, const BnArgs& a, const Gradient& src, GradPartial* out,
                            const Sizes& sizes) {
  const unsigned grid = grid_exact(pl.channels * pl.splits);
  if (pl.splits == 1) {
    if (vec) planar_backward_single_kernel<4, M, Gradient><<<grid, kThreads, 0, stream()>>>(pl, a, src, out);
    else planar_backward_single_kernel<1, M, Gradient><<<grid, kThreads, 0, stream()>>>(pl, a, src, out);
    check_launch("launch of the one-pass batch-norm backward kernel", sizes);
    return;
  }
  if (vec) planar_grad_stats_kernel<4, Gradient><<<grid, kThreads, 0, stream()>>>(pl, a.x, src, a.mean, a.mean_lo, out);
  else planar_grad_stats_kernel<1, Gradient><<<grid, kThreads, 0, stream()>>>(pl, a.x, src, a.mean, a.mean_lo, out);
  check_launch("launch of batch-norm gradient statistics kernel", sizes);
  if (vec) planar_apply_kernel<4, M, Gradient><<<grid, kThreads, 0, stream()>>>(pl, a, src);
  else planar_apply_kernel<1, M, Gradient><<<grid, kThreads, 0, stream()>>>(pl, a, src);
  check_launch("launch of batch-norm elementwise kernel", sizes);
}

template <Mode M, class Sizes>
void rows_backward_passes(const Rows& rw, const BnArgs& a, GradPartial* out, const Sizes& sizes) {
  if (rw.splits == 1) {
    rows_backward_single_kernel<M><<<grid_exact(rw.groups), kThreads, 0, stream()>>>(rw, a, out);
    check_launch("launch of the one-pass batch-norm backward kernel", sizes);
    return;
  }
  const unsigned grid = grid_exact(rw.groups * rw.splits);
  rows_grad_stats_kernel<<<grid, kThreads, 0, stream()>>>(rw, a.x, a.dy, a.mean, a.mean_lo, a.relu_y, out);
  check_launch("launch of batch-norm gradient statistics kernel", sizes);
  rows_apply_kernel<M><<<grid, kThreads, 0, stream()>>>(rw, a);
  check_launch("launch of batch-norm elementwise kernel", sizes);
}

// The arguments both backward forms share.
BnArgs backward_args(const BnShape& s, const float* x, float* dx, const float* gamma, const float* mean,
                     const float* mean_lo, const float* invstd, const GradPartial* partials, int64_t splits,
                     float* dgamma, float* dbeta) {
  BnArgs a{};
  a.x = x;
  a.out = dx;
  a.gamma = gamma;
  a.mean = mean;
  a.mean_lo = mean_lo;
  a.invstd = invstd;
  a.count = static_cast<double>(s.n * s.l);
  a.grad = partials;
  a.splits = splits;
  a.dgamma = dgamma;
  a.dbeta = dbeta;
  return a;
}

template <Mode M, class Sizes>
void apply_pass(const BnShape& s, bool vec, const BnArgs& a, const Planar& pl, const Rows& rw, const Sizes& sizes) {
  if (s.l > 1) {
    const unsigned grid = grid_exact(pl.channels * pl.splits);
    const PlainGradient src{a.dy, a.relu_y};
    if (vec) planar_apply_kernel<4, M, PlainGradient><<<grid, kThreads, 0, stream()>>>(pl, a, src);
    else planar_apply_kernel<1, M, PlainGradient><<<grid, kThreads, 0, stream()>>>(pl, a, src);
  } else {
    rows_apply_kernel<M><<<grid_exact(rw.groups * rw.splits), kThreads, 0, stream()>>>(rw, a);
  }
  check_launch("launch of batch-norm elementwise kernel", sizes);
}

// Plans for both layouts; only the one matching s.l is used.
struct Plan {
  Planar planar{};
  Rows rows{};
  int64_t splits = 1;
};
Plan make_plan(const BnShape& s, bool vec) {
  Plan plan;
  if (s.l > 1) {
    plan.planar = plan_planar(s, vec ? 4 : 1);
    plan.splits = plan.planar.splits;
  } else {
    plan.rows = plan_rows(s);
    plan.splits = plan.rows.splits;
  }
  return plan;
}

auto bn_sizes(const char* op, const BnShape& s) {
  return [op, &s] { return describe(op, " (n, c, l) = (", s.n, ", ", s.c, ", ", s.l, ")"); };
}

}  // namespace
}  // namespace detail

namespace detail {

// With `pool` (relu set, s.l > 1), y is the pooled output (n, c, oh, ow).
void forward_train(const char* op, bool relu, const BnShape& s, const PoolShape* pool, const float* x,
                   const float* gamma, const float* beta, float eps, float* y, float* save_mean, float* save_mean_lo,
                   float* save_invstd, float* batch_var, const BnRunningUpdate& update) {
  const auto sizes = bn_sizes(op, s);
  if (s.c <= 0) return;
  if (s.n <= 0 || s.l <= 0) {  // no values: report a zero mean and variance
    fill(s.c, 0.0f, save_mean);
    fill(s.c, 0.0f, save_mean_lo);
    fill(s.c, static_cast<float>(1.0 / std::sqrt(static_cast<double>(eps))), save_invstd);
    if (batch_var) fill(s.c, 0.0f, batch_var);
    return;
  }
  // The pooled form writes y itself, window by window: only x's alignment matters to it.
  const bool vec = planar_vec(s, {x, pool ? nullptr : y});
  const Plan plan = make_plan(s, vec);
  // The partials, then the batch count from before this batch (StatPartial keeps the float aligned).
  const size_t partial_bytes = static_cast<size_t>(s.c * plan.splits) * sizeof(StatPartial);
  Scratch scratch(partial_bytes + sizeof(float));
  StatPartial* partials = scratch.as<StatPartial>();
  float* seen = reinterpret_cast<float*>(scratch.as<char>() + partial_bytes);
  const BatchCount count{update.num_batches_tracked, seen};

  BnArgs a{};
  a.x = x;
  a.out = pool ? nullptr : y;
  a.gamma = gamma;
  a.beta = beta;
  a.eps = eps;
  a.relu = relu;
  a.count = static_cast<double>(s.n * s.l);
  a.stat = partials;
  a.splits = plan.splits;
  a.save_mean = save_mean;
  a.save_mean_lo = save_mean_lo;
  a.save_invstd = save_invstd;
  a.batch_var = batch_var;
  a.update = update;
  a.seen = update.num_batches_tracked ? seen : nullptr;
  PoolForward f{};
  if (pool) {
    f.y = y;
    f.w = pool->w;
    f.kh = pool->kh;
    f.kw = pool->kw;
    f.oh = pool->oh;
    f.ow = pool->ow;
    f.plane_outputs = DivU32(pool->oh * pool->ow);
    f.out_cols = DivU32(pool->ow);
    f.area = static_cast<float>(pool->kh * pool->kw);
  }

  if (plan.splits == 1 && !update.cumulative) {
    if (s.l > 1) {
      const unsigned grid = grid_exact(s.c);
      const Planar& pl = plan.planar;
      if (pool && vec) planar_forward_single_kernel<4, true><<<grid, kThreads, 0, stream()>>>(pl, a, partials, count, f);
      else if (pool) planar_forward_single_kernel<1, true><<<grid, kThreads, 0, stream()>>>(pl, a, partials, count, f);
      else if (vec) planar_forward_single_kernel<4, false><<<grid, kThreads, 0, stream()>>>(pl, a, partials, count, f);
      else planar_forward_single_kernel<1, false><<<grid, kThreads, 0, stream()>>>(pl, a, partials, count, f);
    } else {
      rows_forward_single_kernel<<<grid_exact(plan.rows.groups), kThreads, 0, stream()>>>(plan.rows, a, partials, count);
    }
    check_launch("launch of the one-pass batch-norm kernel", sizes);
    return;
  }
  stats_pass(s, vec, x, partials, count, plan.planar, plan.rows, sizes);
  if (!pool) {
    apply_pass<Mode::ForwardTrain>(s, vec, a, plan.planar, plan.rows, sizes);
    return;
  }
  planar_pool_forward_kernel<<<grid_exact(plan.planar.channels * plan.planar.splits), kThreads, 0, stream()>>>(
      plan.planar, a, f);
  check_launch("launch of batch-norm + pooling kernel", sizes);
}

void forward_infer(const char* op, bool relu, const BnShape& s, const float* x, const float* gamma, const float* beta,
                   const float* mean, const float* var, float eps, float* y) {
  const auto sizes = bn_sizes(op, s);
  if (s.c <= 0 || s.n <= 0 || s.l <= 0) return;
  const bool vec = planar_vec(s, {x, y});
  const Plan plan = make_plan(s, vec);
  BnArgs a{};
  a.x = x;
  a.out = y;
  a.gamma = gamma;
  a.beta = beta;
  a.mean = mean;
  a.var = var;
  a.eps = eps;
  a.relu = relu;
  a.count = static_cast<double>(s.n * s.l);
  a.splits = plan.splits;
  apply_pass<Mode::ForwardInfer>(s, vec, a, plan.planar, plan.rows, sizes);
}

// Both backward forms: one reduction of Σdy and Σdy·(x−μ) per channel, then the elementwise pass
// that writes dx and finishes dgamma and dbeta. Training takes the saved invstd; inference forms
// it from the running variance and eps. relu_y (the fused ReLU's output) masks dy, or is null.
template <Mode M>
void backward(const char* op, const BnShape& s, const float* x, const float* relu_y, const float* dy,
              const float* gamma, const float* mean, const float* mean_lo, const float* invstd, const float* var,
              float eps, float* dx, float* dgamma, float* dbeta) {
  const auto sizes = bn_sizes(op, s);
  if (s.c <= 0) return;
  if (s.n <= 0 || s.l <= 0) {
    fill(s.c, 0.0f, dgamma);
    fill(s.c, 0.0f, dbeta);
    return;
  }
  const bool vec = planar_vec(s, {x, relu_y, dy, dx});
  const Plan plan = make_plan(s, vec);
  Scratch partials(static_cast<size_t>(s.c * plan.splits) * sizeof(GradPartial));
  GradPartial* out = partials.as<GradPartial>();
  BnArgs a = backward_args(s, x, dx, gamma, mean, mean_lo, invstd, out, plan.splits, dgamma, dbeta);
  a.dy = dy;
  a.relu_y = relu_y;
  a.var = var;
  a.eps = eps;
  if (s.l > 1) planar_backward_passes<M>(plan.planar, vec, a, PlainGradient{dy, relu_y}, out, sizes);
  else rows_backward_passes<M>(plan.rows, a, out, sizes);
}

// Backward of batch norm + ReLU + average pooling: the training backward's two passes, with the
// gradient formed from the pooled one on the fly (PooledGradient). Planar input only (h * w > 1).
void pool_backward(const PoolShape& ps, const float* x, const float* dy, const float* gamma, const float* beta,
                   const float* mean, const float* mean_lo, const float* invstd, float* dx, float* dgamma,
                   float* dbeta) {
  const BnShape s{ps.n, ps.c, ps.h * ps.w};
  const auto sizes = bn_sizes("batchnorm_relu_pool_backward_train", s);
  if (s.c <= 0) return;
  if (s.n <= 0 || s.l <= 0) {
    fill(s.c, 0.0f, dgamma);
    fill(s.c, 0.0f, dbeta);
    return;
  }
  const bool vec = planar_vec(s, {x, dx});
  const Planar pl = make_plan(s, vec).planar;
  Scratch partials(static_cast<size_t>(s.c * pl.splits) * sizeof(GradPartial));
  PooledGradient src{};
  src.dy = dy;
  src.gamma = gamma;
  src.beta = beta;
  src.invstd = invstd;
  src.w = DivU32(ps.w);
  src.kh = DivU32(ps.kh);
  src.kw = DivU32(ps.kw);
  src.oh = ps.oh;
  src.ow = ps.ow;
  src.area = static_cast<float>(ps.kh * ps.kw);
  GradPartial* out = partials.as<GradPartial>();
  const BnArgs a = backward_args(s, x, dx, gamma, mean, mean_lo, invstd, out, pl.splits, dgamma, dbeta);
  planar_backward_passes<Mode::BackwardTrain>(pl, vec, a, src, out, sizes);
}

}  // namespace detail

void batchnorm_relu_pool_forward_train(const PoolShape& ps, const float* x, const float* gamma, const float* beta,
                                       float eps, float* y, float* save_mean, float* save_mean_lo, float* save_invstd,
                                       float* batch_var, const BnRunningUpdate& update) {
  const BnShape s{ps.n, ps.c, ps.h * ps.w};
  detail::forward_train("batchnorm_relu_pool_forward_train", true, s, &ps, x, gamma, beta, eps, y, save_mean,
                        save_mean_lo, save_invstd, batch_var, update);
}
void batchnorm_relu_pool_backward_train(const PoolShape& ps, const float* x, const float* dy, const float* gamma,
                                        const float* beta, const float* save_mean, const float* save_mean_lo,
                                        const float* save_invstd, float* dx, float* dgamma, float* dbeta) {
  detail::pool_backward(ps, x, dy, gamma, beta, save_mean, save_mean_lo, save_invstd, dx, dgamma, dbeta);
}

void batchnorm_forward_train(const BnShape& s, const float* x, const float* gamma, const float* beta, float eps,
                             float* y, float* save_mean, float* save_mean_lo, float* save_invstd, float* batch_var,
                             const BnRunningUpdate& update) {
  detail::forward_train("batchnorm_forward_train", false, s, nullptr, x, gamma, beta, eps, y, save_mean, save_mean_lo,
                        save_invstd, batch_var, update);
}
void batchnorm_relu_forward_train(const BnShape& s, const float* x, const float* gamma, const float* beta, float eps,
                                  float* y, float* save_mean, float* save_mean_lo, float* save_invstd,
                                  float* batch_var, const BnRunningUpdate& update) {
  detail::forward_train("batchnorm_relu_forward_train", true, s, nullptr, x, gamma, beta, eps, y, save_mean,
                        save_mean_lo, save_invstd, batch_var, update);
}

void batchnorm_forward_infer(const BnShape& s, const float* x, const float* gamma, const float* beta,
                             const float* mean, const float* var, float eps, float* y) {
  detail::forward_infer("batchnorm_forward_infer", false, s, x, gamma, beta, mean, var, eps, y);
}
void batchnorm_relu_forward_infer(const BnShape& s, const float* x, const float* gamma, const float* beta,
                                  const float* mean, const float* var, float eps, float* y) {
  detail::forward_infer("batchnorm_relu_forward_infer", true, s, x, gamma, beta, mean, var, eps, y);
}

void batchnorm_backward_train(const BnShape& s, const float* x, const float* dy, const float* gamma,
                              const float* save_mean, const float* save_mean_lo, const float* save_invstd,
                              float* dx, float* dgamma, float* dbeta) {
  detail::backward<detail::Mode::BackwardTrain>("batchnorm_backward_train", s, x, nullptr, dy, gamma, save_mean,
                                                save_mean_lo, save_invstd, nullptr, 0.0f, dx, dgamma, dbeta);
}
void batchnorm_relu_backward_train(const BnShape& s, const float* x, const float* y, const float* dy,
                                   const float* gamma, const float* save_mean, const float* save_mean_lo,
                                   const float* save_invstd, float* dx, float* dgamma, float* dbeta) {
  detail::backward<detail::Mode::BackwardTrain>("batchnorm_relu_backward_train", s, x, y, dy, gamma, save_mean,
                                                save_mean_lo, save_invstd, nullptr, 0.0f, dx, dgamma, dbeta);
}

void batchnorm_backward_infer(const BnShape& s, const float* x, const float* dy, const float* gamma,
                              const float* mean, const float* var, float eps, float* dx, float* dgamma,
                              float* dbeta) {
  detail::backward<detail::Mode::BackwardInfer>("batchnorm_backward_infer", s, x, nullptr, dy, gamma, mean, nullptr,
                                                nullptr, var, eps, dx, dgamma, dbeta);
}
void batchnorm_relu_backward_infer(const BnShape& s, const float* x, const float* y, const float* dy,
                                   const float* gamma, const float* mean, const float* var, float eps, float* dx,
                                   float* dgamma, float* dbeta) {
  detail::backward<detail::Mode::BackwardInfer>("batchnorm_relu_backward_infer", s, x, y, dy, gamma, mean, nullptr,
                                                nullptr, var, eps, dx, dgamma, dbeta);
}

}  // namespace kg::cuda
