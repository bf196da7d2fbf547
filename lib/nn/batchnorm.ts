// The batch-norm layer: owns gamma and beta (trained) and its moving statistics (not trained), so
// no global dictionary of statistics is needed, unlike the tutorial's quick version.
import { Device, parseDevice } from '../device';
import { full, ones, zeros } from '../ops/creation';
import { batchNorm } from '../ops/batchnorm';
import { checkPositiveInt } from '../ops/check';
import { describe, readOptions } from '../options';
import { Tensor } from '../tensor';
import { Module } from './module';

export interface BatchNormModuleOptions {
  /** running = momentum * running + (1 - momentum) * batch. Default 0.9 (the tutorial's). */
  momentum?: number;
  /** Default 1e-5. */
  eps?: number;
  /**
   * How the moving statistics start. 'firstBatch' (default, the tutorial's behaviour): the first
   * training batch's mean and variance are copied in, so evaluation right after a few steps is
   * already sensible. 'zeroOne': they start at mean 0 and variance 1 and move from there, as in
   * PyTorch and Keras.
   */
  initRunning?: 'firstBatch' | 'zeroOne';
  device?: Device | string;
}

/**
 * Batch normalization over the channels of (batch, features) or (batch, channels, h, w) input.
 * Training mode (the default, see train()/eval()) normalizes with the batch's statistics and
 * updates the moving ones; inference mode normalizes with the moving statistics and changes nothing.
 */
export class BatchNorm extends Module {
  readonly numFeatures: number;
  readonly momentum: number;
  readonly eps: number;
  readonly initRunning: 'firstBatch' | 'zeroOne';
  /** False until the moving statistics hold data (the first training batch, or a loaded state). */
  private statisticsReady: boolean;

  constructor(numFeatures: number, options?: BatchNormModuleOptions) {
    super();
    const fn = 'kg.nn.BatchNorm';
    const opts = readOptions(options, fn, ['momentum', 'eps', 'initRunning', 'device']);
    this.numFeatures = checkPositiveInt(numFeatures, fn, 'numFeatures');
    this.momentum = opts.momentum ?? 0.9;
    this.eps = opts.eps ?? 1e-5;
    for (const [name, v] of [['momentum', this.momentum], ['eps', this.eps]] as const) {
      if (typeof v !== 'number') throw new TypeError(`${fn}: ${name} must be a number, got ${describe(v)}`);
    }
    if (!(this.momentum >= 0 && this.momentum <= 1)) throw new RangeError(`${fn}: momentum must be in [0, 1], got ${this.momentum}`);
    if (!(this.eps >= 0) || !Number.isFinite(this.eps)) throw new RangeError(`${fn}: eps must be a finite number >= 0, got ${this.eps}`);
    this.initRunning = opts.initRunning ?? 'firstBatch';
    if (this.initRunning !== 'firstBatch' && this.initRunning !== 'zeroOne') {
      throw new TypeError(`${fn}: initRunning must be 'firstBatch' or 'zeroOne', got ${describe(opts.initRunning)}`);
    }
    const device = parseDevice(opts.device, fn);
    this.registerParameter('gamma', ones([numFeatures], { device }));
    this.registerParameter('beta', zeros([numFeatures], { device }));
    this.registerBuffer('runningMean', zeros([numFeatures], { device }));
    this.registerBuffer('runningVar', full([numFeatures], 1, { device }));
    this.statisticsReady = this.initRunning === 'zeroOne';
  }

  get gamma(): Tensor {
    return this.param('gamma');
  }
  get beta(): Tensor {
    return this.param('beta');
  }
  get runningMean(): Tensor {
    return this.buffer('runningMean');
  }
  get runningVar(): Tensor {
    return this.buffer('runningVar');
  }

  forward(x: Tensor): Tensor {
    if (!this.training) {
      return batchNorm(x, this.gamma, this.beta, {
        training: false, runningMean: this.runningMean, runningVar: this.runningVar, eps: this.eps,
      });
    }
    // momentum 0 copies the batch statistics in: that is how the first batch initializes them.
    const momentum = this.statisticsReady ? this.momentum : 0;
    const y = batchNorm(x, this.gamma, this.beta, {
      training: true, runningMean: this.runningMean, runningVar: this.runningVar, momentum, eps: this.eps,
    });
    this.statisticsReady = true;
    return y;
  }

  protected override afterLoadStateDict(): void {
    this.statisticsReady = true;
  }

  override toString(): string {
    return `BatchNorm(${this.numFeatures}, momentum=${this.momentum}, eps=${this.eps})`;
  }
}
