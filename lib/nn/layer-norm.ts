// The layer-norm layer: gamma and beta of the normalized shape, no running statistics.
import { Device, parseDevice } from '../device';
import { ones, zeros } from '../ops/creation';
import { layerNorm, readNormalizedShape } from '../ops/layer-norm';
import { checkEps } from '../ops/normalize';
import { readOptions } from '../options';
import { Tensor } from '../tensor';
import { Module } from './module';

export interface LayerNormModuleOptions {
  /** Default 1e-5. */
  eps?: number;
  device?: Device | string;
}

/** Layer normalization over the trailing dimensions `normalizedShape` of the input. */
export class LayerNorm extends Module {
  readonly normalizedShape: readonly number[];
  readonly eps: number;

  constructor(normalizedShape: number | readonly number[], options?: LayerNormModuleOptions) {
    super();
    const fn = 'kg.nn.LayerNorm';
    const opts = readOptions(options, fn, ['eps', 'device']);
    this.normalizedShape = readNormalizedShape(normalizedShape, fn);
    this.eps = checkEps(opts.eps ?? 1e-5, fn);
    const device = parseDevice(opts.device, fn);
    this.registerParameter('gamma', ones([...this.normalizedShape], { device }));
    this.registerParameter('beta', zeros([...this.normalizedShape], { device }));
  }

  get gamma(): Tensor {
    return this.param('gamma');
  }
  get beta(): Tensor {
    return this.param('beta');
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.normalizedShape, this.gamma, this.beta, { eps: this.eps });
  }

  override toString(): string {
    return `LayerNorm([${this.normalizedShape.join(', ')}], eps=${this.eps})`;
  }
}
