// Batch norm and non-finite values: a NaN or infinity in a training batch is reported, naming the
// channel, before it reaches that channel's running statistics (the other channels are updated);
// values near the float32 limit still normalize.
import * as kg from '../../lib';
import { NonFiniteError } from '../../lib/non-finite';
import { Random } from '../../lib/random';

const F = kg.nn.functional;

function stats(c: number) {
  const runningMean = kg.tensor(Array.from({ length: c }, (_, i) => i * 0.5 - 1));
  const runningVar = kg.tensor(Array.from({ length: c }, (_, i) => 1 + i));
  return { runningMean, runningVar };
}

/** Channel ch's values of x (n, c, l...) in float64, with its biased variance. */
function channelStats(x: Float32Array, shape: number[], ch: number): { mean: number; variance: number } {
  const [n, c] = shape;
  const l = x.length / (n * c);
  const v: number[] = [];
  for (let i = 0; i < n; i++) for (let j = 0; j < l; j++) v.push(x[(i * c + ch) * l + j]);
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  return { mean, variance: v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length };
}

describe('a NaN or infinity in a training batch', () => {
  for (const shape of [[7, 3], [5, 3, 3, 2]]) {
    for (const bad of [NaN, Infinity, -Infinity]) {
      test(`${bad} in channel 2 of ${JSON.stringify(shape)} throws naming the channel; that channel's running statistics keep their values, the others move`, () => {
        const x = new Random(3).fillNormal(new Float32Array(shape.reduce((a, b) => a * b, 1)));
        const l = shape.length === 4 ? shape[2] * shape[3] : 1;
        x[(1 * 3 + 2) * l] = bad; // sample 1, channel 2
        const { runningMean, runningVar } = stats(3);
        const before = [runningMean.toArray(), runningVar.toArray()];
        let error: unknown = null;
        try {
          F.batchNorm(kg.tensor(x, shape), kg.ones([3]), kg.zeros([3]), { training: true, runningMean, runningVar });
        } catch (e) {
          error = e;
        }
        expect(error).toBeInstanceOf(NonFiniteError);
        expect(error).toBeInstanceOf(RangeError);
        expect((error as Error).message).toMatch(
          new RegExp(
            `batchNorm: channel 2 of x \\[${shape.join(', ')}\\] has a batch mean of (NaN|-?Infinity): the batch holds NaN or infinite values; ` +
              "channel 2's running statistics were left unchanged \\(the other channels' were updated\\)",
          ),
        );
        // Channel 2 as it was, channels 0 and 1 moved by momentum 0.9.
        const [mean, variance] = [runningMean.toArray(), runningVar.toArray()];
        expect([mean[2], variance[2]]).toEqual([before[0][2], before[1][2]]);
        for (const ch of [0, 1]) {
          const batch = channelStats(x, shape, ch);
          const m = 0.1 * batch.mean + 0.9 * before[0][ch];
          const v = 0.1 * batch.variance + 0.9 * before[1][ch];
          expect(Math.abs(mean[ch] - m)).toBeLessThan(1e-6 * (1 + Math.abs(m)));
          expect(Math.abs(variance[ch] - v)).toBeLessThan(1e-6 * v);
        }
      });
    }
  }

  test('the module keeps the failing channel\'s statistics and trains on with the next good batch', () => {
    const bn = new kg.nn.BatchNorm(2, { initRunning: 'zeroOne' });
    const good = kg.tensor([1, 2, 3, 6], [2, 2]);
    expect(() => bn.forward(kg.tensor([1, NaN, 3, 4], [2, 2]))).toThrow(/channel 1 of x \[2, 2\] has a batch mean of NaN/);
    // Channel 0 (mean 2, variance 1) moved; channel 1 kept 0 and 1.
    expect(Array.from(bn.runningMean.toArray(), (v) => +v.toFixed(6))).toEqual([0.2, 0]);
    expect(Array.from(bn.runningVar.toArray(), (v) => +v.toFixed(6))).toEqual([1, 1]);
    expect(bn.numBatchesTracked.item()).toBe(1);
    bn.forward(good);
    expect(Array.from(bn.runningMean.toArray(), (v) => +v.toFixed(5))).toEqual([0.38, 0.4]);
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
