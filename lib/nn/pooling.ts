// Average pooling layer (no parameters).
import { avgPool2d } from '../ops/conv';
import type { Tensor } from '../tensor';
import { Module } from './module';

type Pair = number | [number, number];

/** Averages kernelSize windows of (n, c, h, w) input, moving by `stride` (default: kernelSize). */
export class AvgPool2d extends Module {
  readonly stride: Pair;
  constructor(
    readonly kernelSize: Pair,
    stride?: Pair,
  ) {
    super();
    this.stride = stride ?? kernelSize;
  }

  forward(x: Tensor): Tensor {
    return avgPool2d(x, { kernelSize: this.kernelSize, stride: this.stride });
  }

  override toString(): string {
    return `AvgPool2d(kernelSize=${JSON.stringify(this.kernelSize)}, stride=${JSON.stringify(this.stride)})`;
  }
}
