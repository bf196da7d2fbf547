// Adam and AdamW against float64 implementations of their published rules (test/optim/reference.ts):
// the raw fused kernel for one step with arbitrary state, and the optimizers over several steps on
// random shapes (odd sizes, one past the CPU kernel's chunk of 32768), with weight decay on and off,
// a changing learning rate and parameters that miss steps (their bias correction must not advance).
import * as kg from '../../lib';
import { native } from '../../lib/native';
import { disposeAll, Rng, store } from '../native/reference';
import { AdamRef, AdamRule, trajectory, worstError } from './reference';

afterEach(disposeAll);

const SHAPES = [[1], [3, 5], [17], [2, 3, 7], [40001]];
// float32 rounding of the parameter, the moments and the update over a few steps stays near 1e-7
// of values of order 1; a wrong rule (no bias correction, decay in the wrong place) is off by 1e-4
// or more at these learning rates.
const RTOL = 2e-6;
const ATOL = 2e-6;

function rule(decoupled: boolean, lr: number, weightDecay: number, betas: [number, number] = [0.9, 0.999], eps = 1e-8): AdamRule {
  return { lr, beta1: betas[0], beta2: betas[1], eps, weightDecay, decoupled };
}

function expectTrajectoryClose(t: { got: Float32Array[]; want: Float64Array[] }): void {
  t.want.forEach((want, k) => {
    const worst = worstError(t.got[k], want, RTOL, ATOL);
    if (worst > 1) throw new Error(`parameter ${k} (${want.length} values): error ${worst.toFixed(2)} x the tolerance`);
  });
}

describe('adamUpdate (the fused kernel)', () => {
  test.each([
    { name: 'Adam, L2 decay', l2: 0.01, decay: 0 },
    { name: 'AdamW, decoupled decay', l2: 0, decay: 1e-3 },
    { name: 'no decay', l2: 0, decay: 0 },
  ])('one step from random moments: $name', ({ l2, decay }) => {
    const rng = new Rng(7);
    for (const n of [1, 5, 13, 1000, 70001]) {
      const p0 = rng.array(n), g = rng.array(n), m0 = rng.array(n, -0.1, 0.1), v0 = rng.array(n, 0, 0.01);
      const [beta1, beta2, stepSize, eps] = [0.8, 0.99, 0.003, 1e-6];
      const p = store(p0), m = store(m0), v = store(v0);
      native.adamUpdate(beta1, beta2, stepSize, eps, l2, decay, p, store(g), m, v);
      const want = { p: new Float64Array(n), m: new Float64Array(n), v: new Float64Array(n) };
      for (let i = 0; i < n; i++) {
        const gi = g[i] + l2 * p0[i];
        want.m[i] = beta1 * m0[i] + (1 - beta1) * gi;
        want.v[i] = beta2 * v0[i] + (1 - beta2) * gi * gi;
        want.p[i] = p0[i] * (1 - decay) - (stepSize * want.m[i]) / (Math.sqrt(want.v[i]) + eps);
      }
      // atol: float32 rounding of the terms (m ~ 0.1, v ~ 0.01, p ~ 1), for sums that cancel.
      expect(worstError(m.read(), want.m, 1e-6, 2e-8)).toBeLessThanOrEqual(1);
      expect(worstError(v.read(), want.v, 1e-6, 2e-9)).toBeLessThanOrEqual(1);
      expect(worstError(p.read(), want.p, 1e-6, 2e-7)).toBeLessThanOrEqual(1);
    }
  });

  test('zero gradients and zero moments leave the parameter as it is, without NaN', () => {
    const p = store([1, -2, 0]), m = store([0, 0, 0]), v = store([0, 0, 0]);
    native.adamUpdate(0.9, 0.999, 0.1, 1e-8, 0, 0, p, store([0, 0, 0]), m, v);
    expect(Array.from(p.read())).toEqual([1, -2, 0]);
    expect(Array.from(m.read())).toEqual([0, 0, 0]);
  });
});

