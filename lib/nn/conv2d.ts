// 2-D convolution layer, PyTorch's parameter names and layouts: weight (out, in, kh, kw), bias (out).
import { conv2d } from '../ops/conv';
import type { Tensor } from '../tensor';
import { checkPositiveInt } from '../ops/check';
import { checkBoolean, InitOptions, readInitOptions, uniformFanIn } from './init';
import { describeItems } from '../options';
import { Module } from './module';

type Pair = number | [number, number];

export interface Conv2dLayerOptions extends InitOptions {
  stride?: Pair;
  padding?: Pair;
  /** Channel groups (default 1); must divide inChannels and outChannels. groups = inChannels is depthwise. */
  groups?: number;
  /** Learn an additive bias per output channel (default true). */
  bias?: boolean;
}

function pair(v: Pair, name: string, min: number): [number, number] {
  const p: [number, number] = typeof v === 'number' ? [v, v] : v;
  if (!Array.isArray(p) || p.length !== 2 || !p.every((d) => Number.isSafeInteger(d) && d >= min)) {
    throw new TypeError(`kg.nn.Conv2d: ${name} must be an integer >= ${min} or a pair [h, w] of them, got ${describeItems(v)}`);
  }
  return [p[0], p[1]];
}

/**
 * Cross-correlation of (n, inChannels, h, w) input with `outChannels` filters of size kernelSize,
 * each filter seeing the inChannels / groups channels of its group.
 * Initialized like PyTorch: U(-1/sqrt(fanIn), 1/sqrt(fanIn)) with fanIn = inChannels / groups * kh * kw.
 */
export class Conv2d extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: [number, number];
  readonly stride: Pair;
  readonly padding: Pair;
  readonly groups: number;

  constructor(inChannels: number, outChannels: number, kernelSize: Pair, options?: Conv2dLayerOptions) {
    super();
    const fn = 'kg.nn.Conv2d';
    const opts = readInitOptions(options, fn, ['stride', 'padding', 'groups', 'bias']);
    this.inChannels = checkPositiveInt(inChannels, fn, 'inChannels');
    this.outChannels = checkPositiveInt(outChannels, fn, 'outChannels');
    this.kernelSize = pair(kernelSize, 'kernelSize', 1);
    this.stride = opts.stride ?? 1;
    this.padding = opts.padding ?? 0;
    pair(this.stride, 'stride', 1);
    pair(this.padding, 'padding', 0);
    this.groups = checkPositiveInt(opts.groups ?? 1, fn, 'groups');
    if (inChannels % this.groups !== 0 || outChannels % this.groups !== 0) {
      throw new RangeError(`${fn}: groups (${this.groups}) must divide inChannels (${inChannels}) and outChannels (${outChannels})`);
    }
    const bias = checkBoolean(opts.bias, true, fn, 'bias');
    const [kh, kw] = this.kernelSize;
    const perGroup = inChannels / this.groups;
    const fanIn = perGroup * kh * kw;
    this.registerParameter('weight', uniformFanIn([outChannels, perGroup, kh, kw], fanIn, opts.device, opts.seed));
    if (bias) {
      const biasSeed = opts.seed === undefined ? undefined : opts.seed + 1;
      this.registerParameter('bias', uniformFanIn([outChannels], fanIn, opts.device, biasSeed));
    }
  }

  /** (outChannels, inChannels / groups, kh, kw). */
  get weight(): Tensor {
    return this.param('weight');
  }

  /** (outChannels), or null when built with `bias: false`. */
  get bias(): Tensor | null {
    return this.paramOrNull('bias');
  }

  forward(x: Tensor): Tensor {
    return conv2d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding, groups: this.groups });
  }

  override toString(): string {
    const groups = this.groups === 1 ? '' : `, groups=${this.groups}`;
    return `Conv2d(${this.inChannels}, ${this.outChannels}, kernelSize=[${this.kernelSize.join(', ')}]${groups})`;
  }
}
