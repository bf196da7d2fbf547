// 2-D convolution layer, PyTorch's parameter names and layouts: weight (out, in, kh, kw), bias (out).
import { conv2d } from '../ops/conv';
import type { Tensor } from '../tensor';
import { InitOptions, uniformFanIn } from './init';
import { Module } from './module';

type Pair = number | [number, number];

export interface Conv2dLayerOptions extends InitOptions {
  stride?: Pair;
  padding?: Pair;
  /** Learn an additive bias per output channel (default true). */
  bias?: boolean;
}

function pair(v: Pair, name: string): [number, number] {
  const p: [number, number] = typeof v === 'number' ? [v, v] : v;
  if (!Array.isArray(p) || p.length !== 2 || !p.every((d) => Number.isInteger(d) && d >= 1)) {
    throw new TypeError(`Conv2d: ${name} must be a positive integer or [h, w], got ${JSON.stringify(v)}`);
  }
  return p;
}

/**
 * Cross-correlation of (n, inChannels, h, w) input with `outChannels` filters of size kernelSize.
 * Initialized like PyTorch: U(-1/sqrt(fanIn), 1/sqrt(fanIn)) with fanIn = inChannels * kh * kw.
 */
export class Conv2d extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: [number, number];
  readonly stride: Pair;
  readonly padding: Pair;

  constructor(inChannels: number, outChannels: number, kernelSize: Pair, options: Conv2dLayerOptions = {}) {
    super();
    for (const [name, v] of [['inChannels', inChannels], ['outChannels', outChannels]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new TypeError(`Conv2d: ${name} must be a positive integer, got ${v}`);
    }
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.kernelSize = pair(kernelSize, 'kernelSize');
    this.stride = options.stride ?? 1;
    this.padding = options.padding ?? 0;
    const [kh, kw] = this.kernelSize;
    const fanIn = inChannels * kh * kw;
    this.registerParameter('weight', uniformFanIn([outChannels, inChannels, kh, kw], fanIn, options.device, options.seed));
    if (options.bias ?? true) {
      const biasSeed = options.seed === undefined ? undefined : options.seed + 1;
      this.registerParameter('bias', uniformFanIn([outChannels], fanIn, options.device, biasSeed));
    }
  }

  /** (outChannels, inChannels, kh, kw). */
  get weight(): Tensor {
    return this.param('weight');
  }

  /** (outChannels), or null when built with `bias: false`. */
  get bias(): Tensor | null {
    return this.paramOrNull('bias');
  }

  forward(x: Tensor): Tensor {
    return conv2d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding });
  }

  override toString(): string {
    return `Conv2d(${this.inChannels}, ${this.outChannels}, kernelSize=[${this.kernelSize.join(', ')}])`;
  }
}
