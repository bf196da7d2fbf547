// Anomaly detection: the first op whose output or gradient holds a NaN or infinity is named, with
// the direction (forward or backward) and the shapes involved; without it nothing is checked.
import * as kg from '../../lib';

const { record, detectAnomaly } = kg.autograd;

describe('forward', () => {
  test('names the op that produced a NaN from finite inputs, with its shapes', () => {
    const w = kg.tensor([1, 0, 2], [1, 3]).attachGrad();
    const zero = kg.zeros([2, 3]);
    expect(() =>
      detectAnomaly(() => record(() => w.mul(zero).div(zero).sum())),
    ).toThrow('detectAnomaly: div (forward) produced NaN at index 0 in its output [2, 3] from finite inputs [2, 3], [2, 3]');
  });

  test('an infinity is caught too, and an input that already held one is reported as data', () => {
    const x = kg.tensor([1, 2]);
    expect(() => detectAnomaly(() => x.div(kg.tensor([1, 0])))).toThrow(/div \(forward\) produced Infinity at index 1 in its output \[2\]/);
    const bad = kg.tensor([1, Infinity]);
    expect(() => detectAnomaly(() => kg.nn.functional.relu(bad))).toThrow(
      /input 0 \[2\] of relu \(forward\) already holds Infinity at index 1; it was not computed by a recorded op/,
    );
  });

  test('batch norm in inference mode is checked even when nothing is recorded', () => {
    const x = kg.tensor([1, 2, 3, 4], [2, 2]);
    const opts = { training: false, runningMean: kg.zeros([2]), runningVar: kg.tensor([1, -1]) };
    expect(() => detectAnomaly(() => kg.nn.functional.batchNorm(x, kg.ones([2]), kg.zeros([2]), opts))).toThrow(
      /batchNorm \(forward\) produced NaN at index 1 in its output \[2, 2\] from finite inputs \[2, 2\], \[2\], \[2\], \[2\], \[2\]/,
    );
  });

  test('the record option does the same; outside anomaly mode nothing is checked', () => {
    const zero = kg.zeros([2]);
    expect(() => record(() => zero.div(zero), { detectAnomaly: true })).toThrow(/div \(forward\) produced NaN/);
    expect(Number.isNaN(record(() => zero.div(zero)).toArray()[0])).toBe(true);
    expect(kg.autograd.isDetectingAnomaly()).toBe(false);
  });
});

describe('backward', () => {
  test('names the op whose gradient became non-finite when the forward values were finite', () => {
    // The forward values are finite (up to 4e20), but the headGrad 1e30 times the other factor
    // (1e10) overflows float32 in mul's gradient.
    const x = kg.tensor([1e-10, 2e-10]).attachGrad();
    const y = detectAnomaly(() => record(() => x.scale(1e20).mul(x.scale(1e20))));
    expect(() => y.backward(kg.full([2], 1e30))).toThrow(
      /detectAnomaly: mul \(backward\) produced Infinity at index 0 in the gradient of its input 0 \[2\], from a finite output gradient \[2\]; its inputs are \[2\], \[2\]/,
    );
    expect(x.grad).toBeNull();
  });

  test('a graph recorded under anomaly mode is checked in a backward run outside it', () => {
    const x = kg.tensor([3, 4]).attachGrad();
    const y = record(() => x.mul(x), { detectAnomaly: true });
    expect(() => y.backward(kg.tensor([NaN, 1]))).toThrow('detectAnomaly: the headGrad [2] given to backward holds NaN at index 0');
    const z = record(() => x.mul(x));
    z.backward(kg.tensor([NaN, 1])); // not in anomaly mode: silently NaN, as before
    expect(Number.isNaN(x.grad!.toArray()[0])).toBe(true);
  });

  test('a finite model trains unchanged under anomaly mode', () => {
    const w = kg.randn([3, 4], { seed: 1 }).attachGrad();
    const x = kg.randn([5, 4], { seed: 2 });
    const plain = record(() => kg.nn.functional.linear(x, w).relu().sum());
    plain.backward();
    const expected = w.grad!.toArray();
    w.grad = null;
    detectAnomaly(() => record(() => kg.nn.functional.linear(x, w).relu().sum()).backward());
    expect(w.grad!.toArray()).toEqual(expected);
  });
});
