// Adam (Kingma & Ba, 2015) and AdamW (Loshchilov & Hutter, 2019), on the fused native kernel (one
// pass over param, grad and the two moments, on the parameter's device). At step t of a parameter:
//   g = grad, plus weightDecay * param for Adam (its decay is an L2 term of the gradient)
//   m = beta1 * m + (1 - beta1) * g;   v = beta2 * v + (1 - beta2) * g^2
//   param -= lr * weightDecay * param  (AdamW only: the decay is decoupled from the gradient)
//   param -= lr * m_hat / (sqrt(v_hat) + eps),  m_hat = m / (1 - beta1^t), v_hat = v / (1 - beta2^t)
// as PyTorch's Adam and AdamW (amsgrad off). The bias corrections are folded into two scalars
// here, once per step, so the kernel is the same at every step (AdamStep, native/include/kg/shapes.h).
import { native } from '../native';
import { describe, readOptions } from '../options';
import { zeros } from '../ops/creation';
import type { Tensor } from '../tensor';
import { checkNumber, Optimizer, OptimizerOptions } from './optimizer';

export interface AdamOptions extends OptimizerOptions {
  /** Learning rate (default 0.001). */
  lr?: number;
  /** Decay rates of the first and second moment estimates, each in [0, 1) (default [0.9, 0.999]). */
  betas?: readonly [number, number];
  /** Added to sqrt(v_hat) for stability (> 0, default 1e-8). */
  eps?: number;
}

interface AdamState {
  m: Tensor;
  v: Tensor;
  /** Updates of this parameter so far: the t of its bias corrections. */
  t: number;
}

/** What Adam and AdamW share; they differ only in where weight decay goes. */
export abstract class AdamFamily extends Optimizer<AdamState> {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** True for AdamW: weight decay shrinks the parameter directly instead of joining the gradient. */
  readonly decoupled: boolean;

  protected constructor(fn: string, params: Iterable<Tensor>, options: AdamOptions, decoupled: boolean, defaultDecay: number) {
    const opts = readOptions(options, fn, ['lr', 'betas', 'eps', 'weightDecay', 'noDecay']);
    super(fn, params, opts.lr ?? 0.001, opts.noDecay);
    const betas: unknown = opts.betas ?? [0.9, 0.999];
    if (!Array.isArray(betas) || betas.length !== 2) {
      throw new TypeError(`${fn}: betas must be a pair [beta1, beta2], got ${describe(betas)}`);
    }
    this.beta1 = checkNumber(betas[0], fn, 'betas[0]', (x) => x >= 0 && x < 1, 'in [0, 1)');
    this.beta2 = checkNumber(betas[1], fn, 'betas[1]', (x) => x >= 0 && x < 1, 'in [0, 1)');
    this.eps = checkNumber(opts.eps ?? 1e-8, fn, 'eps', (x) => x > 0, 'a positive number');
    this.weightDecay = checkNumber(opts.weightDecay ?? defaultDecay, fn, 'weightDecay', (x) => x >= 0, '>= 0');
    this.decoupled = decoupled;
  }

  protected update(p: Tensor, g: Tensor): void {
    const s = this.stateOf(p, () => ({ m: zeros(p.shape, { device: p.device }).keep(), v: zeros(p.shape, { device: p.device }).keep(), t: 0 }));
    const t = s.t + 1;
    const correction1 = 1 - this.beta1 ** t;
    const root2 = Math.sqrt(1 - this.beta2 ** t);
    const decay = this.decayOf(p, this.weightDecay);
    native.adamUpdate(
      this.beta1,
      this.beta2,
      (this.lr * root2) / correction1,
      this.eps * root2,
      this.decoupled ? 0 : decay,
      this.decoupled ? this.lr * decay : 0,
      p.storageForWrite(),
      g.storage,
      s.m.storageForWrite(),
      s.v.storageForWrite(),
    );
    s.t = t;
  }
}

/** Adam with L2 weight decay (added to the gradient, so it is scaled by the adaptive step too). */
export class Adam extends AdamFamily {
  constructor(params: Iterable<Tensor>, options: AdamOptions = {}) {
    super('kg.optim.Adam', params, options, false, 0);
  }
}

/** Adam with decoupled weight decay (default 0.01): param -= lr * weightDecay * param each step. */
export class AdamW extends AdamFamily {
  constructor(params: Iterable<Tensor>, options: AdamOptions = {}) {
    super('kg.optim.AdamW', params, options, true, 0.01);
  }
}
