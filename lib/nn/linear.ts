// Fully connected layer: y = x weightᵀ + bias, PyTorch's layout: weight (out, in), bias (out).
import { linear } from '../ops/matmul';
import type { Tensor } from '../tensor';
import { InitOptions, uniformFanIn } from './init';
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
    options: LinearOptions = {},
  ) {
    super();
    for (const [name, v] of [['inFeatures', inFeatures], ['outFeatures', outFeatures]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new TypeError(`Linear: ${name} must be a positive integer, got ${v}`);
    }
    this.registerParameter('weight', uniformFanIn([outFeatures, inFeatures], inFeatures, options.device, options.seed));
    if (options.bias ?? true) {
      const biasSeed = options.seed === undefined ? undefined : options.seed + 1;
      this.registerParameter('bias', uniformFanIn([outFeatures], inFeatures, options.device, biasSeed));
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
