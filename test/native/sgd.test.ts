// The SGD update: plain, with weight decay, and with momentum.
import { native } from '../../lib/native';
import { Rng, disposeAll, empty, expectClose, sgdRef, store } from './reference';

afterEach(disposeAll);

describe('sgdUpdate', () => {
  test.each([
    { lr: 0.1, momentum: 0, wd: 0 },
    { lr: 0.05, momentum: 0, wd: 1e-3 },
    { lr: 0.01, momentum: 0.9, wd: 5e-4 },
  ])('%o', ({ lr, momentum, wd }) => {
    const rng = new Rng(1);
    for (const n of [1, 13, 70001]) {
      const p0 = rng.array(n);
      const g = rng.array(n);
      const v0 = rng.array(n);
      const param = store(p0);
      const velocity = momentum === 0 ? null : store(v0);
      native.sgdUpdate(lr, momentum, wd, false, param, store(g), velocity);
      const ref = sgdRef(lr, momentum, wd, p0, g, momentum === 0 ? null : v0);
      expectClose(param.read(), ref.param, { rtol: 1e-6, atol: 1e-7 }, 'param');
      if (velocity) expectClose(velocity.read(), ref.velocity, { rtol: 1e-6, atol: 1e-7 }, 'velocity');
    }
  });

  test('momentum 0 with a velocity buffer ignores its old (even NaN) contents', () => {
    const v = empty(2, NaN);
    const p = store([1, 2]);
    native.sgdUpdate(0.5, 0, 0, false, p, store([2, 4]), v);
    expect(Array.from(p.read())).toEqual([0, 0]);
    expect(Array.from(v.read())).toEqual([2, 4]);
  });
});

describe('sgdUpdateMany', () => {
  test.each([
    { momentum: 0, nesterov: false },
    { momentum: 0.9, nesterov: false },
    { momentum: 0.9, nesterov: true },
  ])('every parameter against the float64 rule, its own decay, the rate from a storage: %o', ({ momentum, nesterov }) => {
    const rng = new Rng(5);
    const sizes = [1, 13, 3, 7001];
    const decays = [0, 1e-3, 0.5, 5e-4];
    const p0 = sizes.map((n) => rng.array(n));
    const g = sizes.map((n) => rng.array(n));
    const v0 = sizes.map((n) => rng.array(n));
    const params = p0.map(store);
    const velocities = momentum === 0 ? null : v0.map(store);
    const lr = 0.03;
    native.sgdUpdateMany(momentum, nesterov, store([lr]), params, g.map(store), velocities, decays);
    sizes.forEach((_, k) => {
      // The same update as one sgdUpdate per parameter, to the bit.
      const one = store(p0[k]);
      const oneV = velocities ? store(v0[k]) : null;
      native.sgdUpdate(lr, momentum, decays[k], nesterov, one, store(g[k]), oneV);
      expect(Array.from(params[k].read())).toEqual(Array.from(one.read()));
      if (velocities && oneV) expect(Array.from(velocities[k].read())).toEqual(Array.from(oneV.read()));
      if (nesterov) return; // sgdRef is the heavy-ball rule; Nesterov's is checked in test/optim
      const ref = sgdRef(Math.fround(lr), momentum, decays[k], p0[k], g[k], velocities ? v0[k] : null);
      expectClose(params[k].read(), ref.param, { rtol: 1e-6, atol: 1e-7 }, `param ${k}`);
      if (velocities) expectClose(velocities[k].read(), ref.velocity, { rtol: 1e-6, atol: 1e-7 }, `velocity ${k}`);
    });
  });

  test('bad lists are refused with the argument named', () => {
    const p = [store([1, 2]), store([3])];
    const g = [store([1, 1]), store([1])];
    expect(() => native.sgdUpdateMany(0, false, store([0.1]), p, g.slice(1), null, [0, 0])).toThrow(/one entry per parameter/);
    expect(() => native.sgdUpdateMany(0, false, store([0.1, 0.2]), p, g, null, [0, 0])).toThrow(/lr has 2 elements/);
    expect(() => native.sgdUpdateMany(0.9, false, store([0.1]), p, g, null, [0, 0])).toThrow(/momentum needs velocity buffers/);
    expect(() => native.sgdUpdateMany(0, false, store([0.1]), p, [g[0], store([1, 2])], null, [0, 0])).toThrow(/grads\[1\] has 2 elements/);
    expect(() => native.sgdUpdateMany(0, false, store([0.1]), p, [p[0], g[1]], null, [0, 0])).toThrow(/different storages/);
    expect(() => native.sgdUpdateMany(0, false, store([0.1]), p, g, null, [0, NaN])).toThrow(/weightDecays\[1\] must be a finite number/);
    expect(() => native.sgdUpdateMany(0, false, store([0.1]), [1] as never, g, null, [0])).toThrow(/params\[0\] must be a Storage/);
  });
});
