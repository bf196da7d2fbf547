// Inference of a convolution block -- conv2d, then batch norm with fixed statistics, ReLU and
// average pooling, each optional -- as one native call that keeps the intermediate maps in cache
// (native/cpu/conv_block.h). The result is bitwise that of the separate ops. Nothing is recorded
// for autograd: the caller (lib/nn/inference-blocks.ts) uses it only where no gradient is wanted.
import { checkOutput } from '../autograd/tape';
import { ConvShapeArg, native } from '../native';
import type { InferenceConstants } from '../nn/batchnorm';
import { Tensor } from '../tensor';
import { blockBatchNorm } from './block-batchnorm';

export interface ConvBlock {
  weight: Tensor;
  bias: Tensor | null;
  stride: [number, number];
  padding: [number, number];
  groups: number;
  batchNorm: InferenceConstants | null;
  relu: boolean;
  pool: { kernelSize: [number, number]; stride: [number, number] } | null;
}

/** The block's output size for input (h, w), or null when a window does not fit. */
export function convBlockOutput(b: ConvBlock, h: number, w: number): [number, number] | null {
  const [, , kh, kw] = b.weight.shape;
  const oh = Math.floor((h + 2 * b.padding[0] - kh) / b.stride[0]) + 1;
  const ow = Math.floor((w + 2 * b.padding[1] - kw) / b.stride[1]) + 1;
  if (h + 2 * b.padding[0] < kh || w + 2 * b.padding[1] < kw) return null;
  if (!b.pool) return [oh, ow];
  const [ph, pw] = b.pool.kernelSize;
  if (oh < ph || ow < pw) return null;
  return [Math.floor((oh - ph) / b.pool.stride[0]) + 1, Math.floor((ow - pw) / b.pool.stride[1]) + 1];
}

/** x (n, c, h, w) through the block; the caller has checked that the shapes fit (convBlockOutput). */
export function convBlockInference(x: Tensor, b: ConvBlock): Tensor {
  const [n, c, h, w] = x.shape;
  const [k, , kh, kw] = b.weight.shape;
  const out = convBlockOutput(b, h, w);
  if (!out) throw new RangeError(`convBlockInference: the block's windows do not fit x [${x.shape.join(', ')}]`);
  const shape: ConvShapeArg = [n, c, h, w, k, kh, kw, b.stride[0], b.stride[1], b.padding[0], b.padding[1], b.groups];
  const y = Tensor.empty([n, k, out[0], out[1]], x.device);
  const pool: [number, number, number, number] | null = b.pool ? [...b.pool.kernelSize, ...b.pool.stride] : null;
  const bn = blockBatchNorm(b.batchNorm, k, x.device);
  native.convBlockInfer(shape, pool, x.storage, b.weight.storage, b.bias ? b.bias.storage : null, ...bn.args, b.relu, y.storage);
  checkOutput('convBlockInference', y, [x, b.weight, ...(b.bias ? [b.bias] : []), ...bn.tensors]);
  return y;
}
