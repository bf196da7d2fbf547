// Inference blocks: a layer with weights and what follows it -- batch norm with fixed statistics,
// ReLU, and for a convolution average pooling -- as one call.
//
// Convolution blocks (conv_block.cpp). Run layer by layer, a block at batch 1000 writes and
// re-reads its full-size activations (54 MB for the tutorial's first layer) three times between
// the convolution and the pool. Here the batch goes through in chunks of a few samples, each
// chunk's convolution output held in a per-thread buffer the size of the L2 cache, normalized,
// rectified and pooled there, and only the pooled result is written out. Rows and columns that no pooling window reads are not
// computed at all (the tutorial's 9x9 map pools to 4x4 from its first 8x8).
//
// The results are bitwise those of the separate kernels: each stage calls the same kernel on a
// chunk, and none of them rounds differently for a sub-batch or a cropped map (convolution outputs
// are computed element by element from the same packed operands; batch norm's inference form and
// the pool are elementwise over planes).
//
// Dense blocks (dense_block.cpp): a dense layer (GEMM and bias), batch norm, ReLU. Mostly a matter
// of calls at small batches: at batch 1 the three ops cost more in calls than in arithmetic. The
// same bitwise equality holds: the dense layer is the layer's own kernel (linear_forward), then
// batch norm's own kernel runs in place.
//
// Chains (inference_chain.cpp): a whole network of such blocks -- the layers of a Sequential at
// inference -- as one call, each block's output handed to the next through a pooled buffer. At
// batch 1 a block's arithmetic takes a few microseconds, about what a call from JavaScript, a
// tensor for its output and the checks around it cost; the chain pays those once. The results
// are bitwise those of the blocks called one by one: each step is the same call on the same data.
//
// CPU only: on the GPU, the separate kernels run (there the cache is not the bottleneck).
#pragma once
#include "kg/shapes.h"

namespace kg {

// Batch norm's inference form, y = (x - mean) * gamma / sqrt(var + eps) + beta, per channel.
struct BnInference {
  const float* gamma;
  const float* beta;
  const float* mean;
  const float* var;
  float eps;
};

struct ConvBlock {
  ConvShape conv;        // the whole convolution (oh, ow as the layer computes them)
  const BnInference* bn; // null: no batch norm
  bool relu;
  const PoolShape* pool; // null: no pooling; else over (n, k, conv.oh, conv.ow)
};

// One block of a chain with its weights. A convolution block works on the tensor as it is; a dense
// block on each sample's values as one row (the layers' Flatten), in_features = their count.
struct ChainStep {
  bool conv;
  ConvShape shape;         // conv: the convolution over the whole batch (oh, ow as the layer computes them)
  bool pooled;             // conv: whether `pool` follows
  PoolShape pool;          // conv: over (n, k, oh, ow)
  int64_t in_features;     // dense
  int64_t out_features;    // dense
  bool normalized;         // whether `bn` follows
  BnInference bn;
  bool relu;
  const float* w;
  const float* bias;       // may be null
  int64_t out_per_sample;  // the step's output values per sample
};

}  // namespace kg

namespace kg::cpu {

// y is (n, k, pool.oh, pool.ow) with a pool, else (n, k, conv.oh, conv.ow). bias may be null.
void conv_block_infer(const ConvBlock& b, const float* x, const float* w, const float* bias, float* y);

// y (m, n) = x (m, k) * w^T + bias (w is (n, k), a dense layer's weight; bias may be null), then
// batch norm over the n features when bn, then ReLU when relu.
void dense_block_infer(int64_t m, int64_t n, int64_t k, const float* x, const float* w, const float* bias,
                       const BnInference* bn, bool relu, float* y);

// Runs `count` steps on a batch of n samples: x holds the first step's input, y receives the last
// step's output.
void inference_chain(const ChainStep* steps, int64_t count, int64_t n, const float* x, float* y);

}  // namespace kg::cpu
