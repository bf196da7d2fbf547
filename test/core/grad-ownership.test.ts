// Gradients without copies: a leaf takes the gradient its op made instead of a copy, and sums of
// gradients are formed in place, but only where nothing else can see the memory. Anything shared
// (the same tensor handed to two inputs, a reshape of it, the caller's headGrad, a tensor made
// before backward) is copied, so an in-place update of one gradient never shows in another.
import * as kg from '../../lib';
import { recordOp } from '../../lib/autograd/tape';
import { Random } from '../../lib/random';

const { record, backward } = kg.autograd;

function randomValues(n: number, seed: number): number[] {
  return Array.from(new Random(seed).fillNormal(new Float32Array(n)));
}

/** An op y = x whose rule returns what `rule` makes of the output's gradient. */
function passThrough(inputs: kg.Tensor[], rule: (g: kg.Tensor) => Array<kg.Tensor | null>): kg.Tensor {
  return recordOp('passThrough', kg.zeros([...inputs[0].shape]), inputs, [], rule);
}

describe('a leaf without a gradient takes the one its op made', () => {
  test('the tensor the rule returned becomes the leaf’s grad, with its values', () => {
    const w = kg.zeros([7]).attachGrad();
    let made: kg.Tensor | null = null;
    const y = record(() =>
      passThrough([w], (g) => {
        made = g.mul(3);
        return [made];
      }),
    );
    backward(y);
    expect(w.grad).toBe(made);
    expect(Array.from(w.grad!.toArray())).toEqual(new Array(7).fill(3));
  });

  test('one tensor handed to two leaves is copied for one of them', () => {
    const a = kg.zeros([5]).attachGrad();
    const b = kg.zeros([5]).attachGrad();
    const y = record(() => passThrough([a, b], (g) => {
      const shared = g.mul(2);
      return [shared, shared];
    }));
    backward(y);
    expect(a.grad).not.toBe(b.grad);
    a.grad!.copy_(kg.full([5], 9));
    expect(Array.from(b.grad!.toArray())).toEqual(new Array(5).fill(2));
  });

  test('add hands its gradient to both operands: updating one operand’s grad leaves the other’s alone', () => {
    const va = randomValues(11, 1), vb = randomValues(11, 2);
    const a = kg.tensor(va).attachGrad();
    const b = kg.tensor(vb).attachGrad();
    backward(record(() => a.add(b).mul(a).sum()));
    // d/da (a + b) a = 2a + b, d/db = a
    const ga = a.grad!.toArray(), gb = b.grad!.toArray();
    va.forEach((x, i) => {
      expect(ga[i]).toBeCloseTo(2 * x + vb[i], 5);
      expect(gb[i]).toBeCloseTo(x, 6);
    });
    const before = Array.from(b.grad!.toArray());
    new kg.optim.SGD([a], { lr: 0.5 }).step();
    a.grad!.copy_(kg.zeros([11]));
    expect(Array.from(b.grad!.toArray())).toEqual(before);
  });

  test('the caller’s headGrad is never taken: changing it afterwards leaves the gradients alone', () => {
    const a = kg.zeros([2, 3]).attachGrad();
    const b = kg.zeros([2, 3]).attachGrad();
    const head = kg.tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    backward(record(() => a.add(b)), head);
    expect(a.grad).not.toBe(head);
    expect(b.grad).not.toBe(head);
    head.copy_(kg.zeros([2, 3]));
    expect(Array.from(a.grad!.toArray())).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(b.grad!.toArray())).toEqual([1, 2, 3, 4, 5, 6]);
  });

  test('a tensor made before backward, or a reshape that shares memory, is copied', () => {
    const w = kg.zeros([2, 3]).attachGrad();
    const before = kg.full([2, 3], 4);
    backward(record(() => passThrough([w], () => [before])));
    expect(w.grad).not.toBe(before);
    expect(Array.from(w.grad!.toArray())).toEqual(new Array(6).fill(4));

    const v = kg.zeros([6]).attachGrad();
    let flat: kg.Tensor | null = null;
    backward(record(() => passThrough([v], (g) => {
      const grid = g.mul(1).reshape([2, 3]);
      flat = grid.reshape([6]); // shares grid's memory
      return [flat];
    }).sum()));
    expect(v.grad).not.toBe(flat);
    expect(Array.from(v.grad!.toArray())).toEqual(new Array(6).fill(1));
  });

  test('a leaf used many times sums its gradients, in place, to the right values', () => {
    // y = sum(w * w + w + w * 2) on odd sizes: dy/dw = 2w + 3
    const vw = randomValues(13, 3);
    const w = kg.tensor(vw, [13]).attachGrad();
    backward(record(() => w.mul(w).add(w).add(w.mul(2)).sum()));
    const g = w.grad!.toArray();
    vw.forEach((x, i) => expect(g[i]).toBeCloseTo(2 * x + 3, 5));
    // x + x hands the same tensor twice for one input
    const u = kg.tensor(vw, [13]).attachGrad();
    backward(record(() => u.add(u).sum()));
    expect(Array.from(u.grad!.toArray())).toEqual(new Array(13).fill(2));
  });
});

