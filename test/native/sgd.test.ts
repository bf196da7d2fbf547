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
