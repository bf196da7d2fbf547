// Softmax cross-entropy, forward and backward, including logits large enough to overflow a naive
// exp.
import { native } from '../../lib/native';
import { Rng, disposeAll, empty, expectClose, softmaxXentRef, store } from './reference';

afterEach(disposeAll);

function check(n: number, k: number, logits: Float32Array, labels: Float32Array, dloss: Float32Array): void {
  const loss = empty(n);
  native.softmaxXentForward(n, k, store(logits), store(labels), loss);
  const dlogits = empty(n * k);
  native.softmaxXentBackward(n, k, store(logits), store(labels), store(dloss), dlogits);
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
    native.softmaxXentBackward(n, k, store(rng.array(n * k, -3, 3)), store(labelsFor(rng, n, k)), store(new Float32Array(n).fill(1)), dlogits);
    const g = dlogits.read();
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < k; j++) s += g[i * k + j];
      expect(Math.abs(s)).toBeLessThan(1e-6);
    }
  });
});
