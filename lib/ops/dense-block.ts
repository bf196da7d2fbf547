// Inference of a dense block -- a dense layer, then batch norm with fixed statistics and ReLU,
// each optional -- as one native call (native/cpu/inference_blocks.h): at small batches the
// separate ops cost more in calls than in arithmetic. The result is bitwise that of the separate
// ops. Nothing is recorded for autograd: the caller (lib/nn/inference-blocks.ts) uses it only
// where no gradient is wanted.
import { checkOutput } from '../autograd/tape';
import { native } from '../native';
import type { InferenceConstants } from '../nn/batchnorm';
import { Tensor } from '../tensor';
import { blockBatchNorm } from './block-batchnorm';

export interface DenseBlock {
  /** (out, in), as kg.nn.Linear stores it. */
  weight: Tensor;
  bias: Tensor | null;
  batchNorm: InferenceConstants | null;
  relu: boolean;
}

/** x (m, in) through the block; the caller has checked that x has `in` features. */
export function denseBlockInference(x: Tensor, b: DenseBlock): Tensor {
  const [m, k] = x.shape;
  const n = b.weight.shape[0];
  const y = Tensor.empty([m, n], x.device);
  const bn = blockBatchNorm(b.batchNorm, n, x.device);
  native.denseBlockInfer(m, n, k, x.storage, b.weight.storage, b.bias ? b.bias.storage : null, ...bn.args, b.relu, y.storage);
  checkOutput('denseBlockInference', y, [x, b.weight, ...(b.bias ? [b.bias] : []), ...bn.tensors]);
  return y;
}
