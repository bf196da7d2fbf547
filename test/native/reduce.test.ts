// reduce_sum over (outer, r, inner) for all combinations of trivial and non-trivial axes, and
// argmax over rows.
import { native } from '../../lib/native';
import { Rng, argmaxRef, disposeAll, empty, expectClose, reduceSumRef, store } from './reference';

afterEach(disposeAll);

function check(rng: Rng, outer: number, r: number, inner: number, scale: number): void {
  const x = rng.array(outer * r * inner, -1, 3);
  const y = empty(outer * inner);
  native.reduceSum(outer, r, inner, scale, store(x), y);
  const ref = reduceSumRef(outer, r, inner, scale, x);
  // Accumulated in double: only the final rounding to float32 remains.
  expectClose(y.read(), ref.value, { rtol: 2e-7, atol: 1e-30, scale: ref.value }, `reduceSum(${outer}, ${r}, ${inner}, ${scale})`);
}

describe('reduceSum', () => {
  test('outer / inner combinations, odd sizes', () => {
    const rng = new Rng(1);
    for (const outer of [1, 3, 13]) for (const r of [1, 7, 33]) for (const inner of [1, 5, 17]) check(rng, outer, r, inner, 1);
  });

  test('scaled (a mean) and long reductions that are split into pieces', () => {
    const rng = new Rng(2);
    check(rng, 1, 100003, 1, 1 / 100003); // full reduction: r cut into pieces
    check(rng, 2, 30001, 3, 0.5); // few outputs: r cut into pieces
    check(rng, 1, 64, 128, 1); // a bias gradient
    check(rng, 7, 11, 2500, -2); // inner wider than one block
    check(rng, 4000, 9, 1, 1); // many short rows
  });

  test('accumulates in more than float precision', () => {
    // 1 followed by many tiny values: a float accumulator would drop every one of them.
    const n = 1 << 20;
    const x = new Float32Array(n).fill(1e-8);
    x[0] = 1;
    const y = empty(1);
    native.reduceSum(1, n, 1, 1, store(x), y);
    expect(y.read()[0]).toBe(Math.fround(1 + (n - 1) * Math.fround(1e-8)));
  });

  test('r = 0 gives zeros', () => {
    const y = empty(6);
    native.reduceSum(2, 0, 3, 1, empty(0), y);
    expect(Array.from(y.read())).toEqual([0, 0, 0, 0, 0, 0]);
  });
});

describe('argmaxRows', () => {
  test('random rows, ties resolved to the first maximum', () => {
    const rng = new Rng(3);
    for (const [n, k] of [[1, 1], [5, 3], [64, 10], [13, 33]]) {
      const x = rng.array(n * k);
      for (let i = 0; i < n; i += 2) x[i * k + k - 1] = x[i * k]; // a tie between first and last
      const out = empty(n);
      native.argmaxRows(n, k, store(x), out);
      expect(Array.from(out.read())).toEqual(Array.from(argmaxRef(n, k, x)));
    }
  });

  test('NaN counts as the maximum, the first one wins', () => {
    const out = empty(3);
    native.argmaxRows(3, 4, store([1, NaN, 5, NaN, NaN, 2, 3, 4, 1, 2, 3, 0]), out);
    expect(Array.from(out.read())).toEqual([1, 0, 2]);
  });
});
