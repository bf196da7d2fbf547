// conv_block_infer: see inference_blocks.h.
#include "inference_blocks.h"

#include <algorithm>

#include "kg/ops.h"
#include "parallel.h"
#include "scratch.h"

namespace kg::cpu {
namespace {

// Convolution outputs per chunk: 256 KiB, so that a chunk's map stays in L2 between the stages.
constexpr int64_t kChunkFloats = int64_t(1) << 16;

// The part of the convolution's map that the pooling windows read: its first rows and columns.
ConvShape cropped_to_pool(ConvShape s, const PoolShape& p) {
  s.oh = (p.oh - 1) * p.sh + p.kh;
  s.ow = (p.ow - 1) * p.sw + p.kw;
  return s;
}

// The stages after the convolution, in place on `n` samples' map at `map` (k channels of l pixels).
void normalize_and_rectify(const ConvBlock& b, int64_t n, int64_t l, float* map) {
  const BnShape bs{n, b.conv.k, l};
  if (b.bn) {
    const BnInference& bn = *b.bn;
    if (b.relu) batchnorm_relu_forward_infer(bs, map, bn.gamma, bn.beta, bn.mean, bn.var, bn.eps, map);
    else batchnorm_forward_infer(bs, map, bn.gamma, bn.beta, bn.mean, bn.var, bn.eps, map);
  } else if (b.relu) {
    relu_forward(n * b.conv.k * l, map, map);
  }
}

}  // namespace

void conv_block_infer(const ConvBlock& b, const float* x, const float* w, const float* bias, float* y) {
  const ConvShape conv = b.pool ? cropped_to_pool(b.conv, *b.pool) : b.conv;
  const int64_t in_sample = conv.c * conv.h * conv.w;
  const int64_t map_pixels = conv.oh * conv.ow;
  const int64_t map_sample = conv.k * map_pixels;
  const int64_t out_sample = b.pool ? conv.k * b.pool->oh * b.pool->ow : map_sample;
  if (conv.n == 0 || out_sample == 0) return;
  const int64_t per_chunk = std::clamp<int64_t>(kChunkFloats / std::max<int64_t>(map_sample, 1), 1, conv.n);
  const int64_t chunks = ceil_div(conv.n, per_chunk);
  // Enough chunks: one thread per chunk, every stage serial inside it (no fork/join per stage).
  // Few (a small batch): chunk after chunk, each stage parallel inside.
  const bool across_chunks = chunks >= 2 * available_threads();
  parallel_for_dynamic(chunks, across_chunks, [&](int64_t chunk) {
    const int64_t s0 = chunk * per_chunk, n = std::min(conv.n, s0 + per_chunk) - s0;
    ConvShape cs = conv;
    cs.n = n;
    float* out = y + s0 * out_sample;
    float* map = b.pool ? scratch(Scratch::Block, size_t(n * map_sample)) : out;
    conv2d_forward(cs, x + s0 * in_sample, w, bias, map);
    normalize_and_rectify(b, n, map_pixels, map);
    if (b.pool) {
      PoolShape ps = *b.pool;
      ps.n = n;
      ps.h = conv.oh;
      ps.w = conv.ow;
      avgpool2d_forward(ps, map, out);
    }
  });
}

}  // namespace kg::cpu
