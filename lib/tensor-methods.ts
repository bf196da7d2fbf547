// The Tensor's op methods (t.add(u), t.sum(), t.backward() ...), attached to the class here so that
// lib/tensor.ts stays about memory and identity and every op stays in one file under lib/ops/.
import { backward, BackwardOptions } from './autograd/backward';
import { relu } from './ops/activation';
import { add, div, flatten, mean, mul, neg, Operand, ReduceOptions, reshape, scale, sub, sum } from './ops/arith';
import { argmax } from './ops/loss';
import { matmul } from './ops/matmul';
import { Tensor } from './tensor';

declare module './tensor' {
  interface Tensor {
    add(other: Operand): Tensor;
    sub(other: Operand): Tensor;
    mul(other: Operand): Tensor;
    div(other: Operand): Tensor;
    neg(): Tensor;
    scale(alpha: number): Tensor;
    sum(axes?: number | readonly number[], options?: ReduceOptions): Tensor;
    mean(axes?: number | readonly number[], options?: ReduceOptions): Tensor;
    reshape(shape: readonly number[]): Tensor;
    flatten(): Tensor;
    matmul(other: Tensor): Tensor;
    relu(): Tensor;
    argmax(): Tensor;
    /**
     * Backpropagates into every tensor that called attachGrad(). headGrad defaults to ones, so a
     * vector is treated as the sum of its elements (the tutorial's convention).
     */
    backward(headGrad?: Tensor, options?: BackwardOptions): void;
  }
}

Object.assign(Tensor.prototype, {
  add(this: Tensor, other: Operand) { return add(this, other); },
  sub(this: Tensor, other: Operand) { return sub(this, other); },
  mul(this: Tensor, other: Operand) { return mul(this, other); },
  div(this: Tensor, other: Operand) { return div(this, other); },
  neg(this: Tensor) { return neg(this); },
  scale(this: Tensor, alpha: number) { return scale(this, alpha); },
  sum(this: Tensor, axes?: number | readonly number[], options?: ReduceOptions) { return sum(this, axes, options); },
  mean(this: Tensor, axes?: number | readonly number[], options?: ReduceOptions) { return mean(this, axes, options); },
  reshape(this: Tensor, shape: readonly number[]) { return reshape(this, shape); },
  flatten(this: Tensor) { return flatten(this); },
  matmul(this: Tensor, other: Tensor) { return matmul(this, other); },
  relu(this: Tensor) { return relu(this); },
  argmax(this: Tensor) { return argmax(this); },
  backward(this: Tensor, headGrad?: Tensor, options?: BackwardOptions) { backward(this, headGrad, options); },
});
