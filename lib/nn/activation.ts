// Activation layers (no parameters).
import { relu } from '../ops/activation';
import type { Tensor } from '../tensor';
import { Module } from './module';

/** max(x, 0), elementwise. */
export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return relu(x);
  }

  override toString(): string {
    return 'ReLU()';
  }
}
