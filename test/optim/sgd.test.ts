// SGD (heavy ball and Nesterov momentum, L2 decay) against the float64 rule over several steps,
// and the Nesterov flag of the raw kernel.
import * as kg from '../../lib';
import { native } from '../../lib/native';
import { disposeAll, Rng, store } from '../native/reference';
import { SgdRef, trajectory, worstError } from './reference';

afterEach(disposeAll);

describe('sgdUpdate with nesterov', () => {
  test.each([1, 13, 70001])('one step from a random velocity, n = %i', (n) => {
    const rng = new Rng(3);
    const p0 = rng.array(n), g = rng.array(n), v0 = rng.array(n);
    const [lr, momentum, wd] = [0.05, 0.9, 1e-3];
    const p = store(p0), v = store(v0);
    native.sgdUpdate(lr, momentum, wd, true, p, store(g), v);
    const want = { p: new Float64Array(n), v: new Float64Array(n) };
    for (let i = 0; i < n; i++) {
      const gi = g[i] + wd * p0[i];
      want.v[i] = momentum * v0[i] + gi;
      want.p[i] = p0[i] - lr * (gi + momentum * want.v[i]);
    }
    expect(worstError(v.read(), want.v, 1e-6, 1e-7)).toBeLessThanOrEqual(1);
    expect(worstError(p.read(), want.p, 1e-6, 1e-7)).toBeLessThanOrEqual(1);
  });
});

describe('kg.optim.SGD over several steps', () => {
  test.each([
    { momentum: 0, nesterov: false, weightDecay: 0 },
    { momentum: 0, nesterov: false, weightDecay: 0.01 },
    { momentum: 0.9, nesterov: false, weightDecay: 5e-4 },
    { momentum: 0.9, nesterov: true, weightDecay: 0 },
    { momentum: 0.5, nesterov: true, weightDecay: 0.1 },
  ])('%o', ({ momentum, nesterov, weightDecay }) => {
    const lrAt = (s: number) => 0.01 * (1 + s);
    const t = trajectory({
      shapes: [[1], [3, 5], [2, 3, 7], [40001]],
      steps: 5,
      seed: 21,
      device: 'cpu',
      make: (params) => new kg.optim.SGD(params, { lr: 0.01, momentum, nesterov, weightDecay }),
      ref: (p) => new SgdRef(p),
      rule: (s) => ({ lr: lrAt(s), momentum, weightDecay, nesterov }),
      lrAt,
    });
    t.want.forEach((want, k) => expect(worstError(t.got[k], want, 1e-6, 1e-6)).toBeLessThanOrEqual(1));
  });

  test('a step updates all the parameters on the CPU in one native call', () => {
    const params = [kg.randn([3, 4], { seed: 1 }), kg.randn([5], { seed: 2 }), kg.randn([2, 2, 2], { seed: 3 })].map((p) => p.attachGrad());
    params.forEach((p, i) => (p.grad = kg.full(p.shape, 0.5 + i)));
    const before = params.map((p) => p.toArray());
    const many = jest.spyOn(native, 'sgdUpdateMany');
    const one = jest.spyOn(native, 'sgdUpdate');
    try {
      new kg.optim.SGD(params, { lr: 0.1, momentum: 0.9 }).step();
      expect(many).toHaveBeenCalledTimes(1);
      expect(one).not.toHaveBeenCalled();
    } finally {
      many.mockRestore();
      one.mockRestore();
    }
    // First step from zero velocity: v = g, p -= lr * g.
    params.forEach((p, i) => p.toArray().forEach((v, j) => expect(v).toBeCloseTo(before[i][j] - 0.1 * (0.5 + i), 6)));
  });

  test('Nesterov and heavy ball differ from the second step on', () => {
    const run = (nesterov: boolean) => {
      const p = kg.tensor([0], [1]).attachGrad();
      const opt = new kg.optim.SGD([p], { lr: 1, momentum: 0.5, nesterov });
      for (let i = 0; i < 2; i++) {
        p.grad = kg.tensor([1], [1]);
        opt.step();
      }
      return p.toArray()[0];
    };
    // heavy ball: v = 1, 1.5 -> p = -2.5; Nesterov: steps 1 + 0.5 * 1 = 1.5, then 1 + 0.5 * 1.5 = 1.75 -> p = -3.25
    expect(run(false)).toBeCloseTo(-2.5, 6);
    expect(run(true)).toBeCloseTo(-3.25, 6);
  });

  test('nesterov needs momentum, and must be a boolean', () => {
    const p = [kg.zeros([1]).attachGrad()];
    expect(() => new kg.optim.SGD(p, { lr: 0.1, nesterov: true })).toThrow(/^kg\.optim\.SGD: nesterov needs a momentum > 0 \(it is 0\)/);
    expect(() => new kg.optim.SGD(p, { lr: 0.1, momentum: 0.9, nesterov: 1 as never })).toThrow(/^kg\.optim\.SGD: nesterov must be true or false, got 1/);
  });
});