describe.each([
  { name: 'Adam', decoupled: false, Optim: kg.optim.Adam },
  { name: 'AdamW', decoupled: true, Optim: kg.optim.AdamW },
])('kg.optim.$name', ({ decoupled, Optim }) => {
  test.each([
    { lr: 0.01, weightDecay: 0 },
    { lr: 0.02, weightDecay: 0.1 },
    { lr: 0.003, weightDecay: 0.5, betas: [0.5, 0.9] as [number, number], eps: 1e-3 },
  ])('six steps match the float64 rule: %o', ({ lr, weightDecay, betas, eps }) => {
    const t = trajectory({
      shapes: SHAPES,
      steps: 6,
      seed: 11,
      device: 'cpu',
      make: (params) => new Optim(params, { lr, weightDecay, betas, eps }),
      ref: (p) => new AdamRef(p),
      rule: () => rule(decoupled, lr, weightDecay, betas, eps),
    });
    expectTrajectoryClose(t);
  });

  test('a learning rate changed between steps, and parameters that miss steps', () => {
    const lrAt = (s: number) => [0.01, 0.03, 0, 0.02, 0.005, 0.01][s];
    const skip = (s: number, k: number) => (k === 1 && s < 2) || (k === 2 && s % 2 === 1);
    const t = trajectory({
      shapes: [[4], [9], [3, 3]],
      steps: 6,
      seed: 12,
      device: 'cpu',
      make: (params) => new Optim(params, { weightDecay: 0.05 }),
      ref: (p) => new AdamRef(p),
      rule: (s) => rule(decoupled, lrAt(s), 0.05),
      lrAt,
      skip,
    });
    expectTrajectoryClose(t);
  });

  test('noDecay parameters follow the rule without decay', () => {
    const t = trajectory({
      shapes: [[6], [5]],
      steps: 4,
      seed: 13,
      device: 'cpu',
      make: (params) => new Optim(params, { lr: 0.01, weightDecay: 0.3, noDecay: [params[1]] }),
      ref: (p) => new AdamRef(p),
      rule: (_, k) => rule(decoupled, 0.01, k === 1 ? 0 : 0.3),
    });
    expectTrajectoryClose(t);
  });

  test('the first step moves every entry by lr in the direction of -grad (bias correction)', () => {
    const p = kg.tensor([1, 2, 3, 4], [4]).attachGrad();
    p.grad = kg.tensor([5, -0.001, 300, -2], [4]);
    const opt = new Optim([p], { lr: 0.1, weightDecay: 0 });
    opt.step();
    const got = p.toArray();
    [0.9, 2.1, 2.9, 4.1].forEach((want, i) => expect(got[i]).toBeCloseTo(want, 5));
  });

  test('learns through autograd', () => {
    const w = kg.tensor([0, 10], [2]).attachGrad();
    const opt = new Optim([w], { lr: 0.1, weightDecay: 0 });
    for (let i = 0; i < 300; i++) {
      kg.tidy(() => {
        opt.zeroGrad();
        const loss = kg.autograd.record(() => {
          const d = w.sub(kg.tensor([3, -2], [2]));
          return d.mul(d).sum();
        });
        loss.backward();
        opt.step();
      });
    }
    const [a, b] = w.toArray();
    expect(a).toBeCloseTo(3, 1);
    expect(b).toBeCloseTo(-2, 1);
    opt.dispose();
  });
});

test('Adam and AdamW differ exactly in where the decay goes', () => {
  // The same run under both rules: each must match its own reference and not the other's.
  const run = (Optim: typeof kg.optim.Adam) =>
    trajectory({
      shapes: [[50]],
      steps: 3,
      seed: 14,
      device: 'cpu',
      make: (params) => new Optim(params, { lr: 0.01, weightDecay: 0.5 }),
      ref: (p) => new AdamRef(p),
      rule: () => rule(Optim === kg.optim.AdamW, 0.01, 0.5),
    });
  const adam = run(kg.optim.Adam);
  const adamw = run(kg.optim.AdamW);
  expectTrajectoryClose(adam);
  expectTrajectoryClose(adamw);
  expect(worstError(adam.got[0], adamw.want[0], RTOL, ATOL)).toBeGreaterThan(10);
});

