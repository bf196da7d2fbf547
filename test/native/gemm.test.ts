// GEMM against a float64 reference: every transpose combination, alpha/beta, odd and degenerate
// sizes, and sizes that cross the kernel's register and cache blocking (6 x 16 tiles, k blocks of at most 512).
// Then the dense layer's linearForward (the GEMM with its bias added where it writes y): against
// float64, and bitwise against the GEMM followed by a separate addition.
import { BinaryOpCode, native } from '../../lib/native';
import { Rng, bitwiseEqual, disposeAll, empty, expectClose, gemmRef, store, withThreads } from './reference';

afterEach(disposeAll);

function check(rng: Rng, transA: boolean, transB: boolean, m: number, n: number, k: number, alpha: number, beta: number): void {
  const A = rng.array(m * k);
  const B = rng.array(k * n);
  const C0 = rng.array(m * n);
  // beta == 0 must ignore C entirely, even NaN garbage.
  const C = beta === 0 ? empty(m * n, NaN) : store(C0);
  native.gemm(transA, transB, m, n, k, alpha, store(A), store(B), beta, C);
  const ref = gemmRef(transA, transB, m, n, k, alpha, A, B, beta, C0);
  expectClose(C.read(), ref.value, { rtol: 2e-6 * Math.sqrt(k + 1), atol: 1e-6, scale: ref.scale },
    `gemm(${transA}, ${transB}, m=${m}, n=${n}, k=${k}, alpha=${alpha}, beta=${beta})`);
}

