// The batch norm part of an inference block's native call (convBlockInfer, denseBlockInfer):
// gamma, beta, mean, var (all four, or all null without a batch norm) and eps, with a layer
// without affine parameters given gamma = 1 and beta = 0 as batchNorm does.
import type { Storage } from '../native';
import type { InferenceConstants } from '../nn/batchnorm';
import type { Tensor } from '../tensor';
import type { Device } from '../device';
import { ones, zeros } from './creation';

export interface BlockBatchNorm {
  /** gamma, beta, mean, var, eps: the native call's arguments. */
  args: [Storage | null, Storage | null, Storage | null, Storage | null, number];
  /** The tensors they come from, for the anomaly check of the block's output. */
  tensors: Tensor[];
}

export function blockBatchNorm(bn: InferenceConstants | null, channels: number, device: Device): BlockBatchNorm {
  if (!bn) return { args: [null, null, null, null, 0], tensors: [] };
  const gamma = bn.gamma ?? ones([channels], { device });
  const beta = bn.beta ?? zeros([channels], { device });
  return {
    args: [gamma.storage, beta.storage, bn.runningMean.storage, bn.runningVar.storage, bn.eps],
    tensors: [gamma, beta, bn.runningMean, bn.runningVar],
  };
}
