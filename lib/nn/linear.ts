// Fully connected layer: y = x weightᵀ + bias, PyTorch's layout: weight (out, in), bias (out).
import { linear } from '../ops/matmul';
import type { Tensor } from '../tensor';
import { checkPositiveInt } from '../ops/check';
import { checkBoolean, InitOptions, readInitOptions, uniformFanIn } from './init';
import { Module } from './module';

export interface LinearOptions extends InitOptions {
  /** Learn an additive bias (default true). */
  bias?: boolean;
}

/** Dense layer on (n, inFeatures) input. Initialized like PyTorch: U(-1/sqrt(in), 1/sqrt(in)). */
export class Linear extends Module {
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    options?: LinearOptions,
  ) {
    super();
    const fn = 'kg.nn.Linear';
    const opts = readInitOptions(options, fn, ['bias']);
    checkPositiveInt(inFeatures, fn, 'inFeatures');
    checkPositiveInt(outFeatures, fn, 'outFeatures');
    const bias = checkBoolean(opts.bias, true, fn, 'bias');
    this.registerParameter('weight', uniformFanIn([outFeatures, inFeatures], inFeatures, opts.device, opts.seed));
    if (bias) {
      const biasSeed = opts.seed === undefined ? undefined : opts.seed + 1;
      this.registerParameter('bias', uniformFanIn([outFeatures], inFeatures, opts.device, biasSeed));
    }
  }

  /** (outFeatures, inFeatures). */
  get weight(): Tensor {
    return this.param('weight');
  }

  /** (outFeatures), or null when built with `bias: false`. */
  get bias(): Tensor | null {
    return this.paramOrNull('bias');
  }

  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }

  override toString(): string {
    return `Linear(${this.inFeatures}, ${this.outFeatures})`;
  }
}
