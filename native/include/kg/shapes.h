// Plain shape descriptions shared by the CPU and CUDA kernels. No Node-API here: the kernels
// know nothing about JavaScript, so they can be tested and timed on their own (native/dev).
#pragma once
#include <cstdint>

namespace kg {

// A 2-D convolution of x (n, c, h, w) with w (k, c / groups, kh, kw) into y (n, k, oh, ow),
// cross-correlation as in every framework. The channels split into `groups` equal groups, each an
// independent convolution: output channel k reads only the input channels of its group
// g = k / (k_total / groups), input channel c = g * c_per_group + cg:
//   y[n,k,i,j] = b[k] + sum_{cg,p,q} x[n, g*c/groups + cg, i*sh+p-ph, j*sw+q-pw] * w[k,cg,p,q].
// groups == c is a depthwise convolution; groups == 1 the ordinary one.
struct ConvShape {
  int64_t n, c, h, w;     // input
  int64_t k, kh, kw;      // filters
  int64_t sh, sw, ph, pw; // stride and zero padding
  int64_t oh, ow;         // output, (h + 2ph - kh) / sh + 1
  int64_t groups;         // >= 1, divides c and k
};

// Average pooling without padding: y[n,c,i,j] = mean of the kh x kw window at (i*sh, j*sw).
struct PoolShape {
  int64_t n, c, h, w;
  int64_t kh, kw, sh, sw;
  int64_t oh, ow;
};

// Max pooling with implicit -inf padding: y[n,c,i,j] = max of the kh x kw window whose top-left
// corner is (i*sh - ph, j*sw - pw), over the pixels inside the input. Padding is at most half the
// window (ph <= kh/2), so every window holds at least one pixel.
struct MaxPoolShape {
  int64_t n, c, h, w;
  int64_t kh, kw, sh, sw, ph, pw;
  int64_t oh, ow;  // (h + 2ph - kh) / sh + 1
};

// Batch norm sees every input as (n, c, l): l = h*w for 4-D input and 1 for 2-D input.
// Statistics are per channel c over the n*l values.
struct BnShape {
  int64_t n, c, l;
};

// Group norm, layer norm and batch renorm, as one "normalize over a set of axes" shape. x is seen
// as (outer, groups, inner): one mean and variance per group g over its outer * inner values,
// element e = (o * groups + g) * inner + i. The affine parameters gamma/beta have `params` entries,
// each applying to `run` consecutive elements in turn: element e uses p = (e / run) % params.
//   batch renorm (n, c, l):      outer n, groups c,     inner l,            params c, run l
//   group norm (n, c, l), G:     outer 1, groups n * G, inner (c / G) * l,  params c, run l
//   layer norm (rows, d):        outer 1, groups rows,  inner d,            params d, run 1
// A run never crosses a group (inner % run == 0) and groups * inner is a multiple of params * run.
struct NormShape {
  int64_t outer, groups, inner;
  int64_t params, run;
};

// Batch renorm's extra inputs and outputs (Ioffe, 2017): per group, r = clip(sigma_batch / sigma,
// 1 / r_max, r_max) and d = clip((mean_batch - mean) / sigma, -d_max, d_max) with
// sigma = sqrt(running_var + eps); written to r and d for backward, where they are constants.
// batch_var receives the biased batch variance for the running statistics.
struct RenormArgs {
  const float* running_mean;
  const float* running_var;
  float r_max, d_max;
  float* batch_var;
  float* r;
  float* d;
};

// Up to this many dimensions take part in a broadcasting elementwise op.
constexpr int kMaxDims = 6;

// out[i] = a[i . astride] (op) b[i . bstride] over the multi-index i of `shape`; a stride of 0
// broadcasts that operand along the dimension.
struct BroadcastShape {
  int ndim;
  int64_t shape[kMaxDims];
  int64_t astride[kMaxDims];
  int64_t bstride[kMaxDims];
};

enum class BinaryOp : int { Add = 0, Sub = 1, Mul = 2, Div = 3 };

// The scalars of one Adam/AdamW step (adam_update). The host folds the bias corrections of step t
// into two of them, so the kernel is the same for every step:
//   step_size = lr * sqrt(1 - beta2^t) / (1 - beta1^t),  eps = eps_user * sqrt(1 - beta2^t),
// which is lr * m_hat / (sqrt(v_hat) + eps_user) with m_hat, v_hat the bias-corrected moments.
// Adam's weight decay is an L2 term in the gradient (l2 = weight decay, decay = 0); AdamW's is
// decoupled from it (l2 = 0, decay = lr * weight decay).
struct AdamStep {
  float beta1, beta2;
  float step_size, eps;
  float l2, decay;
};

}  // namespace kg
