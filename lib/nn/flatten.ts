// Flatten layer: (N, ...) -> (N, rest), sharing memory. NCHW order, like PyTorch's nn.Flatten().
import { flatten } from '../ops/arith';
import type { Tensor } from '../tensor';
import { Module } from './module';

export class Flatten extends Module {
  forward(x: Tensor): Tensor {
    return flatten(x);
  }

  override toString(): string {
    return 'Flatten()';
  }
}
