// The group-norm layer: gamma and beta per channel, no running statistics (each sample is
// normalized by its own statistics, in training and inference alike).
import { Device, parseDevice } from '../device';
import { ones, zeros } from '../ops/creation';
import { checkPositiveInt } from '../ops/check';
import { groupNorm } from '../ops/group-norm';
import { checkEps } from '../ops/normalize';
import { readOptions } from '../options';
import { Tensor } from '../tensor';
import { Module } from './module';

export interface GroupNormModuleOptions {
  /** Default 1e-5. */
  eps?: number;
  device?: Device | string;
}

/** Group normalization of (batch, channels, ...) input; groups must divide channels. */
export class GroupNorm extends Module {
  readonly groups: number;
  readonly channels: number;
  readonly eps: number;

  constructor(groups: number, channels: number, options?: GroupNormModuleOptions) {
    super();
    const fn = 'kg.nn.GroupNorm';
    const opts = readOptions(options, fn, ['eps', 'device']);
    this.groups = checkPositiveInt(groups, fn, 'groups');
    this.channels = checkPositiveInt(channels, fn, 'channels');
    if (channels % groups !== 0) throw new RangeError(`${fn}: groups (${groups}) must divide channels (${channels})`);
    this.eps = checkEps(opts.eps ?? 1e-5, fn);
    const device = parseDevice(opts.device, fn);
    this.registerParameter('gamma', ones([channels], { device }));
    this.registerParameter('beta', zeros([channels], { device }));
  }

  get gamma(): Tensor {
    return this.param('gamma');
  }
  get beta(): Tensor {
    return this.param('beta');
  }

  forward(x: Tensor): Tensor {
    return groupNorm(x, this.groups, this.gamma, this.beta, { eps: this.eps });
  }

  override toString(): string {
    return `GroupNorm(${this.groups}, ${this.channels}, eps=${this.eps})`;
  }
}
