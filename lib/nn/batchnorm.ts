// The batch-norm layer: owns gamma and beta (trained) and its moving statistics (not trained), so
// no global dictionary of statistics is needed, unlike the tutorial's quick version.
//
// Every convention in use elsewhere is one option here, so a model ported from another framework
// keeps its numbers: the presets name the two common sets, the single options override them.
import { Device, parseDevice } from '../device';
import { full, ones, zeros } from '../ops/creation';
import { batchNorm, batchNormRelu, batchNormReluPool } from '../ops/batchnorm';
import { checkPositiveInt } from '../ops/check';
import { describe, readChoice, readOptions } from '../options';
import { Tensor } from '../tensor';
import { Module } from './module';

export type BatchNormConvention = 'tutorial' | 'pytorch';

export interface BatchNormModuleOptions {
  /**
   * A preset for the options below. 'tutorial' (default): momentum 0.9, biased running variance,
   * statistics initialized by the first batch. 'pytorch': PyTorch's BatchNorm defaults, i.e.
   * momentum 0.9 here (PyTorch's 0.1), unbiased running variance, statistics starting at 0 and 1.
   * Options given next to it override the preset's.
   */
  convention?: BatchNormConvention;
  /** running = momentum * running + (1 - momentum) * batch. 0.9 in both presets. */
  momentum?: number;
  /** Default 1e-5. */
  eps?: number;
  /**
   * How the moving statistics start. 'firstBatch' (the tutorial's): the first training batch's
   * mean and variance are copied in, so evaluation right after a few steps is already sensible.
   * 'zeroOne': they start at mean 0 and variance 1 and move from there, as in PyTorch and Keras.
   */
  initRunning?: 'firstBatch' | 'zeroOne';
  /** 'biased' (the tutorial's) or 'unbiased' (PyTorch's: the batch variance times m / (m - 1)). */
  runningVariance?: 'biased' | 'unbiased';
  /** 'exponential' (the momentum rule) or 'cumulative': the plain average of all batches so far. */
  averaging?: 'exponential' | 'cumulative';
  /**
   * false: no moving statistics at all (none in the state dict); batch statistics in inference
   * mode too. Default true.
   */
  trackRunningStats?: boolean;
  /** false: no gamma and beta (y is the normalized x). Default true. */
  affine?: boolean;
  device?: Device | string;
}

const PRESETS: Record<BatchNormConvention, { initRunning: 'firstBatch' | 'zeroOne'; runningVariance: 'biased' | 'unbiased' }> = {
  tutorial: { initRunning: 'firstBatch', runningVariance: 'biased' },
  pytorch: { initRunning: 'zeroOne', runningVariance: 'unbiased' },
};

/** What batch norm's inference form reads: y = (x - runningMean) / sqrt(runningVar + eps) * gamma + beta. */
export interface InferenceConstants {
  gamma: Tensor | null;
  beta: Tensor | null;
  runningMean: Tensor;
  runningVar: Tensor;
  eps: number;
}

/**
 * Batch normalization over the channels of (batch, features) or (batch, channels, h, w) input.
 * Training mode (the default, see train()/eval()) normalizes with the batch's statistics and
 * updates the moving ones; inference mode normalizes with the moving statistics and changes
 * nothing. A frozen layer (freeze()) behaves as in inference mode while gamma and beta train.
 */
export class BatchNorm extends Module {
  readonly numFeatures: number;
  readonly convention: BatchNormConvention;
  readonly momentum: number;
  readonly eps: number;
  readonly initRunning: 'firstBatch' | 'zeroOne';
  readonly runningVariance: 'biased' | 'unbiased';
  readonly averaging: 'exponential' | 'cumulative';
  readonly trackRunningStats: boolean;
  readonly affine: boolean;
  /** False until the moving statistics hold data (the first training batch, or a loaded state). */
  private statisticsReady: boolean;
  private statisticsFrozen = false;

