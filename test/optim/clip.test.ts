// kg.optim.clipGradNorm and the l2Norm kernel under it, against norms computed in float64.
import * as kg from '../../lib';
import { native } from '../../lib/native';
import { disposeAll, empty, Rng, store, withThreads } from '../native/reference';
import { worstError } from './reference';

afterEach(disposeAll);

function norm64(...arrays: ArrayLike<number>[]): number {
  let s = 0;
  for (const a of arrays) for (let i = 0; i < a.length; i++) s += a[i] * a[i];
  return Math.sqrt(s);
}

describe('l2Norm (the kernel)', () => {
  test.each([1, 3, 17, 1000, 32769, 250001])('n = %i, to float32 rounding, the same for 1 and 4 threads', (n) => {
    const x = new Rng(n).array(n, -3, 3);
    const one = withThreads(1, () => {
      const out = empty(1);
      native.l2Norm(store(x), out, 0);
      return out.read()[0];
    });
    const four = withThreads(4, () => {
      const out = empty(1);
      native.l2Norm(store(x), out, 0);
      return out.read()[0];
    });
    expect(Math.abs(one - norm64(x)) / norm64(x)).toBeLessThan(1e-7);
    expect(four).toBe(one);
  });

  test('neither overflows for large entries nor loses small ones', () => {
    const out = empty(2);
    native.l2Norm(store([3e30, -4e30]), out, 0); // squares far beyond float32
    native.l2Norm(store([3e-30, 4e-30]), out, 1); // squares below float32's smallest
    const [big, small] = out.read();
    expect(big / 5e30).toBeCloseTo(1, 6);
    expect(small / 5e-30).toBeCloseTo(1, 6);
  });
});

describe('kg.optim.clipGradNorm', () => {
  function params(shapes: number[][], seed: number, scale = 1): { ps: kg.Tensor[]; grads: Float32Array[] } {
    const rng = new Rng(seed);
    const ps = shapes.map((s) => kg.zeros(s).attachGrad());
    const grads = ps.map((p) => rng.array(p.numel, -scale, scale));
    ps.forEach((p, i) => (p.grad = kg.tensor(grads[i], p.shape)));
    return { ps, grads };
  }
  const SHAPES = [[3, 5], [1], [2, 3, 7], [40001]];

  test('above maxNorm: returns the norm and scales every gradient to a total of maxNorm', () => {
    const { ps, grads } = params(SHAPES, 1);
    const want = norm64(...grads);
    const got = kg.optim.clipGradNorm(ps, 2.5);
    expect(Math.abs(got - want) / want).toBeLessThan(1e-6);
    const coef = 2.5 / (want + 1e-6);
    ps.forEach((p, i) => expect(worstError(p.grad!.toArray(), grads[i].map((g) => g * coef), 1e-6, 0)).toBeLessThanOrEqual(1));
    const after = norm64(...ps.map((p) => p.grad!.toArray()));
    expect(after / 2.5).toBeCloseTo(1, 5);
  });

  test('below maxNorm: returns the norm and changes nothing', () => {
    const { ps, grads } = params(SHAPES, 2, 0.001);
    const got = kg.optim.clipGradNorm(ps, 1e3);
    expect(Math.abs(got - norm64(...grads)) / norm64(...grads)).toBeLessThan(1e-6);
    ps.forEach((p, i) => expect(Array.from(p.grad!.toArray())).toEqual(Array.from(grads[i])));
  });

  test('zero gradients: norm 0, gradients unchanged, no NaN; parameters without grad are skipped', () => {
    const a = kg.zeros([5]).attachGrad();
    const b = kg.zeros([3]).attachGrad();
    a.grad = kg.zeros([5]);
    expect(kg.optim.clipGradNorm([a, b], 1)).toBe(0);
    expect(Array.from(a.grad.toArray())).toEqual([0, 0, 0, 0, 0]);
    expect(b.grad).toBeNull();
    expect(kg.optim.clipGradNorm([b], 1)).toBe(0);
  });

  test('a NaN or infinite gradient is a NonFiniteError naming the parameter, and nothing is scaled', () => {
    const a = kg.zeros([2]).attachGrad();
    const b = kg.zeros([3]).attachGrad();
    a.grad = kg.tensor([100, 100], [2]);
    b.grad = kg.tensor([1, Infinity, 1], [3]);
    expect(() => kg.optim.clipGradNorm([a, b], 1)).toThrow(kg.NonFiniteError);
    expect(() => kg.optim.clipGradNorm([a, b], 1)).toThrow(/^kg\.optim\.clipGradNorm: the gradient of parameter 1 \[3\] has norm Infinity .*no gradient was changed/);
    expect(Array.from(a.grad.toArray())).toEqual([100, 100]);
    b.grad = kg.tensor([1, NaN, 1], [3]);
    expect(() => kg.optim.clipGradNorm([a, b], 1)).toThrow(/has norm NaN/);
  });

  test.each<[string, () => unknown, ErrorConstructor, RegExp]>([
    ['maxNorm 0', () => kg.optim.clipGradNorm([kg.zeros([1]).attachGrad()], 0), RangeError, /^kg\.optim\.clipGradNorm: maxNorm must be a positive number, got 0/],
    ['maxNorm NaN', () => kg.optim.clipGradNorm([kg.zeros([1]).attachGrad()], NaN), RangeError, /maxNorm must be a positive number, got NaN/],
    ['a number as params', () => kg.optim.clipGradNorm(3 as never, 1), TypeError, /^kg\.optim\.clipGradNorm: params must be an array \(or iterable\) of tensors, got 3/],
    ['an array as a parameter', () => kg.optim.clipGradNorm([[1]] as never, 1), TypeError, /^kg\.optim\.clipGradNorm: parameter 0 is not a Tensor, got an array of length 1/],
    ['a parameter twice', () => {
      const p = kg.zeros([1]).attachGrad();
      return kg.optim.clipGradNorm([p, p], 1);
    }, RangeError, /^kg\.optim\.clipGradNorm: parameter 1 \[1\] appears more than once/],
  ])('%s', (_, call, type, message) => {
    expect(call).toThrow(type);
    expect(call).toThrow(message);
  });
});
