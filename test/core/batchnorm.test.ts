// Batch norm's semantics: moving statistics over several batches, train/eval modes, the first-batch
// initialization, and robustness on hard data.
import * as kg from '../../lib';
import { Random } from '../../lib/random';
import { closeTo } from '../helpers/gradcheck';
import * as ref from '../helpers/reference';

const F = kg.nn.functional;

function randomBatch(rng: Random, shape: number[]): Float32Array {
  return rng.fillNormal(new Float32Array(ref.numel(shape)), 2, 3);
}

describe('running statistics', () => {
  test('functional batchNorm updates them with momentum and the biased variance, over several batches', () => {
    const rng = new Random(7);
    const shape = [6, 3, 4, 5];
    const momentum = 0.9;
    const runningMean = kg.zeros([3]);
    const runningVar = kg.ones([3]);
    let expMean = new Float64Array(3);
    let expVar = new Float64Array(3).fill(1);
    for (let step = 0; step < 4; step++) {
      const x = randomBatch(rng, shape);
      F.batchNorm(kg.tensor(x, shape), kg.ones([3]), kg.zeros([3]), { training: true, runningMean, runningVar, momentum });
      const { mean, variance } = ref.batchNormTrain(Float64Array.from(x), new Float64Array(3).fill(1), new Float64Array(3), 6, 3, 20, 1e-5);
      expMean = expMean.map((r, i) => momentum * r + (1 - momentum) * mean[i]);
      expVar = expVar.map((r, i) => momentum * r + (1 - momentum) * variance[i]);
    }
    expect(closeTo(runningMean.toArray(), expMean, 1e-5, 1e-6)).toBeNull();
    expect(closeTo(runningVar.toArray(), expVar, 1e-5, 1e-6)).toBeNull();
  });

  test('inference uses the running statistics and changes nothing', () => {
    const mean = kg.tensor([1, -2]);
    const variance = kg.tensor([4, 0.25]);
    const x = kg.tensor([3, -2, 1, -1.5, 5, -3], [3, 2]);
    const y = F.batchNorm(x, kg.tensor([2, 1]), kg.tensor([0.5, 0]), { training: false, runningMean: mean, runningVar: variance, eps: 0 });
    expect(Array.from(y.toArray())).toEqual([2.5, 0, 0.5, 1, 4.5, -2]);
    expect(Array.from(mean.toArray())).toEqual([1, -2]);
    expect(Array.from(variance.toArray())).toEqual([4, 0.25]);
  });

  test('the module: the first training batch initializes the statistics, later ones move them', () => {
    const rng = new Random(3);
    const bn = new kg.nn.BatchNorm(4);
    const b1 = randomBatch(rng, [8, 4]);
    const b2 = randomBatch(rng, [8, 4]);
    bn.forward(kg.tensor(b1, [8, 4]));
    const s1 = ref.batchNormTrain(Float64Array.from(b1), new Float64Array(4).fill(1), new Float64Array(4), 8, 4, 1, 1e-5);
    expect(closeTo(bn.runningMean.toArray(), s1.mean, 1e-6, 1e-6)).toBeNull();
    expect(closeTo(bn.runningVar.toArray(), s1.variance, 1e-6, 1e-6)).toBeNull();
    bn.forward(kg.tensor(b2, [8, 4]));
    const s2 = ref.batchNormTrain(Float64Array.from(b2), new Float64Array(4).fill(1), new Float64Array(4), 8, 4, 1, 1e-5);
    expect(closeTo(bn.runningMean.toArray(), s1.mean.map((m, i) => 0.9 * m + 0.1 * s2.mean[i]), 1e-5, 1e-6)).toBeNull();
    expect(closeTo(bn.runningVar.toArray(), s1.variance.map((v, i) => 0.9 * v + 0.1 * s2.variance[i]), 1e-5, 1e-6)).toBeNull();
  });

  test("the module with initRunning 'zeroOne' moves from mean 0 and variance 1", () => {
    const rng = new Random(4);
    const bn = new kg.nn.BatchNorm(3, { initRunning: 'zeroOne', momentum: 0.8 });
    const b = randomBatch(rng, [5, 3, 2, 2]);
    bn.forward(kg.tensor(b, [5, 3, 2, 2]));
    const s = ref.batchNormTrain(Float64Array.from(b), new Float64Array(3).fill(1), new Float64Array(3), 5, 3, 4, 1e-5);
    expect(closeTo(bn.runningMean.toArray(), s.mean.map((m) => 0.2 * m), 1e-5, 1e-6)).toBeNull();
    expect(closeTo(bn.runningVar.toArray(), s.variance.map((v) => 0.8 + 0.2 * v), 1e-5, 1e-6)).toBeNull();
  });

  test('the module in eval mode normalizes with its statistics and does not update them', () => {
    const rng = new Random(5);
    const bn = new kg.nn.BatchNorm(2);
    bn.forward(kg.tensor(randomBatch(rng, [6, 2]), [6, 2]));
    const before = bn.runningMean.toArray();
    bn.eval();
    const x = randomBatch(rng, [4, 2]);
    const y = bn.forward(kg.tensor(x, [4, 2]));
    expect(bn.runningMean.toArray()).toEqual(before);
    const expected = ref.batchNormInfer(Float64Array.from(x), new Float64Array(2).fill(1), new Float64Array(2), Float64Array.from(before), Float64Array.from(bn.runningVar.toArray()), 4, 2, 1, 1e-5);
    expect(closeTo(y.toArray(), expected, 1e-5, 1e-6)).toBeNull();
    bn.train();
    bn.forward(kg.tensor(x, [4, 2]));
    expect(bn.runningMean.toArray()).not.toEqual(before);
  });

  test('gamma and beta are parameters, the statistics are buffers in the state dict', () => {
    const bn = new kg.nn.BatchNorm(3);
    expect(bn.parameters()).toEqual([bn.gamma, bn.beta]);
    expect(Object.keys(bn.stateDict()).sort()).toEqual(['beta', 'gamma', 'numBatchesTracked', 'runningMean', 'runningVar']);
  });
});