  constructor(numFeatures: number, options?: BatchNormModuleOptions) {
    super();
    const fn = 'kg.nn.BatchNorm';
    const opts = readOptions(options, fn, [
      'convention', 'momentum', 'eps', 'initRunning', 'runningVariance', 'averaging', 'trackRunningStats', 'affine', 'device',
    ]);
    this.numFeatures = checkPositiveInt(numFeatures, fn, 'numFeatures');
    this.convention = readChoice(opts.convention, fn, 'convention', ['tutorial', 'pytorch'], 'tutorial');
    const preset = PRESETS[this.convention];
    this.momentum = opts.momentum ?? 0.9;
    this.eps = opts.eps ?? 1e-5;
    for (const [name, v] of [['momentum', this.momentum], ['eps', this.eps]] as const) {
      if (typeof v !== 'number') throw new TypeError(`${fn}: ${name} must be a number, got ${describe(v)}`);
    }
    if (!(this.momentum >= 0 && this.momentum <= 1)) throw new RangeError(`${fn}: momentum must be in [0, 1], got ${this.momentum}`);
    if (!(this.eps >= 0) || !Number.isFinite(this.eps)) throw new RangeError(`${fn}: eps must be a finite number >= 0, got ${this.eps}`);
    this.initRunning = readChoice(opts.initRunning, fn, 'initRunning', ['firstBatch', 'zeroOne'], preset.initRunning);
    this.runningVariance = readChoice(opts.runningVariance, fn, 'runningVariance', ['biased', 'unbiased'], preset.runningVariance);
    this.averaging = readChoice(opts.averaging, fn, 'averaging', ['exponential', 'cumulative'], 'exponential');
    if (this.averaging === 'cumulative' && opts.momentum !== undefined) {
      throw new TypeError(`${fn}: momentum has no meaning with averaging 'cumulative' (batch t enters with weight 1/t); leave it out`);
    }
    this.trackRunningStats = readFlag(opts.trackRunningStats, fn, 'trackRunningStats');
    this.affine = readFlag(opts.affine, fn, 'affine');
    const device = parseDevice(opts.device, fn);
    if (this.affine) {
      this.registerParameter('gamma', ones([numFeatures], { device }));
      this.registerParameter('beta', zeros([numFeatures], { device }));
    }
    if (this.trackRunningStats) {
      this.registerBuffer('runningMean', zeros([numFeatures], { device }));
      this.registerBuffer('runningVar', full([numFeatures], 1, { device }));
      this.registerBuffer('numBatchesTracked', zeros([], { device }));
    }
    this.statisticsReady = this.initRunning === 'zeroOne';
  }

  get gamma(): Tensor {
    this.expectAffine('gamma');
    return this.param('gamma');
  }
  get beta(): Tensor {
    this.expectAffine('beta');
    return this.param('beta');
  }
  get runningMean(): Tensor {
    this.expectStatistics('runningMean');
    return this.buffer('runningMean');
  }
  get runningVar(): Tensor {
    this.expectStatistics('runningVar');
    return this.buffer('runningVar');
  }
  /** How many training batches have updated the moving statistics (a scalar tensor, saved). */
  get numBatchesTracked(): Tensor {
    this.expectStatistics('numBatchesTracked');
    return this.buffer('numBatchesTracked');
  }
  /** True after freeze(), until unfreeze(). */
  get frozen(): boolean {
    return this.statisticsFrozen;
  }

  /**
   * Normalize with the moving statistics and stop updating them, in training mode too, while
   * gamma and beta go on training (the usual way to fine-tune with small batches). Unlike
   * turning off gradients, this also stops the statistics from moving. Returns this.
   */
  freeze(): this {
    if (!this.trackRunningStats) {
      throw new Error(`${this}: freeze() needs moving statistics, and this layer has none (trackRunningStats: false)`);
    }
    this.statisticsFrozen = true;
    return this;
  }
  /** Undoes freeze(): training mode normalizes with batch statistics and updates them again. */
  unfreeze(): this {
    this.statisticsFrozen = false;
    return this;
  }

  forward(x: Tensor): Tensor {
    return this.normalize(x, batchNorm);
  }

