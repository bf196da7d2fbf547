// Inference of a chain of blocks -- convolution blocks and dense blocks, as lib/ops/conv-block.ts and
// lib/ops/dense-block.ts describe them, a dense block reading each sample's values as one row --
// as one native call (native/cpu/inference_blocks.h). At batch 1 each block's call, its output
// tensor and the checks around it cost about as much as its arithmetic; the chain pays them once,
// and its result is bitwise that of the blocks called one by one. Nothing is recorded for
// autograd: the caller (lib/nn/inference-blocks.ts) uses it only where no gradient is wanted.
import { checkOutput } from '../autograd/tape';
import { native, Storage } from '../native';
import { Tensor } from '../tensor';
import { blockBatchNorm } from './block-batchnorm';
import type { ConvBlock } from './conv-block';
import type { DenseBlock } from './dense-block';

export type ChainStep = { conv: ConvBlock } | { dense: DenseBlock };

/** The native call's arguments for a chain of steps, for a batch of any size (spec[0] is set per call). */
export interface PreparedChain {
  spec: Float64Array;
  weights: Storage[];
  /** The layers' tensors the weights come from, for the anomaly check of the output. */
  tensors: Tensor[];
  /** The output's shape without the batch dimension. */
  outPerSample: number[];
  /** False when a weight was made for this call (a batch norm without affine parameters gets gamma = 1, beta = 0). */
  reusable: boolean;
}

/** The arguments for x's per-sample shape [c, h, w]; the caller has checked that every step fits and gives the output's per-sample shape. */
export function prepareChain(steps: readonly ChainStep[], input: readonly number[], outPerSample: number[], device: Tensor['device']): PreparedChain {
  const spec: number[] = [0, ...input, steps.length];
  const weights: Storage[] = [];
  const tensors: Tensor[] = [];
  let reusable = true;
  for (const step of steps) {
    const block = 'conv' in step ? step.conv : step.dense;
    const channels = block.weight.shape[0];
    const bn = blockBatchNorm(block.batchNorm, channels, device);
    if (block.batchNorm && (!block.batchNorm.gamma || !block.batchNorm.beta)) reusable = false;
    const flags = [block.bias ? 1 : 0, block.batchNorm ? 1 : 0, bn.args[4], block.relu ? 1 : 0];
    if ('conv' in step) {
      const b = step.conv;
      const [, , kh, kw] = b.weight.shape;
      spec.push(0, channels, kh, kw, ...b.stride, ...b.padding, b.groups, ...flags);
      spec.push(...(b.pool ? [1, ...b.pool.kernelSize, ...b.pool.stride] : [0, 0, 0, 0, 0]));
    } else {
      spec.push(1, channels, ...flags);
    }
    for (const t of [block.weight, block.bias, ...bn.tensors]) {
      if (!t) continue;
      weights.push(t.storage);
      tensors.push(t);
    }
  }
  return { spec: Float64Array.from(spec), weights, tensors, outPerSample, reusable };
}

/** x (n, c, h, w) through a prepared chain. */
export function runPreparedChain(x: Tensor, chain: PreparedChain): Tensor {
  chain.spec[0] = x.shape[0];
  const y = Tensor.empty([x.shape[0], ...chain.outPerSample], x.device);
  native.inferenceChain(chain.spec, x.storage, y.storage, ...chain.weights);
  checkOutput('inferenceChain', y, [x, ...chain.tensors]);
  return y;
}