describe('gemm', () => {
  const combos: Array<[boolean, boolean]> = [[false, false], [false, true], [true, false], [true, true]];

  test.each(combos)('transA=%s transB=%s on odd sizes with alpha and beta', (ta, tb) => {
    const rng = new Rng(ta ? (tb ? 1 : 2) : tb ? 3 : 4);
    for (const [m, n, k] of [[1, 1, 1], [3, 7, 13], [7, 33, 5], [13, 17, 1], [6, 16, 512], [7, 17, 513], [33, 3, 300]]) {
      check(rng, ta, tb, m, n, k, 1, 0);
      check(rng, ta, tb, m, n, k, -0.75, 0.5);
    }
  });

  test.each(combos)('transA=%s transB=%s on blocking-crossing sizes', (ta, tb) => {
    const rng = new Rng(17);
    check(rng, ta, tb, 101, 130, 530, 1, 0); // several k blocks, partial tiles
    check(rng, ta, tb, 19, 48, 1100, 1, 0.5); // three k blocks adding onto whole tiles, C scaled by the first
    check(rng, ta, tb, 200, 35, 64, 2, -1); // several row blocks (kMC = 96)
  });

  test('random shapes', () => {
    const rng = new Rng(99);
    for (let t = 0; t < 12; t++) {
      const m = rng.pick([1, 2, 5, 6, 7, 12, 13, 31, 64]);
      const n = rng.pick([1, 3, 15, 16, 17, 33, 50]);
      const k = rng.pick([1, 2, 9, 16, 33, 100]);
      check(rng, rng.next() < 0.5, rng.next() < 0.5, m, n, k, rng.uniform(-2, 2), rng.pick([0, 1, 0.3]));
    }
  });

  test('the tutorial network shapes', () => {
    const rng = new Rng(5);
    check(rng, false, false, 64, 128, 800, 1, 0); // fc forward
    check(rng, true, false, 800, 128, 64, 1, 0); // weight gradient
    check(rng, false, true, 64, 800, 128, 1, 0); // input gradient
  });

  /** Whether C's first `few` columns are bitwise the same when B has `many` columns (one thread). */
  function firstColumnsAgree(rng: Rng, m: number, k: number, few: number, many: number): boolean {
    const A = rng.array(m * k), Bmany = rng.array(k * many);
    const Bfew = new Float32Array(k * few);
    for (let p = 0; p < k; p++) Bfew.set(Bmany.subarray(p * many, p * many + few), p * few);
    const [cFew, cMany] = withThreads(1, () => [few, many].map((n) => {
      const C = empty(m * n, NaN);
      native.gemm(false, false, m, n, k, 1, store(A), store(n === few ? Bfew : Bmany), 0, C);
      return C.read();
    }));
    const head = new Float32Array(m * few);
    for (let i = 0; i < m; i++) head.set(cMany.subarray(i * many, i * many + few), i * few);
    return bitwiseEqual(cFew, head);
  }

  test('a micro-panel of B gives the same bits whichever group of panels the kernel computes it in', () => {
    // B's micro-panels (16 columns) go through the micro-kernel up to four at a time, the last
    // group holding what is left: C's first `panels` panels must not depend on how many follow.
    // A is read in place with up to 16 panels and packed with more.
    const rng = new Rng(37);
    for (const [m, k] of [[13, 300], [50, 41], [7, 9]]) {
      for (const panels of [1, 2, 3, 4, 5]) expect(firstColumnsAgree(rng, m, k, 16 * panels, 16 * (panels + 3) + 7)).toBe(true);
    }
    for (const panels of [17, 18, 19, 20]) expect(firstColumnsAgree(rng, 200, 600, 16 * panels, 16 * 22)).toBe(true);
  });

  test('A read in place (few columns of C) and packed (many) give the same bits', () => {
    // With at most 16 micro-panels of 16 columns the micro-kernel reads a row-major A where it lies;
    // with more, from packed panels. C's first columns must not depend on how many follow.
    const rng = new Rng(31);
    for (const [m, k] of [[13, 300], [50, 500], [1, 7]]) expect(firstColumnsAgree(rng, m, k, 16 * 16, 16 * 17 + 5)).toBe(true);
  });

  test('one or two rows times a transposed B (a dense layer at batch 1 or 2): the dot-product path', () => {
    const rng = new Rng(23);
    for (const m of [1, 2]) {
      for (const n of [1, 3, 4, 5, 17, 128]) {
        for (const k of [1, 7, 8, 15, 16, 17, 800]) check(rng, false, true, m, n, k, rng.uniform(-2, 2), rng.pick([0, 1, 0.3]));
      }
    }
    check(rng, false, true, 1, 8192, 1024, 1, 0); // enough work for every thread
    check(rng, false, true, 3, 10, 100, 1, 0); // three rows: the packed path again
  });

  test('k = 0 scales C by beta; beta = 0 then gives zeros', () => {
    const C = store([1, 2, 3, 4, 5, 6]);
    native.gemm(false, false, 2, 3, 0, 1, empty(0), empty(0), 2, C);
    expect(Array.from(C.read())).toEqual([2, 4, 6, 8, 10, 12]);
    const D = empty(6, NaN);
    native.gemm(false, false, 2, 3, 0, 1, empty(0), empty(0), 0, D);
    expect(Array.from(D.read())).toEqual([0, 0, 0, 0, 0, 0]);
  });

  test('m = 0 or n = 0 is a no-op', () => {
    native.gemm(false, false, 0, 5, 3, 1, empty(0), store(new Float32Array(15)), 0, empty(0));
    native.gemm(true, true, 4, 0, 3, 1, store(new Float32Array(12)), empty(0), 0, empty(0));
  });
});

/** y = x w^T + bias through linearForward, and through gemm then a broadcast add. */
function linearBothWays(rng: Rng, m: number, n: number, k: number, withBias: boolean) {
  const x = rng.array(m * k);
  const w = rng.array(n * k);
  const b = rng.array(n, -3, 3);
  const fused = empty(m * n);
  native.linearForward(m, n, k, store(x), store(w), withBias ? store(b) : null, fused);
  const unfused = empty(m * n);
  native.gemm(false, true, m, n, k, 1, store(x), store(w), 0, unfused);
  if (withBias) native.binary(BinaryOpCode.Add, [m, n], [n, 1], [0, 1], unfused, store(b), unfused);
  const ref = gemmRef(false, true, m, n, k, 1, x, w, 0, new Float32Array(m * n));
  if (withBias) {
    ref.value.forEach((v, i) => (ref.value[i] = v + b[i % n]));
    ref.scale.forEach((v, i) => (ref.scale[i] = v + Math.abs(b[i % n])));
  }
  return { fused: fused.read(), unfused: unfused.read(), ref };
}

