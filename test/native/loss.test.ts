// Softmax cross-entropy, forward and backward, including logits large enough to overflow a naive
// exp.
import { native } from '../../lib/native';
import { Rng, disposeAll, empty, expectClose, softmaxXentRef, store } from './reference';

afterEach(disposeAll);

function check(n: number, k: number, logits: Float32Array, labels: Float32Array, dloss: Float32Array): void {
  const loss = empty(n);
  native.softmaxXentForward(n, k, store(logits), store(labels), loss);
  const dlogits = empty(n * k);
  native.softmaxXentBackward(n, k, store(logits), store(labels), store(dloss), 1, dlogits);
  const ref = softmaxXentRef(n, k, logits, labels, dloss);
  expectClose(loss.read(), ref.loss, { rtol: 1e-6, atol: 1e-6 }, `loss n=${n} k=${k}`);
  expectClose(dlogits.read(), ref.dlogits, { rtol: 1e-5, atol: 1e-7 }, `dlogits n=${n} k=${k}`);
}

function labelsFor(rng: Rng, n: number, k: number): Float32Array {
  return Float32Array.from({ length: n }, () => rng.int(0, k - 1));
}

describe('softmax cross-entropy', () => {
  test('random logits, odd sizes', () => {
    const rng = new Rng(1);
    for (const [n, k] of [[1, 1], [1, 2], [7, 3], [64, 10], [33, 100], [3000, 13]]) {
      check(n, k, rng.array(n * k, -4, 4), labelsFor(rng, n, k), rng.array(n, 0, 2));
    }
  });

  test('logits of magnitude 1e4 stay finite', () => {
    const rng = new Rng(2);
    const n = 16;
    const k = 10;
    const logits = rng.array(n * k, -1e4, 1e4);
    logits[3] = 1e4; // a definite winner in row 0
    const labels = labelsFor(rng, n, k);
    const dloss = new Float32Array(n).fill(1 / n);
    const loss = empty(n);
    native.softmaxXentForward(n, k, store(logits), store(labels), loss);
    expect(loss.read().every((v) => Number.isFinite(v) && v >= 0)).toBe(true);
    check(n, k, logits, labels, dloss);
  });

  test('the gradient of each row sums to zero', () => {
    const rng = new Rng(3);
    const n = 5;
    const k = 7;
    const dlogits = empty(n * k);
    native.softmaxXentBackward(n, k, store(rng.array(n * k, -3, 3)), store(labelsFor(rng, n, k)), store(new Float32Array(n).fill(1)), 1, dlogits);
    const g = dlogits.read();
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < k; j++) s += g[i * k + j];
      expect(Math.abs(s)).toBeLessThan(1e-6);
    }
  });

  test('the summed and averaged loss, and their backward from one upstream value', () => {
    const rng = new Rng(4);
    for (const [n, k] of [[1, 1], [7, 3], [64, 10], [3000, 13]]) {
      const logits = rng.array(n * k, -4, 4);
      const labels = labelsFor(rng, n, k);
      const upstream = rng.array(1, 0.5, 2)[0];
      const ref = softmaxXentRef(n, k, logits, labels, new Float64Array(n).fill(1));
      const total = ref.loss.reduce((a, b) => a + b, 0);
      for (const scale of [1, 1 / n]) {
        const out = empty(1);
        const forOne = empty(n * k);
        native.softmaxXentForwardSum(n, k, store(logits), store(labels), scale, out, forOne);
        expectClose(out.read(), [total * scale], { rtol: 1e-6, atol: 1e-6 }, `sum n=${n} k=${k} scale=${scale}`);
        // The gradient the forward wrote for an upstream 1 is the backward's for 1, bit for bit.
        const backwardOne = empty(n * k);
        native.softmaxXentBackward(n, k, store(logits), store(labels), store(Float32Array.of(1)), scale, backwardOne);
        expect(Buffer.from(forOne.read().buffer).equals(Buffer.from(backwardOne.read().buffer))).toBe(true);
        const dlogits = empty(n * k);
        native.softmaxXentBackward(n, k, store(logits), store(labels), store(Float32Array.of(upstream)), scale, dlogits);
        const want = Array.from(ref.dlogits, (d) => d * upstream * scale);
        expectClose(dlogits.read(), want, { rtol: 1e-5, atol: 1e-8 }, `shared dloss n=${n} k=${k} scale=${scale}`);
      }
    }
  });

  test('the raw bindings name a dloss of the wrong size and a non-finite scale', () => {
    const logits = store(new Float32Array(6).fill(0.5));
    const labels = store(Float32Array.of(0, 2));
    expect(() => native.softmaxXentBackward(2, 3, logits, labels, store(new Float32Array(3)), 1, empty(6))).toThrow(
      /softmaxXentBackward: dloss has 3 elements, the shapes need 2 \(one per row\) or 1/,
    );
    expect(() => native.softmaxXentForwardSum(2, 3, logits, labels, NaN, empty(1), null)).toThrow(/softmaxXentForwardSum: scale must be finite/);
    expect(() => native.softmaxXentForwardSum(2, 3, logits, labels, 1, empty(2), null)).toThrow(/softmaxXentForwardSum: out has 2 elements/);
    expect(() => native.softmaxXentForwardSum(2, 3, logits, labels, 1, empty(1), empty(5))).toThrow(/softmaxXentForwardSum: grad has 5 elements/);
  });
});
