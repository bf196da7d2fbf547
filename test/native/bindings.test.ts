// Misuse of the bindings must raise a JS error (TypeError / RangeError / Error), never crash the
// process or reach a kernel with bad sizes.
import { BinaryOpCode, ConvShapeArg, native } from '../../lib/native';
import { disposeAll, empty, store } from './reference';

afterEach(disposeAll);

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const loose = native as any;

/**
 * Expects f to throw an error of the given class, by name: the addon creates its errors in Node's
 * main realm, while jest runs tests in a vm context with its own TypeError etc., so
 * `toThrow(TypeError)` (an instanceof check) cannot match them.
 */
function expectThrows(f: () => unknown, kind: 'TypeError' | 'RangeError' | 'Error', message?: RegExp): void {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeDefined();
  const err = caught as Error;
  expect(err.constructor.name).toBe(kind);
  expect(err.message).toMatch(message ?? /kernelgrad|Storage/);
}

describe('binding argument checks', () => {
  test('wrong argument count is a TypeError', () => {
    expectThrows(() => loose.gemm(false, false, 1, 1, 1, 1, empty(1), empty(1), 0), 'TypeError');
    expectThrows(() => loose.reluForward(empty(1)), 'TypeError');
    expectThrows(() => loose.batchNormForwardTrain(), 'TypeError');
  });

  test('wrong argument types are TypeErrors', () => {
    expectThrows(() => loose.gemm(0, false, 1, 1, 1, 1, empty(1), empty(1), 0, empty(1)), 'TypeError');
    expectThrows(() => loose.gemm(false, false, '1', 1, 1, 1, empty(1), empty(1), 0, empty(1)), 'TypeError');
    expectThrows(() => loose.gemm(false, false, 1, 1, 1, 1, new Float32Array(1), empty(1), 0, empty(1)), 'TypeError');
    expectThrows(() => loose.conv2dForward('shape', empty(1), empty(1), null, empty(1)), 'TypeError');
    expectThrows(() => loose.fill({}, 1), 'TypeError');
    expectThrows(() => loose.copy(empty(2), [0, 0]), 'TypeError');
  });

  test('linearForward: each argument checked, by name', () => {
    const x = () => empty(6), w = () => empty(12), y = () => empty(8);  // m = 2, n = 4, k = 3
    expectThrows(() => loose.linearForward(2, 4, 3, x(), w(), null), 'TypeError', /linearForward: expected 7 arguments/);
    expectThrows(() => loose.linearForward('2', 4, 3, x(), w(), null, y()), 'TypeError', /linearForward: m must be a number/);
    expectThrows(() => loose.linearForward(2, 4, -3, x(), w(), null, y()), 'RangeError', /linearForward: k must be an integer/);
    expectThrows(() => loose.linearForward(2, 4, 3, new Float32Array(6), w(), null, y()), 'TypeError', /linearForward: x must be a Storage/);
    expectThrows(() => loose.linearForward(2, 4, 3, x(), w(), 0, y()), 'TypeError', /linearForward: bias must be a Storage/);
    expectThrows(() => native.linearForward(2, 4, 3, empty(5), w(), null, y()), 'RangeError', /linearForward: x has 5 elements/);
    expectThrows(() => native.linearForward(2, 4, 3, x(), empty(3), null, y()), 'RangeError', /linearForward: w has 3 elements/);
    expectThrows(() => native.linearForward(2, 4, 3, x(), w(), empty(3), y()), 'RangeError', /linearForward: bias has 3 elements/);
    expectThrows(() => native.linearForward(2, 4, 3, x(), w(), null, empty(9)), 'RangeError', /linearForward: y has 9 elements/);
    expectThrows(() => native.linearForward(2 ** 30, 2 ** 30, 2 ** 30, x(), w(), null, y()), 'RangeError', /linearForward: the sizes of x/);
    const disposed = empty(4);
    disposed.dispose();
    expectThrows(() => native.linearForward(2, 4, 3, x(), w(), disposed, y()), 'Error', /linearForward: bias was disposed/);
  });

  test('size mismatches and bad numbers are RangeErrors', () => {
    expectThrows(() => native.gemm(false, false, 2, 2, 2, 1, empty(4), empty(4), 0, empty(3)), 'RangeError');
    expectThrows(() => native.gemm(false, false, -1, 2, 2, 1, empty(4), empty(4), 0, empty(4)), 'RangeError');
    expectThrows(() => native.gemm(false, false, 1.5, 2, 2, 1, empty(4), empty(4), 0, empty(4)), 'RangeError');
    expectThrows(() => native.gemm(false, false, 2, 2, 2, NaN, empty(4), empty(4), 0, empty(4)), 'RangeError');
    expectThrows(() => native.conv2dForward([1, 1, 4, 4, 1, 3, 3, 1, 1, 0, 0, 1], empty(16), empty(9), null, empty(9)), 'RangeError');
    expectThrows(() => native.conv2dForward([1, 1, 2, 2, 1, 3, 3, 1, 1, 0, 0, 1], empty(4), empty(9), null, empty(1)), 'RangeError');
    expectThrows(() => native.conv2dForward([1, 1, 4, 4, 1, 3, 3, 0, 1, 0, 0, 1], empty(16), empty(9), null, empty(4)), 'RangeError');
    expectThrows(() => native.avgPool2dForward([1, 1, 2, 2, 3, 3, 1, 1], empty(4), empty(1)), 'RangeError');
    expectThrows(() => native.batchNormForwardTrain([2, 3, 1], empty(6), empty(3), empty(3), 1e-5, empty(6), empty(3), empty(3), empty(2), empty(3), null, null, 0, false, null, false, null, 0), 'RangeError');
    expectThrows(() => native.binary(BinaryOpCode.Add, [2, 3], [3, 1], [0, 1], empty(6), empty(2), empty(6)), 'RangeError');
    expectThrows(() => native.binary(7 as BinaryOpCode, [1], [1], [1], empty(1), empty(1), empty(1)), 'RangeError');
    expectThrows(() => native.binary(BinaryOpCode.Add, [1, 1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0], empty(1), empty(1), empty(1)), 'RangeError');
    expectThrows(() => native.softmaxXentForward(2, 0, empty(0), empty(2), empty(2)), 'RangeError');
    expectThrows(() => native.setCpuThreads(0), 'RangeError');
    expectThrows(() => new native.Storage(0, -1), 'RangeError');
  });

  test('the training forward\'s running update: each bad argument named, before any kernel runs', () => {
    // (n, c, l) = (3, 2, 1); the update arguments as a complete, valid set, then one of them wrong.
    const call = (fused: boolean, update: Partial<{ mean: unknown; variance: unknown; momentum: unknown; count: unknown; cumulative: unknown; status: unknown; offset: unknown }>, shape = [3, 2, 1]) => {
      const u = { mean: store([0, 0]), variance: store([1, 1]), momentum: 0.9, count: store([0]), cumulative: false, status: empty(4), offset: 2, ...update };
      const fn = fused ? loose.batchNormReluForwardTrain : loose.batchNormForwardTrain;
      const m = shape[0] * shape[1] * shape[2];
      return () => fn(shape, store(new Array(m).fill(1).map((_, i) => i)), store([1, 1]), store([0, 0]), 1e-5, empty(m), empty(2), empty(2), empty(2), null,
        u.mean, u.variance, u.momentum, false, u.count, u.cumulative, u.status, u.offset);
    };
    for (const fused of [false, true]) {
      const name = fused ? 'batchNormReluForwardTrain' : 'batchNormForwardTrain';
      call(fused, {})(); // valid
      const prefix = (rest: string) => new RegExp(`kernelgrad\\.${name}: ${rest}`);
      expectThrows(call(fused, { variance: null }), 'TypeError', prefix('give runningMean and runningVar together, or neither'));
      expectThrows(call(fused, { mean: null }), 'TypeError', prefix('give runningMean and runningVar together'));
      expectThrows(call(fused, { mean: store([0, 0, 0]) }), 'RangeError', prefix('runningMean has 3 elements, the shapes need 2'));
      expectThrows(call(fused, { variance: store([1]) }), 'RangeError', prefix('runningVar has 1 elements, the shapes need 2'));
      expectThrows(call(fused, { count: store([0, 0]) }), 'RangeError', prefix('numBatchesTracked has 2 elements, the shapes need 1'));
      expectThrows(call(fused, { mean: null, variance: null }), 'TypeError', prefix('numBatchesTracked counts the updates of runningMean and runningVar'));
      expectThrows(call(fused, { count: null, cumulative: true }), 'TypeError', prefix('cumulative averaging reads numBatchesTracked'));
      expectThrows(call(fused, { momentum: 1.5 }), 'RangeError', prefix('momentum must be in \\[0, 1\\], got 1.5'));
      expectThrows(call(fused, { momentum: NaN }), 'RangeError', prefix('momentum must be finite'));
      expectThrows(call(fused, { offset: 3 }), 'RangeError', prefix('statusOffset 3 and 2 channels reach past the 4 elements of status'));
      expectThrows(call(fused, { offset: 2 ** 53 }), 'RangeError', prefix('statusOffset'));
      expectThrows(call(fused, { offset: -1 }), 'RangeError', prefix('statusOffset must be an integer'));
      expectThrows(call(fused, { status: store([0]), offset: 0 }), 'RangeError', prefix('statusOffset 0 and 2 channels reach past the 1 elements of status'));
      expectThrows(call(fused, { status: [0, 0, 0, 0] }), 'TypeError', prefix('status must be a Storage'));
      expectThrows(call(fused, {}, [1, 2, 1]), 'RangeError', prefix('running statistics and a status need at least 2 values per channel, got n \\* l = 1'));
    }
  });

  test('sizes whose products wrap in int64 are RangeErrors, not a kernel run on an empty storage', () => {
    const big = 2 ** 32;
    const wraps = /multiply to more than 2\^53/;
    expectThrows(() => native.gemm(false, false, big, big, big, 1, empty(0), empty(0), 0, empty(0)), 'RangeError', wraps);
    expectThrows(() => native.reduceSum(big, big, big, 1, empty(0), empty(0)), 'RangeError', wraps);
    expectThrows(() => native.softmaxXentForward(2 ** 16, 2 ** 48, empty(0), store([0]), empty(2 ** 16)), 'RangeError', wraps);
    expectThrows(() => native.softmaxXentBackward(2 ** 16, 2 ** 48, empty(0), empty(2 ** 16), empty(2 ** 16), 1, empty(0)), 'RangeError', wraps);
    expectThrows(() => native.argmaxRows(2 ** 16, 2 ** 48, empty(0), empty(2 ** 16)), 'RangeError', wraps);
    expectThrows(() => native.avgPool2dForward([big, big, 4, 4, 2, 2, 2, 2], empty(0), empty(0)), 'RangeError', wraps);
    expectThrows(() => native.conv2dForward([big, big, 4, 4, 1, 3, 3, 1, 1, 0, 0, 1], empty(0), empty(9), null, empty(0)), 'RangeError', wraps);
    expectThrows(() => native.conv2dBackwardWeight([2 ** 16, 1, 2 ** 24, 2 ** 24, 1, 1, 1, 1, 1, 0, 0, 1], empty(0), empty(0), empty(1), null), 'RangeError', wraps);
    expectThrows(() => native.batchNormForwardInfer([big, 1, big], empty(0), empty(1), empty(1), empty(1), empty(1), 1e-5, empty(0)), 'RangeError', wraps);
    // (2^11 + 1 - 1) * 2^53 = 2^64: a stride check that wraps would accept a 1-element b.
    expectThrows(() => native.binary(BinaryOpCode.Add, [2 ** 11 + 1], [1], [2 ** 53], empty(2 ** 11 + 1), empty(1), empty(2 ** 11 + 1)), 'RangeError');
  });

  test('every size past 2^53 is refused, with the value in the message', () => {
    expectThrows(() => native.gemm(false, false, 2 ** 60, 1, 1, 1, empty(1), empty(1), 0, empty(1)), 'RangeError', /m must be an integer in \[0, 2\^53\], got 1152921504606846976/);
    expectThrows(() => native.conv2dForward([1, 1, 4, 4, 1, 3, 3, 1, 1, 2 ** 62, 0, 1], empty(16), empty(9), null, empty(4)), 'RangeError', /shape\[9\]/);
    expectThrows(() => new native.Storage(NaN as 0, 1), 'RangeError');
    expectThrows(() => new native.Storage(0, Infinity), 'RangeError');
  });

  test('conv2d groups: at least 1, dividing both channel counts, and the weight sized per group', () => {
    const shape = (c: number, k: number, groups: number): ConvShapeArg => [1, c, 4, 4, k, 3, 3, 1, 1, 0, 0, groups];
    const divide = /groups \(\d+\) must be at least 1 and divide both the input channels/;
    expectThrows(() => native.conv2dForward(shape(2, 2, 0), empty(32), empty(18), null, empty(8)), 'RangeError', divide);
    expectThrows(() => native.conv2dForward(shape(3, 2, 2), empty(48), empty(18), null, empty(8)), 'RangeError', /input channels \(3\)/);
    expectThrows(() => native.conv2dBackwardData(shape(4, 3, 2), empty(12), empty(54), empty(64)), 'RangeError', /output channels \(3\)/);
    expectThrows(() => native.conv2dBackwardBias(shape(4, 4, 2 ** 53), empty(16), empty(4)), 'RangeError', divide);
    expectThrows(() => native.conv2dBackwardWeight([1, 1, 4, 4, 1, 3, 3, 1, 1, 0, 0, -1], empty(16), empty(4), empty(9), null), 'RangeError', /shape\[11\]/);
    expectThrows(() => loose.conv2dForward([1, 1, 4, 4, 1, 3, 3, 1, 1, 0, 0], empty(16), empty(9), null, empty(4)), 'RangeError', /12 entries/);
    // The weight holds k * c / groups filters' worth: the ungrouped size is refused.
    expectThrows(() => native.conv2dForward(shape(4, 6, 2), empty(64), empty(6 * 4 * 9), null, empty(24)), 'RangeError', /w has 216 elements, the shapes need 108/);
    expectThrows(() => native.conv2dBackwardWeight(shape(4, 6, 2), empty(64), empty(24), empty(6 * 4 * 9), null), 'RangeError', /dw has 216 elements/);
    // Groups as large as the sizes: the size checks still hold.
    expectThrows(() => native.conv2dForward([0, 2 ** 52, 1, 1, 2 ** 52, 1, 1, 1, 1, 0, 0, 2 ** 52], empty(0), empty(0), null, empty(0)), 'RangeError', /w has 0 elements, the shapes need 4503599627370496/);
  });

  test('an empty batch gives zero weight and bias gradients, whatever its other sizes', () => {
    const shape: ConvShapeArg = [0, 1, 2 ** 20, 2 ** 20, 2, 1, 1, 1, 1, 0, 0, 1];
    const dw = store([5, 5]);
    const db = store([5, 5]);
    native.conv2dBackwardWeight(shape, empty(0), empty(0), dw, null);
    native.conv2dBackwardBias(shape, empty(0), db);
    expect(Array.from(dw.read())).toEqual([0, 0]);
    expect(Array.from(db.read())).toEqual([0, 0]);
  });

  test('labels that are not class indices are RangeErrors naming the row and the value', () => {
    const logits = store([0.5, -1, 2, 0.25, 3, -2]);
    for (const bad of [1e9, -1e9, NaN, 3, 0.5, Infinity]) {
      const value = new RegExp(`labels\\[1\\] is ${String(bad).replace('+', '\\+')}, not a class index in \\[0, 3\\)`);
      expectThrows(() => native.softmaxXentForward(2, 3, logits, store([0, bad]), empty(2)), 'RangeError', value);
      expectThrows(() => native.softmaxXentBackward(2, 3, logits, store([0, bad]), store([1, 1]), 1, empty(6)), 'RangeError', value);
    }
    const loss = empty(2);
    native.softmaxXentForward(2, 3, logits, store([2, 0]), loss);
    expect(Array.from(loss.read()).every(Number.isFinite)).toBe(true);
  });

  test('more CPU threads than any machine runs is a RangeError, and the kernels still run', () => {
    const before = native.cpuThreads();
    expectThrows(() => native.setCpuThreads(1e6), 'RangeError', /at most 1024/);
    expect(native.cpuThreads()).toBe(before);
    const y = empty(4096);
    native.fill(y, 2);
    expect(y.read()[4095]).toBe(2);
  });

  test('the CUDA runtime calls are harmless without a GPU', () => {
    native.cudaSynchronize();
    native.cudaEmptyCache();
    expect(native.cudaMemoryStats().allocated).toBeGreaterThanOrEqual(0);
  });

  test('a disposed storage is an Error, and reading it too', () => {
    const x = empty(4);
    x.dispose();
    expect(x.disposed).toBe(true);
    expectThrows(() => native.reluForward(x, empty(4)), 'Error');
    expectThrows(() => native.fill(x, 0), 'Error', /disposed/);
    expectThrows(() => x.read(), 'Error', /disposed/);
    x.dispose(); // twice is harmless
  });

  test('momentum without a velocity buffer is refused', () => {
    expectThrows(() => native.sgdUpdate(0.1, 0.9, 0, false, empty(3), empty(3), null), 'TypeError');
    expectThrows(() => loose.sgdUpdate(0.1, 0.9, 0, 1, empty(3), empty(3), empty(3)), 'TypeError', /nesterov must be a boolean/);
    const p = empty(3);
    expectThrows(() => native.sgdUpdate(0.1, 0, 0, false, p, p, null), 'TypeError', /param, grad and velocity must be different storages/);
    expectThrows(() => native.sgdUpdate(0.1, 0.9, 0, false, p, empty(3), p), 'TypeError', /different storages/);
  });

  test('adamUpdate: sizes, numbers and aliased buffers are refused', () => {
    const adam = (...s: Array<ReturnType<typeof empty>>) => native.adamUpdate(0.9, 0.999, 1e-3, 1e-8, 0, 0, s[0], s[1], s[2], s[3]);
    expectThrows(() => adam(empty(3), empty(3), empty(3), empty(2)), 'RangeError', /adamUpdate: v has 2 elements, the shapes need 3/);
    expectThrows(() => adam(empty(3), empty(4), empty(3), empty(3)), 'RangeError', /adamUpdate: grad has 4/);
    expectThrows(() => native.adamUpdate(0.9, NaN, 1e-3, 1e-8, 0, 0, empty(1), empty(1), empty(1), empty(1)), 'RangeError', /beta2 must be finite/);
    const m = empty(3);
    expectThrows(() => adam(empty(3), empty(3), m, m), 'TypeError', /four different storages/);
    expectThrows(() => loose.adamUpdate(0.9, 0.999, 1e-3, 1e-8, 0, 0, empty(1), empty(1), empty(1)), 'TypeError', /expected 10 arguments/);
  });

  test('l2Norm: the index must fall inside out', () => {
    expectThrows(() => native.l2Norm(empty(3), empty(2), 2), 'RangeError', /index 2 is past the end of out \(2 elements\)/);
    expectThrows(() => native.l2Norm(empty(3), empty(2), -1), 'RangeError');
    expectThrows(() => native.l2Norm(empty(3), empty(2), 0.5), 'RangeError');
    const out = empty(2);
    native.l2Norm(store([3, 4]), out, 1);
    native.l2Norm(empty(0), out, 0);
    expect(Array.from(out.read())).toEqual([0, 5]);
  });

  test('storage read/write checks', () => {
    const s = empty(3);
    expectThrows(() => s.write(new Float32Array(2)), 'RangeError');
    expectThrows(() => loose.Storage.prototype.write.call(s, [1, 2, 3]), 'TypeError');
    expectThrows(() => store([1, 2]).copyFrom(store([1, 2, 3])), 'RangeError');
  });

  test('the addon still works after all that', () => {
    const y = empty(2);
    native.reluForward(store([-1, 1]), y);
    expect(Array.from(y.read())).toEqual([0, 1]);
  });
});
