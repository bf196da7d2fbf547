// Stochastic gradient descent with optional momentum and L2 weight decay, on the fused native
// kernel (one pass over each parameter, on its device):
//   g' = grad + weightDecay * param;  velocity = momentum * velocity + g';  param -= lr * velocity
// (PyTorch's SGD with dampening 0; without momentum simply param -= lr * g').
import { native } from '../native';
import { readOptions } from '../options';
import { formatShape } from '../shape';
import { Tensor } from '../tensor';
import { zeros } from '../ops/creation';

export interface SGDOptions {
  /** Learning rate (> 0). */
  lr: number;
  /** Momentum factor in [0, 1) (default 0: plain SGD, no velocity buffers). */
  momentum?: number;
  /** L2 penalty added to the gradient (default 0). */
  weightDecay?: number;
  /** Parameters exempt from weight decay, e.g. batch-norm gamma and beta, or biases. */
  noDecay?: Tensor[];
}

function checkNumber(v: unknown, name: string, ok: (x: number) => boolean, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) {
    throw new RangeError(`SGD: ${name} must be ${what}, got ${String(v)}`);
  }
  return v;
}

export class SGD {
  /** Learning rate; may be changed between steps (schedules). */
  lr: number;
  readonly momentum: number;
  readonly weightDecay: number;
  readonly params: readonly Tensor[];
  private readonly noDecay: Set<Tensor>;
  private readonly velocity = new Map<Tensor, Tensor>();

  constructor(params: Iterable<Tensor>, options: SGDOptions) {
    if (options === undefined) throw new TypeError('kg.optim.SGD: options { lr } are required');
    readOptions(options, 'kg.optim.SGD', ['lr', 'momentum', 'weightDecay', 'noDecay']);
    this.params = [...params];
    if (this.params.length === 0) throw new RangeError('SGD: got an empty parameter list');
    this.params.forEach((p, i) => {
      if (!(p instanceof Tensor)) throw new TypeError(`SGD: parameter ${i} is not a Tensor`);
      if (!p.requiresGrad) throw new TypeError(`SGD: parameter ${i} ${formatShape(p.shape)} did not call attachGrad()`);
    });
    if (new Set(this.params).size !== this.params.length) throw new RangeError('SGD: a parameter appears more than once');
    this.lr = checkNumber(options.lr, 'lr', (x) => x > 0, 'a positive number');
    this.momentum = checkNumber(options.momentum ?? 0, 'momentum', (x) => x >= 0 && x < 1, 'in [0, 1)');
    this.weightDecay = checkNumber(options.weightDecay ?? 0, 'weightDecay', (x) => x >= 0, '>= 0');
    this.noDecay = new Set(options.noDecay ?? []);
  }

  /**
   * Updates every parameter that has a gradient, in place. Parameters whose `grad` is null (not
   * reached by the last backward) are skipped, as in PyTorch.
   */
  step(): void {
    checkNumber(this.lr, 'lr', (x) => x > 0, 'a positive number');
    for (const p of this.params) {
      const g = p.grad;
      if (g === null) continue;
      if (g.device !== p.device || g.numel !== p.numel) {
        throw new Error(`SGD: the gradient ${formatShape(g.shape)} on ${g.device} does not match its parameter ${formatShape(p.shape)} on ${p.device}`);
      }
      const decay = this.noDecay.has(p) ? 0 : this.weightDecay;
      let v: Tensor | null = null;
      if (this.momentum > 0) {
        v = this.velocity.get(p) ?? null;
        if (v === null) {
          v = zeros(p.shape, { device: p.device }).keep(); // lives as long as the optimizer
          this.velocity.set(p, v);
        }
      }
      native.sgdUpdate(this.lr, this.momentum, decay, p.storageForWrite(), g.storage, v ? v.storageForWrite() : null);
    }
  }

  /** Drops every gradient (`p.grad = null`, memory freed), so the next backward starts from zero. */
  zeroGrad(): void {
    for (const p of this.params) {
      if (p.grad !== null) {
        p.grad.dispose();
        p.grad = null;
      }
    }
  }

  /** Frees the momentum buffers. */
  dispose(): void {
    for (const v of this.velocity.values()) v.dispose();
    this.velocity.clear();
  }
}
