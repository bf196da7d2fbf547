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

/** x (n, c, h, w) through the steps; the caller has checked that every step fits, and gives the output's shape. */
export function inferenceChain(x: Tensor, steps: readonly ChainStep[], outShape: readonly number[]): Tensor {
  const [n, c, h, w] = x.shape;
  const spec: number[] = [n, c, h, w, steps.length];
  const weights: Storage[] = [];
  const inputs: Tensor[] = [x];
  for (const step of steps) {
    const block = 'conv' in step ? step.conv : step.dense;
    const channels = block.weight.shape[0];
    const bn = blockBatchNorm(block.batchNorm, channels, x.device);
    const flags = [block.bias ? 1 : 0, block.batchNorm ? 1 : 0, bn.args[4], block.relu ? 1 : 0];
    if ('conv' in step) {
      const b = step.conv;
      const [, , kh, kw] = b.weight.shape;
      spec.push(0, channels, kh, kw, ...b.stride, ...b.padding, b.groups, ...flags);
      spec.push(...(b.pool ? [1, ...b.pool.kernelSize, ...b.pool.stride] : [0, 0, 0, 0, 0]));
    } else {
      spec.push(1, channels, ...flags);
    }
    weights.push(block.weight.storage);
    inputs.push(block.weight);
    if (block.bias) {
      weights.push(block.bias.storage);
      inputs.push(block.bias);
    }
    for (const s of bn.args.slice(0, 4) as Storage[]) if (s) weights.push(s);
    inputs.push(...bn.tensors);
  }
  const y = Tensor.empty(outShape, x.device);
  native.inferenceChain(Float64Array.from(spec), x.storage, y.storage, ...weights);
  checkOutput('inferenceChain', y, inputs);
  return y;
}