describe('robustness', () => {
  for (const shape of [[64, 1], [16, 1, 8, 8]]) {
    test(`a channel with mean 1e4 and spread 0.1 is normalized to within 1e-5 of the spread, ${JSON.stringify(shape)}`, () => {
      const rng = new Random(11);
      const x = rng.fillNormal(new Float32Array(ref.numel(shape)), 1e4, 0.1);
      const y = F.pureBatchNorm(kg.tensor(x, shape), kg.ones([1]), kg.zeros([1]), 0).toArray();
      const expected = ref.batchNormTrain(Float64Array.from(x), Float64Array.of(1), Float64Array.of(0), shape[0], 1, ref.numel(shape) / shape[0], 0).y;
      // A float mean near 1e4 is off by up to 0.5 ulp = 4.9e-4, 0.5% of the spread; the kernels
      // carry the mean as a float pair, so only the rounding of x - mean itself is left.
      // E[x²] - E[x]² would be off by orders of magnitude.
      expect(closeTo(y, expected, 0, 1e-5)).toBeNull();
      const m = y.reduce((a, b) => a + b, 0) / y.length;
      const v = y.reduce((a, b) => a + (b - m) ** 2, 0) / y.length;
      expect(Math.abs(m)).toBeLessThan(1e-5);
      expect(Math.abs(v - 1)).toBeLessThan(1e-3);
    });

    test(`a constant channel gives exactly beta, finite gradients and zero dgamma, ${JSON.stringify(shape)}`, () => {
      const x = kg.full(shape, 1234.5678).attachGrad();
      const gamma = kg.tensor([1.7]).attachGrad();
      const beta = kg.tensor([0.25]).attachGrad();
      const runningVar = kg.ones([1]);
      const y = kg.autograd.record(() => F.batchNorm(x, gamma, beta, { training: true, runningMean: kg.zeros([1]), runningVar, momentum: 0 }));
      expect(y.toArray().every((v) => v === 0.25)).toBe(true);
      expect(runningVar.item()).toBe(0);
      const head = new Random(2).fillNormal(new Float32Array(ref.numel(shape)));
      y.backward(kg.tensor(head, shape));
      expect(x.grad!.toArray().every(Number.isFinite)).toBe(true);
      expect(gamma.grad!.item()).toBe(0);
      expect(beta.grad!.item()).toBeCloseTo(head.reduce((a, b) => a + b, 0), 3);
    });
  }

  test('the variance is never negative, on data where E[x²] - E[x]² would cancel', () => {
    const rng = new Random(12);
    const x = rng.fillNormal(new Float32Array(4096), 3e4, 1e-3);
    const runningVar = kg.ones([1]);
    F.batchNorm(kg.tensor(x, [4096, 1]), kg.ones([1]), kg.zeros([1]), { training: true, runningMean: kg.zeros([1]), runningVar, momentum: 0 });
    const v = runningVar.item();
    const expected = ref.batchNormTrain(Float64Array.from(x), Float64Array.of(1), Float64Array.of(0), 4096, 1, 1, 0).variance[0];
    expect(v).toBeGreaterThanOrEqual(0);
    expect(Math.abs(v - expected)).toBeLessThan(1e-2 * expected + 1e-9);
  });
});

describe('bad input', () => {
  test('one value per channel in training throws', () => {
    expect(() => F.batchNorm(kg.ones([1, 3]), kg.ones([3]), kg.zeros([3]), { training: true })).toThrow(/more than one value per channel/);
    expect(() => F.batchNorm(kg.ones([1, 3, 1, 1]), kg.ones([3]), kg.zeros([3]), { training: true })).toThrow(RangeError);
    expect(() => new kg.nn.BatchNorm(3).forward(kg.ones([1, 3]))).toThrow(RangeError);
  });
  test('3-D and 5-D input throw naming the accepted shapes', () => {
    expect(() => F.pureBatchNorm(kg.ones([2, 3, 4]), kg.ones([3]), kg.zeros([3]))).toThrow(/dense \(batch, features\) or 2-D convolution/);
    expect(() => new kg.nn.BatchNorm(3).forward(kg.ones([2, 3, 1, 1, 1]))).toThrow(/got 5-D shape \[2, 3, 1, 1, 1\]/);
  });
  test('mismatched gamma and beta throw with the shapes', () => {
    expect(() => F.pureBatchNorm(kg.ones([4, 3]), kg.ones([2]), kg.zeros([3]))).toThrow(/gamma must have shape \[3\].*got \[2\]/);
    expect(() => F.pureBatchNorm(kg.ones([4, 3]), kg.ones([3]), kg.zeros([3, 1]))).toThrow(RangeError);
    expect(() => new kg.nn.BatchNorm(5).forward(kg.ones([4, 3]))).toThrow(RangeError);
  });
  test('inference without statistics, bad options', () => {
    expect(() => F.batchNorm(kg.ones([4, 3]), kg.ones([3]), kg.zeros([3]), { training: false })).toThrow(TypeError);
    expect(() => F.batchNorm(kg.ones([4, 3]), kg.ones([3]), kg.zeros([3]), { training: true, momentum: 2 })).toThrow(RangeError);
    expect(() => F.batchNorm(kg.ones([4, 3]), kg.ones([3]), kg.zeros([3]), {} as never)).toThrow(TypeError);
    expect(() => new kg.nn.BatchNorm(0)).toThrow(RangeError);
  });
});
