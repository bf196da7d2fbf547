// Global average pooling layer (no parameters).
import { pair, Pair } from '../ops/conv';
import { adaptiveAvgPool2d } from '../ops/pool';
import type { Tensor } from '../tensor';
import { Module } from './module';

/**
 * Average pooling to a fixed output size; only 1 (global average pooling) is supported:
 * (n, c, h, w) -> (n, c, 1, 1), as PyTorch's nn.AdaptiveAvgPool2d(1).
 */
export class AdaptiveAvgPool2d extends Module {
  readonly outputSize: [number, number];

  constructor(outputSize: Pair = 1) {
    super();
    const fn = 'kg.nn.AdaptiveAvgPool2d';
    this.outputSize = pair(outputSize, 1, fn, 'outputSize', 1);
    if (this.outputSize[0] !== 1 || this.outputSize[1] !== 1) {
      throw new RangeError(`${fn}: only outputSize 1 (global average pooling) is supported, got [${this.outputSize.join(', ')}]`);
    }
  }

  forward(x: Tensor): Tensor {
    return adaptiveAvgPool2d(x, this.outputSize);
  }

  override toString(): string {
    return 'AdaptiveAvgPool2d(1)';
  }
}
