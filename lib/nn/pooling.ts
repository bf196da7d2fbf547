// Average pooling layer (no parameters).
import { avgPool2d } from '../ops/conv';
import type { Tensor } from '../tensor';
import { describeItems } from '../options';
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
    for (const [name, v] of [['kernelSize', kernelSize], ['stride', this.stride]] as const) {
      const p = typeof v === 'number' ? [v, v] : v;
      if (!Array.isArray(p) || p.length !== 2 || !p.every((d) => Number.isSafeInteger(d) && d >= 1)) {
        throw new TypeError(`kg.nn.AvgPool2d: ${name} must be a positive integer or a pair [h, w] of them, got ${describeItems(v)}`);
      }
    }
  }

  forward(x: Tensor): Tensor {
    return avgPool2d(x, { kernelSize: this.kernelSize, stride: this.stride });
  }

  override toString(): string {
    return `AvgPool2d(kernelSize=${JSON.stringify(this.kernelSize)}, stride=${JSON.stringify(this.stride)})`;
  }
}
