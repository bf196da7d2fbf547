// Batch norm and non-finite values: a NaN or infinity in a training batch is reported, naming the
// channel, before it reaches the running statistics; values near the float32 limit still normalize.
import * as kg from '../../lib';
import { NonFiniteError } from '../../lib/non-finite';
import { Random } from '../../lib/random';

const F = kg.nn.functional;

function stats(c: number) {
  const runningMean = kg.tensor(Array.from({ length: c }, (_, i) => i * 0.5 - 1));
  const runningVar = kg.tensor(Array.from({ length: c }, (_, i) => 1 + i));
  return { runningMean, runningVar };
}

describe('a NaN or infinity in a training batch', () => {
  for (const shape of [[7, 3], [5, 3, 3, 2]]) {
    for (const bad of [NaN, Infinity, -Infinity]) {
      test(`${bad} in channel 2 of ${JSON.stringify(shape)} throws naming the channel, and the running statistics keep their values`, () => {
        const x = new Random(3).fillNormal(new Float32Array(shape.reduce((a, b) => a * b, 1)));
        const l = shape.length === 4 ? shape[2] * shape[3] : 1;
        x[(1 * 3 + 2) * l] = bad; // sample 1, channel 2
        const { runningMean, runningVar } = stats(3);
        const before = [runningMean.toArray(), runningVar.toArray()];
        const run = () => F.batchNorm(kg.tensor(x, shape), kg.ones([3]), kg.zeros([3]), { training: true, runningMean, runningVar });
        expect(run).toThrow(NonFiniteError);
        expect(run).toThrow(RangeError);
        expect(run).toThrow(new RegExp(`batchNorm: channel 2 of x \\[${shape.join(', ')}\\] has a batch mean of (NaN|-?Infinity): the batch holds NaN or infinite values; the running statistics were left unchanged`));
        expect([runningMean.toArray(), runningVar.toArray()]).toEqual(before);
        expect([runningMean.version, runningVar.version]).toEqual([0, 0]);
      });
    }
  }

  test('the module keeps its statistics and trains on with the next good batch', () => {
    const bn = new kg.nn.BatchNorm(2, { initRunning: 'zeroOne' });
    const good = kg.tensor([1, 2, 3, 6], [2, 2]);
    expect(() => bn.forward(kg.tensor([1, NaN, 3, 4], [2, 2]))).toThrow(/channel 1 of x \[2, 2\] has a batch mean of NaN/);
    expect(Array.from(bn.runningMean.toArray())).toEqual([0, 0]);
    expect(Array.from(bn.runningVar.toArray())).toEqual([1, 1]);
    bn.forward(good);
    expect(Array.from(bn.runningMean.toArray(), (v) => +v.toFixed(5))).toEqual([0.2, 0.4]);
  });

  test('a constant channel with eps 0 cannot be normalized and says so', () => {
    const x = kg.tensor([1, 5, 1, 6, 1, 7], [3, 2]);
    expect(() => F.pureBatchNorm(x, kg.ones([2]), kg.zeros([2]), 0)).toThrow(/channel 0 of x \[3, 2\] has zero variance and eps is 0/);
  });
});

describe('values near the float32 limit', () => {
  const cases: Array<[string, number[]]> = [
    ['[-1e38, 1e38]', [-1e38, 1e38, -1e38, 1e38]],
    ['[1e38, 3e38] around a mean of 2e38', [1e38, 3e38, 3e38, 1e38]],
    ['[-3e38, 3e38]', [3e38, -3e38, -3e38, 3e38]],
  ];
  for (const [name, values] of cases) {
    for (const shape of [[4, 1], [2, 1, 1, 2]]) {
      test(`${name} ${JSON.stringify(shape)} normalizes to +-1, not to beta`, () => {
        const y = F.pureBatchNorm(kg.tensor(values, shape), kg.ones([1]), kg.zeros([1])).toArray();
        const mean = values.reduce((a, b) => a + b, 0) / values.length;
        Array.from(y).forEach((v, i) => expect(Math.abs(v - Math.sign(values[i] - mean))).toBeLessThan(1e-6));
      });
    }
  }

  test('its gradient is finite, and gamma and beta get theirs', () => {
    const x = kg.tensor([-1e38, 1e38, -1e38, 1e38], [4, 1]).attachGrad();
    const gamma = kg.ones([1]).attachGrad();
    const beta = kg.zeros([1]).attachGrad();
    const y = kg.autograd.record(() => F.pureBatchNorm(x, gamma, beta));
    y.backward(kg.tensor([1, 2, 3, 5], [4, 1]));
    expect(x.grad!.toArray().every(Number.isFinite)).toBe(true);
    expect(gamma.grad!.item()).toBeCloseTo(-1 + 2 - 3 + 5, 5); // sum dy * xhat
    expect(beta.grad!.item()).toBe(11);
  });

  test('the running variance cannot hold its variance: it throws and leaves the statistics alone', () => {
    const { runningMean, runningVar } = stats(1);
    const x = kg.tensor([-1e38, 1e38, -1e38, 1e38], [4, 1]);
    expect(() => F.batchNorm(x, kg.ones([1]), kg.zeros([1]), { training: true, runningMean, runningVar })).toThrow(
      /channel 0 of x \[4, 1\] has a variance too large for float32 \(values of magnitude near 1e38\), which the running variance cannot hold/,
    );
    expect([runningMean.item(), runningVar.item()]).toEqual([-1, 1]);
  });
});