describe('Adam options and misuse', () => {
  const params = () => [kg.zeros([2]).attachGrad()];
  test('defaults: lr 0.001, betas [0.9, 0.999], eps 1e-8; weight decay 0 (Adam) and 0.01 (AdamW)', () => {
    const a = new kg.optim.Adam(params());
    expect([a.lr, a.beta1, a.beta2, a.eps, a.weightDecay, a.decoupled]).toEqual([0.001, 0.9, 0.999, 1e-8, 0, false]);
    const w = new kg.optim.AdamW(params());
    expect([w.weightDecay, w.decoupled]).toEqual([0.01, true]);
    expect(a).toBeInstanceOf(kg.optim.Optimizer);
  });

  test.each<[string, () => unknown, ErrorConstructor, RegExp]>([
    ['an unknown option', () => new kg.optim.Adam(params(), { lr: 0.1, momentum: 0.9 } as never), TypeError,
      /^kg\.optim\.Adam: unknown option 'momentum' \(known options: lr, betas, eps, weightDecay, noDecay\)/],
    ['null options', () => new kg.optim.AdamW(params(), null as never), TypeError, /^kg\.optim\.AdamW: options must be an object, got null/],
    ['lr 0', () => new kg.optim.Adam(params(), { lr: 0 }), RangeError, /^kg\.optim\.Adam: lr must be a positive number, got 0/],
    ['betas not a pair', () => new kg.optim.Adam(params(), { betas: [0.9] as never }), TypeError, /^kg\.optim\.Adam: betas must be a pair \[beta1, beta2\], got an array of length 1/],
    ['beta2 = 1', () => new kg.optim.Adam(params(), { betas: [0.9, 1] }), RangeError, /^kg\.optim\.Adam: betas\[1\] must be in \[0, 1\), got 1/],
    ['a negative beta1', () => new kg.optim.AdamW(params(), { betas: [-0.1, 0.9] }), RangeError, /^kg\.optim\.AdamW: betas\[0\] must be in \[0, 1\), got -0\.1/],
    ['eps 0', () => new kg.optim.Adam(params(), { eps: 0 }), RangeError, /^kg\.optim\.Adam: eps must be a positive number, got 0/],
    ['a negative weight decay', () => new kg.optim.AdamW(params(), { weightDecay: -1 }), RangeError, /^kg\.optim\.AdamW: weightDecay must be >= 0, got -1/],
    ['NaN weight decay', () => new kg.optim.Adam(params(), { weightDecay: NaN }), RangeError, /^kg\.optim\.Adam: weightDecay must be >= 0, got NaN/],
    ['a noDecay tensor that is not a parameter', () => new kg.optim.Adam(params(), { noDecay: [kg.zeros([3])] }), RangeError,
      /^kg\.optim\.Adam: noDecay holds a tensor \[3\] that is not one of the parameters/],
    ['a parameter without attachGrad', () => new kg.optim.Adam([kg.zeros([2])]), TypeError, /^kg\.optim\.Adam: parameter 0 \[2\] did not call attachGrad\(\)/],
    ['params that are not iterable', () => new kg.optim.Adam(3 as never), TypeError, /^kg\.optim\.Adam: params must be an array \(or iterable\) of tensors, got 3/],
  ])('%s', (_, make, type, message) => {
    expect(make).toThrow(type);
    expect(make).toThrow(message);
  });

  test('lr may be set to 0 (a schedule at its end) but not to a negative or NaN rate', () => {
    const a = new kg.optim.Adam(params());
    a.lr = 0;
    expect(a.lr).toBe(0);
    expect(() => (a.lr = -0.1)).toThrow(/^kg\.optim\.Adam: lr must be a finite number >= 0, got -0\.1/);
    expect(() => (a.lr = NaN)).toThrow(/got NaN/);
    expect(a.lr).toBe(0);
  });

  test('a step after dispose() is an error, not a silent restart of the moments', () => {
    const ps = params();
    const a = new kg.optim.Adam(ps);
    ps[0].grad = kg.ones([2]);
    a.step();
    a.dispose();
    expect(() => a.step()).toThrow(/^kg\.optim\.Adam: step\(\) after dispose\(\)/);
  });

  test('a gradient on another device or of another size is refused', () => {
    const ps = params();
    ps[0].grad = kg.ones([3]);
    expect(() => new kg.optim.Adam(ps).step()).toThrow(/^kg\.optim\.Adam: the gradient \[3\] on cpu does not match its parameter \[2\] on cpu/);
  });
});
