// Batch renormalization (Ioffe, 2017): batch norm whose training output is corrected towards
// what the running statistics would give, so small or non-i.i.d. batches train the model that
// inference runs. r = clip(sigma_batch / sigma, 1/rMax, rMax) and d = clip((mean_batch - mean) /
// sigma, -dMax, dMax), sigma = sqrt(runningVar + eps), are constants for the gradient.
import { native } from '../native';
import { readOptions } from '../options';
import { formatShape } from '../shape';
import { Tensor } from '../tensor';
import { batchNorm } from './batchnorm';
import { checkFinite, checkNdim, checkTensor } from './check';
import { checkEps, checkParameter, normalize } from './normalize';

export interface BatchRenormOptions {
  /** Normalize with the corrected batch statistics (true) or with the running ones (false). */
  training: boolean;
  /** Per-channel moving statistics: read in both modes, updated in place in training. */
  runningMean: Tensor;
  runningVar: Tensor;
  /** running = momentum * running + (1 - momentum) * batch (biased variance). Default 0.9. */
  momentum?: number;
  /** Added to the variances before the square root. Default 1e-5. */
  eps?: number;
  /** r is clipped to [1/rMax, rMax], rMax >= 1. Default 3. */
  rMax?: number;
  /** d is clipped to [-dMax, dMax], dMax >= 0. Default 5. */
  dMax?: number;
}

export function checkMomentum(momentum: unknown, op: string): number {
  const v = checkFinite(momentum, op, 'momentum');
  if (v < 0 || v > 1) throw new RangeError(`${op}: momentum must be in [0, 1], got ${v}`);
  return v;
}

export function checkRenormLimits(rMax: unknown, dMax: unknown, op: string): void {
  if (checkFinite(rMax, op, 'rMax') < 1) throw new RangeError(`${op}: rMax must be >= 1, got ${rMax}`);
  if (checkFinite(dMax, op, 'dMax') < 0) throw new RangeError(`${op}: dMax must be >= 0, got ${dMax}`);
}

/**
 * y = gamma * ((x - mean_batch) / sigma_batch * r + d) + beta per channel of (batch, features)
 * or (batch, channels, h, w) input in training; batch norm with the running statistics in inference.
 * With rMax = 1 and dMax = 0 training is exactly batch norm.
 */
export function batchRenorm(x: Tensor, gamma: Tensor, beta: Tensor, options: BatchRenormOptions): Tensor {
  const op = 'batchRenorm';
  checkTensor(x, op, 'x');
  const opts = readOptions(options, op, ['training', 'runningMean', 'runningVar', 'momentum', 'eps', 'rMax', 'dMax']);
  if (typeof opts.training !== 'boolean') throw new TypeError(`${op}: options.training must be true or false`);
  checkNdim(x, [2, 4], op, 'x', 'dense (batch, features) or 2-D convolution (batch, channels, height, width) input');
  const [n, c] = x.shape;
  const l = x.ndim === 4 ? x.shape[2] * x.shape[3] : 1;
  for (const [name, t] of [['gamma', gamma], ['beta', beta], ['runningMean', opts.runningMean], ['runningVar', opts.runningVar]] as const) {
    checkParameter(t, [c], x, op, name, 'one per channel');
  }
  const eps = checkEps(opts.eps ?? 1e-5, op);
  const momentum = checkMomentum(opts.momentum ?? 0.9, op);
  const rMax = opts.rMax ?? 3;
  const dMax = opts.dMax ?? 5;
  checkRenormLimits(rMax, dMax, op);
  const { runningMean, runningVar } = opts;
  if (!opts.training) return batchNorm(x, gamma, beta, { training: false, runningMean, runningVar, eps });
  if (n * l < 2) {
    throw new RangeError(`${op}: training needs more than one value per channel to compute a variance, got x ${formatShape(x.shape)}; use a larger batch, or inference mode`);
  }
  return normalize({
    op, x, gamma, beta, eps,
    shape: [n, c, l, c, l],
    group: (g) => `channel ${g}`,
    renorm: {
      runningMean, runningVar, rMax, dMax,
      update: (batchMean, batchVar) => {
        native.axpby(1 - momentum, batchMean.storage, momentum, runningMean.storageForWrite());
        native.axpby(1 - momentum, batchVar.storage, momentum, runningVar.storageForWrite());
      },
    },
  });
}
