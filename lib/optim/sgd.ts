// Stochastic gradient descent with optional momentum (heavy ball or Nesterov) and L2 weight decay,
// on the fused native kernel (one pass over each parameter, on its device):
//   g' = grad + weightDecay * param;  velocity = momentum * velocity + g';
//   param -= lr * velocity, or with nesterov param -= lr * (g' + momentum * velocity)
// (PyTorch's SGD with dampening 0; without momentum simply param -= lr * g').
// On the GPU all parameters are updated by one launch that reads the rate from device memory, so
// a captured step (kg.train.compileStep) follows a rate changed between steps.
import { native } from '../native';
import { readOptions } from '../options';
import type { Device } from '../device';
import { full, zeros } from '../ops/creation';
import type { Tensor } from '../tensor';
import { checkNumber, Optimizer, OptimizerOptions } from './optimizer';

export interface SGDOptions extends OptimizerOptions {
  /** Learning rate (> 0). */
  lr: number;
  /** Momentum factor in [0, 1) (default 0: plain SGD, no velocity buffers). */
  momentum?: number;
  /** Nesterov momentum (default false); needs momentum > 0. */
  nesterov?: boolean;
}

interface SGDState {
  velocity: Tensor;
}

export class SGD extends Optimizer<SGDState> {
  readonly momentum: number;
  readonly nesterov: boolean;
  readonly weightDecay: number;

  constructor(params: Iterable<Tensor>, options: SGDOptions) {
    const fn = 'kg.optim.SGD';
    if (options === undefined) throw new TypeError(`${fn}: options { lr } are required`);
    const opts = readOptions(options, fn, ['lr', 'momentum', 'nesterov', 'weightDecay', 'noDecay']);
    super(fn, params, opts.lr, opts.noDecay);
    this.momentum = checkNumber(opts.momentum ?? 0, fn, 'momentum', (x) => x >= 0 && x < 1, 'in [0, 1)');
    this.weightDecay = checkNumber(opts.weightDecay ?? 0, fn, 'weightDecay', (x) => x >= 0, '>= 0');
    if (opts.nesterov !== undefined && typeof opts.nesterov !== 'boolean') {
      throw new TypeError(`${fn}: nesterov must be true or false, got ${String(opts.nesterov)}`);
    }
    this.nesterov = opts.nesterov ?? false;
    if (this.nesterov && this.momentum === 0) throw new RangeError(`${fn}: nesterov needs a momentum > 0 (it is 0)`);
  }

  /** The learning rate on each device that reads it there, with the value it holds. */
  private readonly deviceLr = new Map<Device, { rate: Tensor; value: number }>();

  override get capturable(): boolean {
    return true;
  }

  override syncDeviceState(): void {
    for (const device of this.deviceLr.keys()) this.lrOn(device);
  }

  override dispose(): void {
    for (const { rate } of this.deviceLr.values()) rate.dispose();
    this.deviceLr.clear();
    super.dispose();
  }

  /** One native call per device for all the parameters on it (on the GPU, one launch per 64). */
  protected override updateAll(pairs: ReadonlyArray<[Tensor, Tensor]>): void {
    for (const device of new Set(pairs.map(([p]) => p.device))) {
      const on = pairs.filter(([p]) => p.device === device);
      native.sgdUpdateMany(
        this.momentum,
        this.nesterov,
        this.lrOn(device).storage,
        on.map(([p]) => p.storageForWrite()),
        on.map(([, g]) => g.storage),
        this.momentum > 0 ? on.map(([p]) => this.velocityOf(p).storageForWrite()) : null,
        on.map(([p]) => this.decayOf(p, this.weightDecay)),
      );
    }
  }

  protected update(p: Tensor, g: Tensor): void {
    this.updateAll([[p, g]]);
  }

  private velocityOf(p: Tensor): Tensor {
    return this.stateOf(p, () => ({ velocity: zeros(p.shape, { device: p.device }).keep() })).velocity;
  }

  /** The one-element tensor on `device` that holds the current rate (written when it changed). */
  private lrOn(device: Device): Tensor {
    const entry = this.deviceLr.get(device);
    if (entry === undefined) {
      const rate = full([1], this.lr, { device }).keep();
      this.deviceLr.set(device, { rate, value: this.lr });
      return rate;
    }
    if (entry.value !== this.lr) {
      entry.rate.storageForWrite().write(Float32Array.of(this.lr));
      entry.value = this.lr;
    }
    return entry.rate;
  }
}
