// Max pooling and global average pooling layers (no parameters).
import { pair, Pair } from '../ops/conv';
import { adaptiveAvgPool2d, maxPool2d } from '../ops/maxpool';
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