describe('linearForward', () => {
  // One or two rows (the dot-product path), odd sizes, several k blocks (k > 512) and row blocks,
  // enough work for several threads.
  const shapes: Array<[number, number, number]> = [
    [1, 1, 1], [1, 17, 800], [2, 5, 9], [3, 7, 13], [7, 33, 5], [37, 19, 50], [101, 130, 530], [200, 35, 64], [64, 128, 800],
  ];
  test.each(shapes)('(%i x %i x %i) against float64, with and without bias, and bitwise gemm + add', (m, n, k) => {
    const rng = new Rng(m * 1000 + n + k);
    for (const withBias of [true, false]) {
      const { fused, unfused, ref } = linearBothWays(rng, m, n, k, withBias);
      expectClose(fused, ref.value, { rtol: 2e-6 * Math.sqrt(k + 1), atol: 1e-6, scale: ref.scale },
        `linearForward(${m}, ${n}, ${k}) bias=${withBias}`);
      expect(bitwiseEqual(fused, unfused)).toBe(true);
    }
  });

  test('the same bits on one thread and on all of them', () => {
    const x = new Rng(7).array(96 * 700);
    const w = new Rng(8).array(150 * 700);
    const b = new Rng(9).array(150);
    const run = () => {
      const y = empty(96 * 150);
      native.linearForward(96, 150, 700, store(x), store(w), store(b), y);
      return y.read();
    };
    expect(bitwiseEqual(withThreads(1, run), run())).toBe(true);
  });

  test('k = 0: y is the bias, or zeros without one', () => {
    const y = empty(6);
    native.linearForward(2, 3, 0, empty(0), empty(0), store([1, -2, 0.5]), y);
    expect(Array.from(y.read())).toEqual([1, -2, 0.5, 1, -2, 0.5]);
    const z = empty(6);
    native.linearForward(2, 3, 0, empty(0), empty(0), null, z);
    expect(Array.from(z.read())).toEqual([0, 0, 0, 0, 0, 0]);
  });

  test('m = 0 or n = 0 is a no-op', () => {
    native.linearForward(0, 5, 3, empty(0), store(new Float32Array(15)), store(new Float32Array(5)), empty(0));
    native.linearForward(4, 0, 3, store(new Float32Array(12)), empty(0), null, empty(0));
  });
});

describe('linearBackwardWeight', () => {
  // dw = dyᵀ x and, when asked for, db = the column sums of dy: odd sizes, long batches, k = 0
  // (db alone), an empty batch (zeros).
  const shapes: Array<[number, number, number]> = [[1, 1, 1], [7, 3, 5], [64, 100, 80], [300, 10, 17], [9, 4, 0], [0, 5, 3]];
  test.each(shapes)('(%i x %i x %i) against float64, with and without db', (m, n, k) => {
    const rng = new Rng(m * 31 + n * 7 + k);
    const dy = rng.array(m * n);
    const x = rng.array(m * k);
    const ref = gemmRef(true, false, n, k, m, 1, dy, x, 0, new Float32Array(n * k));
    const dbRef = new Float64Array(n), dbScale = new Float64Array(n);
    dy.forEach((v, i) => {
      dbRef[i % n] += v;
      dbScale[i % n] += Math.abs(v);
    });
    const dw = empty(n * k, NaN), db = empty(n, NaN), alone = empty(n * k, NaN);
    native.linearBackwardWeight(m, n, k, store(dy), store(x), dw, db);
    native.linearBackwardWeight(m, n, k, store(dy), store(x), alone, null);
    expectClose(dw.read(), ref.value, { rtol: 2e-6 * Math.sqrt(m + 1), atol: 1e-6, scale: ref.scale }, `dw(${m}, ${n}, ${k})`);
    expectClose(db.read(), dbRef, { rtol: 2e-6 * Math.sqrt(m + 1), atol: 1e-6, scale: dbScale }, `db(${m}, ${n}, ${k})`);
    expect(bitwiseEqual(dw.read(), alone.read())).toBe(true);
  });

  test('refuses a db of the wrong size', () => {
    expect(() => native.linearBackwardWeight(2, 3, 2, empty(6), empty(4), empty(6), empty(2))).toThrow(/linearBackwardWeight: db has 2 elements/);
  });
});
