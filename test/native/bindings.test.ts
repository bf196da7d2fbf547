// Misuse of the bindings must raise a JS error (TypeError / RangeError / Error), never crash the
// process or reach a kernel with bad sizes.
import { BinaryOpCode, native } from '../../lib/native';
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

  test('size mismatches and bad numbers are RangeErrors', () => {
    expectThrows(() => native.gemm(false, false, 2, 2, 2, 1, empty(4), empty(4), 0, empty(3)), 'RangeError');
    expectThrows(() => native.gemm(false, false, -1, 2, 2, 1, empty(4), empty(4), 0, empty(4)), 'RangeError');
    expectThrows(() => native.gemm(false, false, 1.5, 2, 2, 1, empty(4), empty(4), 0, empty(4)), 'RangeError');
    expectThrows(() => native.gemm(false, false, 2, 2, 2, NaN, empty(4), empty(4), 0, empty(4)), 'RangeError');
    expectThrows(() => native.conv2dForward([1, 1, 4, 4, 1, 3, 3, 1, 1, 0, 0], empty(16), empty(9), null, empty(9)), 'RangeError');
    expectThrows(() => native.conv2dForward([1, 1, 2, 2, 1, 3, 3, 1, 1, 0, 0], empty(4), empty(9), null, empty(1)), 'RangeError');
    expectThrows(() => native.conv2dForward([1, 1, 4, 4, 1, 3, 3, 0, 1, 0, 0], empty(16), empty(9), null, empty(4)), 'RangeError');
    expectThrows(() => native.avgPool2dForward([1, 1, 2, 2, 3, 3, 1, 1], empty(4), empty(1)), 'RangeError');
    expectThrows(() => native.batchNormForwardTrain([2, 3, 1], empty(6), empty(3), empty(3), 1e-5, empty(6), empty(3), empty(2), empty(3)), 'RangeError');
    expectThrows(() => native.binary(BinaryOpCode.Add, [2, 3], [3, 1], [0, 1], empty(6), empty(2), empty(6)), 'RangeError');
    expectThrows(() => native.binary(7 as BinaryOpCode, [1], [1], [1], empty(1), empty(1), empty(1)), 'RangeError');
    expectThrows(() => native.binary(BinaryOpCode.Add, [1, 1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0], empty(1), empty(1), empty(1)), 'RangeError');
    expectThrows(() => native.softmaxXentForward(2, 0, empty(0), empty(2), empty(2)), 'RangeError');
    expectThrows(() => native.setCpuThreads(0), 'RangeError');
    expectThrows(() => new native.Storage(0, -1), 'RangeError');
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
    expectThrows(() => native.sgdUpdate(0.1, 0.9, 0, empty(3), empty(3), null), 'TypeError');
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
