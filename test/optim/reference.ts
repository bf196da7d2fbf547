// Float64 reference implementations of the optimizers' published update rules, written the way
// the papers and PyTorch's documentation state them (unfused, bias corrections applied to the
// moments), and a driver that runs an optimizer and its reference side by side for several steps.
import * as kg from '../../lib';
import { Rng } from '../native/reference';

const { sqrt, abs, max } = Math;

export interface AdamRule {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** AdamW: decay applied to the parameter, not added to the gradient. */
  decoupled: boolean;
}

/** One parameter's float64 Adam/AdamW state. */
export class AdamRef {
  readonly m: Float64Array;
  readonly v: Float64Array;
  t = 0;
  constructor(readonly param: Float64Array) {
    this.m = new Float64Array(param.length);
    this.v = new Float64Array(param.length);
  }
  /** Algorithm 1 of Kingma & Ba, with L2 decay (Adam) or decoupled decay (AdamW, Loshchilov & Hutter). */
  step(grad: ArrayLike<number>, r: AdamRule): void {
    this.t++;
    const { param: p, m, v } = this;
    for (let i = 0; i < p.length; i++) {
      const g = r.decoupled ? grad[i] : grad[i] + r.weightDecay * p[i];
      if (r.decoupled) p[i] -= r.lr * r.weightDecay * p[i];
      m[i] = r.beta1 * m[i] + (1 - r.beta1) * g;
      v[i] = r.beta2 * v[i] + (1 - r.beta2) * g * g;
      const mHat = m[i] / (1 - r.beta1 ** this.t);
      const vHat = v[i] / (1 - r.beta2 ** this.t);
      p[i] -= (r.lr * mHat) / (sqrt(vHat) + r.eps);
    }
  }
}

export interface SgdRule {
  lr: number;
  momentum: number;
  weightDecay: number;
  nesterov: boolean;
}

/** One parameter's float64 SGD state (PyTorch's rule, dampening 0). */
export class SgdRef {
  readonly velocity: Float64Array;
  constructor(readonly param: Float64Array) {
    this.velocity = new Float64Array(param.length);
  }
  step(grad: ArrayLike<number>, r: SgdRule): void {
    const { param: p, velocity: b } = this;
    for (let i = 0; i < p.length; i++) {
      const g = grad[i] + r.weightDecay * p[i];
      b[i] = r.momentum * b[i] + g;
      p[i] -= r.lr * (r.momentum === 0 ? g : r.nesterov ? g + r.momentum * b[i] : b[i]);
    }
  }
}

/** The largest |a - b| / (atol + rtol * |b|) (<= 1 means within tolerance). */
export function worstError(a: ArrayLike<number>, b: ArrayLike<number>, rtol: number, atol: number): number {
  let worst = 0;
  for (let i = 0; i < b.length; i++) worst = max(worst, abs(a[i] - b[i]) / (atol + rtol * abs(b[i])));
  return worst;
}

/** A random float32 array of n values uniform in [lo, hi). */
export function randomArray(rng: Rng, n: number, lo = -1, hi = 1): Float32Array {
  return rng.array(n, lo, hi);
}

export interface Trajectory {
  /** Parameter values after the last step, from the optimizer. */
  got: Float32Array[];
  /** The same from the float64 reference. */
  want: Float64Array[];
}

/**
 * Runs `steps` steps of `make(params)` on `device` and of the reference `ref` on the same random
 * gradients (seeded), setting the optimizer's lr from `lrAt(step)`. Parameter k skips the steps
 * where `skip(step, k)` (its grad is null there), as a parameter outside the graph would.
 */
export function trajectory<R extends { param: Float64Array; step(g: ArrayLike<number>, rule: Rule): void }, Rule>(opts: {
  shapes: number[][];
  steps: number;
  seed: number;
  device: kg.Device;
  make: (params: kg.Tensor[]) => kg.optim.Optimizer;
  ref: (param: Float64Array) => R;
  rule: (step: number, k: number) => Rule;
  lrAt?: (step: number) => number;
  skip?: (step: number, k: number) => boolean;
}): Trajectory {
  const rng = new Rng(opts.seed);
  const inits = opts.shapes.map((s) => randomArray(rng, s.reduce((a, b) => a * b, 1)));
  const params = inits.map((v, k) => kg.tensor(v, opts.shapes[k], { device: opts.device }).attachGrad());
  const refs = inits.map((v) => opts.ref(Float64Array.from(v)));
  const optimizer = opts.make(params);
  try {
    for (let s = 0; s < opts.steps; s++) {
      if (opts.lrAt) optimizer.lr = opts.lrAt(s);
      params.forEach((p, k) => {
        p.grad?.dispose();
        p.grad = null;
        // Gradients of mixed scales, so the adaptive denominators differ per element.
        const g = randomArray(rng, p.numel, -1, 1).map((x, i) => x * (i % 3 === 0 ? 10 : i % 3 === 1 ? 1 : 0.01));
        if (opts.skip?.(s, k)) return;
        p.grad = kg.tensor(g, p.shape, { device: opts.device });
        refs[k].step(g, opts.rule(s, k));
      });
      optimizer.step();
    }
    return { got: params.map((p) => p.toArray()), want: refs.map((r) => r.param) };
  } finally {
    optimizer.dispose();
    for (const p of params) {
      p.grad?.dispose();
      p.dispose();
    }
  }
}
