// Elementwise kernels: broadcasting binary ops (fast paths and the general strided path), fill,
// copy, axpby and ReLU.
import { BinaryOpCode, native } from '../../lib/native';
import { Rng, binaryRef, contiguousStrides, disposeAll, empty, expectClose, store } from './reference';

afterEach(disposeAll);

const ops: Array<[string, BinaryOpCode, (a: number, b: number) => number]> = [
  ['add', BinaryOpCode.Add, (a, b) => a + b],
  ['sub', BinaryOpCode.Sub, (a, b) => a - b],
  ['mul', BinaryOpCode.Mul, (a, b) => a * b],
  ['div', BinaryOpCode.Div, (a, b) => a / b],
];

/** Strides of an operand of shape `opShape` (1 = broadcast) read against the output shape. */
function broadcastStrides(opShape: number[]): number[] {
  const st = contiguousStrides(opShape);
  return opShape.map((d, i) => (d === 1 ? 0 : st[i]));
}

function checkBinary(rng: Rng, shape: number[], aShape: number[], bShape: number[]): void {
  const numel = (s: number[]) => s.reduce((p, d) => p * d, 1);
  const a = rng.array(numel(aShape), -2, 2);
  const b = rng.array(numel(bShape), 0.5, 2); // away from 0 for div
  const as = broadcastStrides(aShape);
  const bs = broadcastStrides(bShape);
  for (const [name, code, f] of ops) {
    const out = empty(numel(shape));
    native.binary(code, shape, as, bs, store(a), store(b), out);
    expectClose(out.read(), binaryRef(f, shape, as, bs, a, b), { rtol: 1e-6, atol: 0 }, `${name} ${JSON.stringify({ shape, aShape, bShape })}`);
  }
}

describe('binary', () => {
  test('same shape, contiguous (including large, split across threads)', () => {
    const rng = new Rng(1);
    checkBinary(rng, [7], [7], [7]);
    checkBinary(rng, [3, 5, 2], [3, 5, 2], [3, 5, 2]);
    checkBinary(rng, [100003], [100003], [100003]);
  });

  test('b broadcast over the last dim (bias) and over a channel', () => {
    const rng = new Rng(2);
    checkBinary(rng, [13, 33], [13, 33], [1, 33]); // (n, k) + (k)
    checkBinary(rng, [4, 3, 5, 7], [4, 3, 5, 7], [1, 3, 1, 1]); // per channel
    checkBinary(rng, [64, 20, 26, 26], [64, 20, 26, 26], [1, 20, 1, 1]);
    checkBinary(rng, [9, 4], [9, 4], [9, 1]); // per row
  });

  test('scalars and a broadcast', () => {
    const rng = new Rng(3);
    checkBinary(rng, [5, 6], [5, 6], [1, 1]);
    checkBinary(rng, [5, 6], [1, 1], [5, 6]);
    checkBinary(rng, [1], [1], [1]);
    checkBinary(rng, [], [], []);
    checkBinary(rng, [3, 1, 4], [3, 1, 1], [1, 1, 4]); // outer product
  });

  test('random broadcasts up to rank 6', () => {
    const rng = new Rng(4);
    for (let t = 0; t < 25; t++) {
      const rank = rng.int(1, 6);
      const shape = Array.from({ length: rank }, () => rng.pick([1, 2, 3, 5, 7]));
      const aShape = shape.map((d) => (rng.next() < 0.3 ? 1 : d));
      const bShape = shape.map((d) => (rng.next() < 0.4 ? 1 : d));
      checkBinary(rng, shape, aShape, bShape);
    }
  });

  test('general strides (a transposed view)', () => {
    const rng = new Rng(5);
    const a = rng.array(12);
    const b = rng.array(12);
    const out = empty(12);
    // out (4, 3) = a viewed transposed (a is stored 3 x 4) + b
    native.binary(BinaryOpCode.Add, [4, 3], [1, 4], [3, 1], store(a), store(b), out);
    expectClose(out.read(), binaryRef((x, y) => x + y, [4, 3], [1, 4], [3, 1], a, b), { rtol: 1e-7, atol: 0 });
  });

  test('empty shapes do nothing', () => {
    native.binary(BinaryOpCode.Mul, [3, 0], [0, 1], [0, 1], empty(1), empty(1), empty(0));
  });
});

describe('fill, copy, axpby, relu', () => {
  test('fill and copy', () => {
    for (const n of [0, 1, 7, 70001]) {
      const out = empty(n);
      native.fill(out, 2.5);
      expect(out.read().every((v) => v === 2.5)).toBe(true);
      const src = new Rng(n).array(n);
      const dst = empty(n);
      native.copy(store(src), dst);
      expect(Array.from(dst.read())).toEqual(Array.from(src));
    }
  });

  test('axpby, with beta = 0 ignoring NaN in y', () => {
    const rng = new Rng(6);
    for (const n of [1, 13, 65537]) {
      const x = rng.array(n);
      const y0 = rng.array(n);
      const y = store(y0);
      native.axpby(1.5, store(x), -0.5, y);
      expectClose(y.read(), Array.from(x, (v, i) => 1.5 * v - 0.5 * y0[i]), { rtol: 1e-6, atol: 1e-7 }, 'axpby');
      const z = empty(n, NaN);
      native.axpby(-2, store(x), 0, z);
      expectClose(z.read(), Array.from(x, (v) => -2 * v), { rtol: 0, atol: 0 }, 'axpby beta=0');
    }
  });

  test('relu forward and backward', () => {
    const rng = new Rng(7);
    for (const n of [1, 9, 40000]) {
      const x = rng.array(n);
      x[0] = 0;
      const dy = rng.array(n);
      const y = empty(n);
      native.reluForward(store(x), y);
      expect(Array.from(y.read())).toEqual(Array.from(x, (v) => (v > 0 ? v : 0)));
      const dx = empty(n);
      native.reluBackward(store(x), store(dy), dx);
      expect(Array.from(dx.read())).toEqual(Array.from(x, (v, i) => (v > 0 ? dy[i] : 0)));
    }
  });

  test('relu lets NaN through', () => {
    const y = empty(3);
    native.reluForward(store([NaN, -1, 2]), y);
    const out = y.read();
    expect(Number.isNaN(out[0])).toBe(true);
    expect(Array.from(out.slice(1))).toEqual([0, 2]);
  });
});