  /**
   * relu(this.forward(x)) as one fused op (one kernel each way, equal results); Sequential uses it
   * where a BatchNorm is followed by a ReLU.
   */
  forwardRelu(x: Tensor): Tensor {
    return this.normalize(x, batchNormRelu);
  }

  /**
   * avgPool2d(relu(this.forward(x)), { kernelSize }) with non-overlapping windows as one fused op
   * (training writes only the pooled output; equal results); Sequential uses it where a BatchNorm
   * is followed by a ReLU and such an AvgPool2d.
   */
  forwardReluPool(x: Tensor, kernelSize: readonly [number, number]): Tensor {
    return this.normalize(x, (input, gamma, beta, options) => batchNormReluPool(input, gamma, beta, options, kernelSize));
  }

  /**
   * @internal The constants of the inference form when this layer, as it is now, normalizes with
   * its moving statistics (inference mode, or frozen); null when it uses the batch's. For fused
   * inference blocks (lib/nn/inference-blocks.ts).
   */
  inferenceConstants(): InferenceConstants | null {
    if (!this.trackRunningStats || (this.training && !this.statisticsFrozen)) return null;
    return {
      gamma: this.affine ? this.gamma : null,
      beta: this.affine ? this.beta : null,
      runningMean: this.runningMean,
      runningVar: this.runningVar,
      eps: this.eps,
    };
  }

  private normalize(x: Tensor, op: typeof batchNorm): Tensor {
    const gamma = this.affine ? this.gamma : null;
    const beta = this.affine ? this.beta : null;
    if (!this.trackRunningStats) return op(x, gamma, beta, { training: true, eps: this.eps });
    const stats = { runningMean: this.runningMean, runningVar: this.runningVar, eps: this.eps };
    if (!this.training || this.statisticsFrozen) return op(x, gamma, beta, { training: false, ...stats });
    const y = op(x, gamma, beta, {
      training: true,
      ...stats,
      runningVariance: this.runningVariance,
      numBatchesTracked: this.numBatchesTracked,
      // momentum 0 copies the batch statistics in: that is how the first batch initializes them.
      ...(this.averaging === 'cumulative' ? { averaging: 'cumulative' } : { momentum: this.statisticsReady ? this.momentum : 0 }),
    });
    this.statisticsReady = true;
    return y;
  }

  protected override afterLoadStateDict(): void {
    this.statisticsReady = true;
  }

  protected override optionalStateKeys(): readonly string[] {
    return this.trackRunningStats ? ['numBatchesTracked'] : [];
  }

  protected override setStatisticsFrozen(frozen: boolean): void {
    if (frozen) this.freeze();
    else this.unfreeze();
  }

  override toString(): string {
    const extra = [
      this.convention !== 'tutorial' ? `convention=${this.convention}` : '',
      this.averaging === 'cumulative' ? 'averaging=cumulative' : `momentum=${this.momentum}`,
      `eps=${this.eps}`,
      this.runningVariance !== PRESETS[this.convention].runningVariance ? `runningVariance=${this.runningVariance}` : '',
      this.initRunning !== PRESETS[this.convention].initRunning ? `initRunning=${this.initRunning}` : '',
      this.trackRunningStats ? '' : 'trackRunningStats=false',
      this.affine ? '' : 'affine=false',
    ];
    return `BatchNorm(${[this.numFeatures, ...extra.filter((e) => e)].join(', ')})`;
  }

  private expectAffine(name: string): void {
    if (!this.affine) throw new Error(`${this}: has no ${name} (affine: false)`);
  }
  private expectStatistics(name: string): void {
    if (!this.trackRunningStats) throw new Error(`${this}: has no ${name} (trackRunningStats: false)`);
  }
}

function readFlag(v: boolean | undefined, fn: string, name: string): boolean {
  if (v === undefined) return true;
  if (typeof v !== 'boolean') throw new TypeError(`${fn}: ${name} must be true or false, got ${describe(v)}`);
  return v;
}
