// The batch-renorm layer: a BatchNorm (the same parameters, moving statistics, state-dict names
// and inference) whose training output is corrected towards the moving statistics by r and d.
// Ioffe (2017) starts training with rMax = 1 and dMax = 0 (plain batch norm) and relaxes them;
// both are writable for such a schedule.
import { Device } from '../device';
import { native } from '../native';
import { batchRenorm, checkMomentum, checkRenormLimits } from '../ops/batch-renorm';
import { ones } from '../ops/creation';
import { checkEps } from '../ops/normalize';
import { readOptions } from '../options';
import { Tensor } from '../tensor';
import { BatchNorm } from './batchnorm';

export interface BatchRenormModuleOptions {
  /** r is clipped to [1/rMax, rMax]. Default 3. */
  rMax?: number;
  /** d is clipped to [-dMax, dMax]. Default 5. */
  dMax?: number;
  /** running = momentum * running + (1 - momentum) * batch. Default 0.9, as kg.nn.BatchNorm. */
  momentum?: number;
  /** Default 1e-5. */
  eps?: number;
  device?: Device | string;
}

/**
 * Batch renormalization over the channels of (batch, features) or (batch, channels, h, w) input.
 * The first training batch initializes the moving statistics (and so trains as plain batch
 * norm, r = 1 and d = 0); inference is batch norm with the moving statistics.
 */
export class BatchRenorm extends BatchNorm {
  private limits: { rMax: number; dMax: number };
  private renormReady = false;

  constructor(numFeatures: number, options?: BatchRenormModuleOptions) {
    const fn = 'kg.nn.BatchRenorm';
    const { rMax = 3, dMax = 5, ...rest } = readOptions(options, fn, ['rMax', 'dMax', 'momentum', 'eps', 'device']);
    checkRenormLimits(rMax, dMax, fn);
    checkMomentum(rest.momentum ?? 0.9, fn);
    checkEps(rest.eps ?? 1e-5, fn);
    super(numFeatures, rest);
    this.limits = { rMax, dMax };
  }

  get rMax(): number {
    return this.limits.rMax;
  }
  set rMax(v: number) {
    checkRenormLimits(v, this.limits.dMax, 'kg.nn.BatchRenorm.rMax');
    this.limits.rMax = v;
  }
  get dMax(): number {
    return this.limits.dMax;
  }
  set dMax(v: number) {
    checkRenormLimits(this.limits.rMax, v, 'kg.nn.BatchRenorm.dMax');
    this.limits.dMax = v;
  }

  override forward(x: Tensor): Tensor {
    if (!this.training || this.frozen) return super.forward(x);
    // The first batch copies its statistics in (momentum 0) and is not corrected towards the
    // placeholder ones it replaces.
    const first = !this.renormReady;
    const y = batchRenorm(x, this.gamma, this.beta, {
      training: true,
      runningMean: this.runningMean,
      runningVar: this.runningVar,
      eps: this.eps,
      momentum: first ? 0 : this.momentum,
      rMax: first ? 1 : this.limits.rMax,
      dMax: first ? 0 : this.limits.dMax,
    });
    countBatch(this.numBatchesTracked);
    this.renormReady = true;
    return y;
  }

  protected override afterLoadStateDict(): void {
    super.afterLoadStateDict();
    this.renormReady = true;
  }

  override toString(): string {
    return `BatchRenorm(${this.numFeatures}, rMax=${this.rMax}, dMax=${this.dMax}, momentum=${this.momentum}, eps=${this.eps})`;
  }
}

/** Adds one to the layer's numBatchesTracked, on its device (no host read, so a captured step can hold it). */
function countBatch(count: Tensor): void {
  const one = ones([1], { device: count.device });
  native.axpby(1, one.storage, 1, count.storageForWrite());
  one.dispose();
}
