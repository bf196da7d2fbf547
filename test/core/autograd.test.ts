// The tape: what is recorded, how gradients accumulate, and the sum convention.
import * as kg from '../../lib';

test('ops outside record build no graph', () => {
  const w = kg.ones([3]).attachGrad();
  const y = w.mul(2).sum();
  expect(y.tracksGrad).toBe(false);
  expect(() => y.backward()).toThrow(/does not depend on any tensor/);
});

test('backward on a vector is backward on the sum of its elements', () => {
  const w = kg.tensor([1, 2, 3]).attachGrad();
  kg.autograd.record(() => w.mul(w)).backward();
  expect(Array.from(w.grad!.toArray())).toEqual([2, 4, 6]);
});

test('gradients accumulate across backward calls until cleared', () => {
  const w = kg.tensor([1, -1]).attachGrad();
  kg.autograd.record(() => w.mul(3).sum()).backward();
  kg.autograd.record(() => w.mul(3).sum()).backward();
  expect(Array.from(w.grad!.toArray())).toEqual([6, 6]);
  w.grad = null;
  kg.autograd.record(() => w.mul(w).sum()).backward();
  expect(Array.from(w.grad!.toArray())).toEqual([2, -2]);
});

test('a headGrad weights the outputs and must match their shape', () => {
  const w = kg.tensor([1, 2]).attachGrad();
  const y = kg.autograd.record(() => w.mul(w));
  expect(() => y.backward(kg.ones([3]))).toThrow(/headGrad \[3\] must have the shape of the output \[2\]/);
  y.backward(kg.tensor([10, 100]));
  expect(Array.from(w.grad!.toArray())).toEqual([20, 400]);
});

test('tensors without attachGrad get no gradient; pause stops recording', () => {
  const w = kg.tensor([2]).attachGrad();
  const c = kg.tensor([5]);
  const y = kg.autograd.record(() => {
    const frozen = kg.autograd.pause(() => w.mul(10));
    expect(frozen.tracksGrad).toBe(false);
    return w.mul(c).add(frozen);
  });
  y.backward();
  expect(w.grad!.item()).toBe(5);
  expect(c.grad).toBeNull();
});

test('a deep chain does not overflow the stack', () => {
  const w = kg.tensor([1]).attachGrad();
  const y = kg.autograd.record(() => {
    let h = w;
    for (let i = 0; i < 20000; i++) h = h.add(0);
    return h;
  });
  y.backward();
  expect(w.grad!.item()).toBe(1);
});

test('the graph is freed after backward unless retained', () => {
  const w = kg.tensor([3]).attachGrad();
  const y = kg.autograd.record(() => w.mul(w));
  y.backward(undefined, { retainGraph: true });
  y.backward();
  expect(w.grad!.item()).toBe(12);
  expect(() => y.backward()).toThrow(/the graph through mul was freed by an earlier backward\(\); pass \{ retainGraph: true \}/);
});
