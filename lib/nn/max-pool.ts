// Max pooling layer (no parameters).
import { pair, Pair } from '../ops/conv';
import { maxPool2d } from '../ops/pool';
import type { Tensor } from '../tensor';
import { Module } from './module';

/** Maximum over kernelSize windows of (n, c, h, w) input, like PyTorch's nn.MaxPool2d. */
export class MaxPool2d extends Module {
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number];

  /** stride defaults to kernelSize, padding (implicit -Infinity, at most half the kernel) to 0. */
  constructor(kernelSize: Pair, stride?: Pair, padding?: Pair) {
    super();
    const fn = 'kg.nn.MaxPool2d';
    this.kernelSize = pair(kernelSize, 1, fn, 'kernelSize', 1);
    this.stride = stride === undefined ? this.kernelSize : pair(stride, 1, fn, 'stride', 1);
    this.padding = pair(padding, 0, fn, 'padding', 0);
    const [kh, kw] = this.kernelSize;
    if (2 * this.padding[0] > kh || 2 * this.padding[1] > kw) {
      throw new RangeError(`${fn}: padding [${this.padding.join(', ')}] must be at most half the kernel size [${kh}, ${kw}]`);
    }
  }

  forward(x: Tensor): Tensor {
    return maxPool2d(x, { kernelSize: this.kernelSize, stride: this.stride, padding: this.padding });
  }

  override toString(): string {
    return `MaxPool2d(kernelSize=[${this.kernelSize.join(', ')}], stride=[${this.stride.join(', ')}], padding=[${this.padding.join(', ')}])`;
  }
}