describe('gradients taken without a copy stay put', () => {
  test('a kept gradient does not change when the next steps reuse the freed memory', () => {
    const make = (seed: number) =>
      kg.models.bnCnn({ device: 'cpu', seed, hidden: 9 });
    const x = kg.rand([5, 1, 28, 28], { seed: 7 });
    const y = kg.tensor([0, 3, 1, 9, 4]);
    const model = make(1);
    kg.tidy(() => {
      backward(record(() => kg.nn.functional.softmaxCrossEntropy(model.forward(x), y)));
    });
    const grads = model.parameters().map((p) => p.grad!);
    const values = grads.map((g) => Array.from(g.toArray()));
    // Another model of the same shapes: every temporary of its steps has a size a freed block of
    // the first step had, so the cache hands those blocks out again.
    const other = make(2);
    const sgd = new kg.optim.SGD(other.parameters(), { lr: 0.01 });
    for (let i = 0; i < 3; i++) kg.train.trainStep(other, sgd, x, y);
    grads.forEach((g, i) => expect(Array.from(g.toArray())).toEqual(values[i]));
    expect(model.parameters().map((p) => p.grad)).toEqual(grads);
  });

  test('version counters still see in-place writes to a taken gradient', () => {
    const w = kg.tensor(randomValues(5, 4)).attachGrad();
    backward(record(() => w.mul(w).sum()));
    const g = w.grad!;
    const z = record(() => g.mul(w).sum()); // saves g to differentiate with respect to w
    backward(z, undefined, { retainGraph: true }); // accumulates into g, in place
    expect(() => backward(z)).toThrow(/modified in place/);
  });
});

describe('the default head gradient of a one-element root', () => {
  test('is never written: a rule passing it through, and the leaf that takes it, get copies', () => {
    for (const shape of [[], [1], [1, 1]]) {
      // The rule hands the head itself to the leaf, which is then updated in place.
      const w = kg.zeros(shape).attachGrad();
      backward(record(() => passThrough([w], (g) => [g])));
      expect(Array.from(w.grad!.toArray())).toEqual([1]);
      w.grad!.copy_(kg.full(shape, 7));
      // Gradients summed where a tensor feeds two ops: the head is one of the two.
      const a = kg.zeros(shape).attachGrad();
      backward(record(() => passThrough([a, a], (g) => [g, g.mul(2)])));
      expect(Array.from(a.grad!.toArray())).toEqual([3]);
      // The next pass still starts from 1.
      const v = kg.zeros(shape).attachGrad();
      backward(record(() => passThrough([v], (g) => [g.mul(5)])));
      expect(Array.from(v.grad!.toArray())).toEqual([5]);
    }
  });
});
