import * as kg from '../../lib/index';
import { SGD } from '../../lib/optim/sgd';

function param(values: number[]) {
  return kg.tensor(values, [values.length]).attachGrad();
}

describe('SGD', () => {
  test('plain step: p -= lr * grad, parameters without grad are skipped', () => {
    const p = param([1, 2]);
    const q = param([5]);
    p.grad = kg.tensor([10, -20], [2]);
    const opt = new SGD([p, q], { lr: 0.1 });
    opt.step();
    // 1 - 0.1f * 10 is 0 with a rounded product and -1.5e-8 with a fused multiply-add.
    const [a, b] = p.toArray();
    expect(a).toBeCloseTo(0, 7);
    expect(b).toBeCloseTo(4, 6);
    expect(Array.from(q.toArray())).toEqual([5]);
  });

  test('momentum keeps one velocity per parameter', () => {
    const p = param([0]);
    const opt = new SGD([p], { lr: 1, momentum: 0.5 });
    for (let i = 0; i < 3; i++) {
      p.grad = kg.tensor([1], [1]);
      opt.step();
    }
    // v: 1, 1.5, 1.75 -> p = -(1 + 1.5 + 1.75)
    expect(p.toArray()[0]).toBeCloseTo(-4.25, 6);
  });

  test('weight decay, except for the noDecay parameters', () => {
    const w = param([2]);
    const g = param([2]);
    w.grad = kg.zeros([1]);
    g.grad = kg.zeros([1]);
    new SGD([w, g], { lr: 0.5, weightDecay: 0.1, noDecay: [g] }).step();
    expect(w.toArray()[0]).toBeCloseTo(2 - 0.5 * 0.1 * 2, 6);
    expect(g.toArray()[0]).toBe(2);
  });

  test('zeroGrad drops the gradients', () => {
    const p = param([1]);
    p.grad = kg.ones([1]);
    const opt = new SGD([p], { lr: 1 });
    opt.zeroGrad();
    expect(p.grad).toBeNull();
  });

  test('learns through autograd', () => {
    const w = param([0]);
    const opt = new SGD([w], { lr: 0.1 });
    for (let i = 0; i < 50; i++) {
      opt.zeroGrad();
      const loss = kg.autograd.record(() => {
        const d = w.sub(3);
        return d.mul(d).sum();
      });
      loss.backward();
      opt.step();
    }
    expect(w.toArray()[0]).toBeCloseTo(3, 3);
  });

  test('bad options', () => {
    const p = param([1]);
    expect(() => new SGD([p], { lr: 0 })).toThrow(/lr must be a positive number/);
    expect(() => new SGD([p], { lr: 1, momentum: 1 })).toThrow(/momentum must be in \[0, 1\)/);
    expect(() => new SGD([kg.ones([1])], { lr: 1 })).toThrow(/did not call attachGrad/);
    expect(() => new SGD([], { lr: 1 })).toThrow(/empty parameter list/);
  });
});
