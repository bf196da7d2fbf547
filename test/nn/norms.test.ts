// GroupNorm, LayerNorm and BatchRenorm on the CPU: float64 references and finite-difference
// gradients on random shapes, the batch-renorm conventions, the modules and their errors.
import * as kg from '../../lib';
import { checkOp, closeTo } from '../helpers/gradcheck';
import { BATCH_RENORM_SHAPES, GROUP_NORM_SHAPES, LAYER_NORM_SHAPES, batchRenormCase, groupNormCase, layerNormCase, renormFactors } from '../helpers/norm-reference';
import { batchNormTrain } from '../helpers/reference';
import { native } from '../../lib/native';
import { Random } from '../../lib/random';
import { bitwiseEqual, withThreads } from '../native/reference';

const F = kg.nn.functional;

describe('groupNorm, layerNorm, batchRenorm: float64 reference and gradients', () => {
  test.each(GROUP_NORM_SHAPES)('groupNorm x %j, %d groups', (shape, groups) => checkOp(groupNormCase(shape, groups)));
  test.each(LAYER_NORM_SHAPES)('layerNorm x %j over %j', (shape, normalized) => checkOp(layerNormCase(shape, normalized)));
  test.each(BATCH_RENORM_SHAPES.map((s) => [s]))('batchRenorm x %j, r and d clipped in some channels', (shape) => checkOp(batchRenormCase(shape)));
});

function normal(n: number, seed: number, mean = 0, std = 1): Float32Array {
  return new Random(seed).fillNormal(new Float32Array(n), mean, std);
}

describe('batchRenorm conventions', () => {
  const shape = [6, 3, 2, 5];
  const x = normal(180, 11, 1.5, 2);
  const gamma = normal(3, 12, 1, 0.3);
  const beta = normal(3, 13);
  const stats = () => ({ runningMean: kg.tensor([0.5, 1.5, -1], [3]), runningVar: kg.tensor([1, 4, 9], [3]) });

  test('the test case clips r and d in some channels and not in others', () => {
    const s = stats();
    const f = renormFactors(Float64Array.from(x), 3, 10, s.runningMean.toArray(), s.runningVar.toArray(), 1e-5, 1.5, 0.3);
    const clipped = (v: number, lim: number) => Math.abs(Math.abs(v) - lim) < 1e-12;
    expect(f.r.some((r) => clipped(r, 1.5) || clipped(r, 1 / 1.5))).toBe(true);
    expect(f.r.some((r) => !clipped(r, 1.5) && !clipped(r, 1 / 1.5))).toBe(true);
    expect(f.d.some((d) => clipped(d, 0.3)) && f.d.some((d) => !clipped(d, 0.3))).toBe(true);
  });

  test('rMax 1 and dMax 0 is batch norm, and the running statistics move by momentum with the biased variance', () => {
    const s = stats();
    const before = { mean: s.runningMean.toArray(), variance: s.runningVar.toArray() };
    const y = F.batchRenorm(kg.tensor(x, shape), kg.tensor(gamma), kg.tensor(beta), { training: true, ...s, rMax: 1, dMax: 0, momentum: 0.8 });
    const want = batchNormTrain(Float64Array.from(x), Float64Array.from(gamma), Float64Array.from(beta), 6, 3, 10, 1e-5);
    expect(closeTo(y.toArray(), want.y, 1e-5, 1e-5)).toBeNull();
    expect(closeTo(s.runningMean.toArray(), before.mean.map((m, i) => 0.8 * m + 0.2 * want.mean[i]), 1e-6, 1e-6)).toBeNull();
    expect(closeTo(s.runningVar.toArray(), before.variance.map((v, i) => 0.8 * v + 0.2 * want.variance[i]), 1e-6, 1e-6)).toBeNull();
  });

  test('inference is batch norm with the running statistics, and changes nothing', () => {
    const s = stats();
    const y = F.batchRenorm(kg.tensor(x, shape), kg.tensor(gamma), kg.tensor(beta), { training: false, ...s });
    const bn = F.batchNorm(kg.tensor(x, shape), kg.tensor(gamma), kg.tensor(beta), { training: false, ...stats() });
    expect(Array.from(y.toArray())).toEqual(Array.from(bn.toArray()));
    expect(Array.from(s.runningMean.toArray())).toEqual([0.5, 1.5, -1]);
  });

  test('the module: the first batch initializes the statistics as plain batch norm, later ones are corrected', () => {
    const brn = new kg.nn.BatchRenorm(3, { rMax: 1.2, dMax: 0.1 });
    const y1 = brn.forward(kg.tensor(x, shape));
    const want = batchNormTrain(Float64Array.from(x), new Float64Array(3).fill(1), new Float64Array(3), 6, 3, 10, 1e-5);
    expect(closeTo(y1.toArray(), want.y, 1e-5, 1e-5)).toBeNull();
    expect(closeTo(brn.runningMean.toArray(), want.mean, 1e-6, 1e-6)).toBeNull();
    const x2 = normal(180, 14, -1, 0.5);
    const f = renormFactors(Float64Array.from(x2), 3, 10, brn.runningMean.toArray(), brn.runningVar.toArray(), 1e-5, 1.2, 0.1);
    const y2 = brn.forward(kg.tensor(x2, shape)).toArray();
    const plain = batchNormTrain(Float64Array.from(x2), new Float64Array(3).fill(1), new Float64Array(3), 6, 3, 10, 1e-5).y;
    const corrected = plain.map((v, e) => v * f.r[Math.floor(e / 10) % 3] + f.d[Math.floor(e / 10) % 3]);
    expect(closeTo(y2, corrected, 1e-5, 1e-5)).toBeNull();
    expect(closeTo(y2, plain, 1e-3, 1e-3)).not.toBeNull();
    brn.eval();
    const y3 = brn.forward(kg.tensor(x2, shape));
    const inferred = F.batchNorm(kg.tensor(x2, shape), brn.gamma, brn.beta, { training: false, runningMean: brn.runningMean, runningVar: brn.runningVar });
    expect(Array.from(y3.toArray())).toEqual(Array.from(inferred.toArray()));
    expect(Object.keys(brn.stateDict()).sort()).toEqual(['beta', 'gamma', 'numBatchesTracked', 'runningMean', 'runningVar']);
    expect(brn.numBatchesTracked.item()).toBe(2);
  });

  test('a frozen layer normalizes with its moving statistics in training mode and leaves them alone', () => {
    const brn = new kg.nn.BatchRenorm(3, { rMax: 1.2, dMax: 0.1 });
    brn.forward(kg.tensor(x, shape));
    const before = [brn.runningMean.toArray(), brn.runningVar.toArray()];
    brn.freeze();
    const x2 = normal(180, 15, 2, 3);
    const y = brn.forward(kg.tensor(x2, shape)).toArray();
    const inferred = F.batchNorm(kg.tensor(x2, shape), brn.gamma, brn.beta, { training: false, runningMean: brn.runningMean, runningVar: brn.runningVar });
    expect(Array.from(y)).toEqual(Array.from(inferred.toArray()));
    expect([brn.runningMean.toArray(), brn.runningVar.toArray()]).toEqual(before);
    expect(brn.numBatchesTracked.item()).toBe(1);
  });
});

describe('exact at any mean', () => {
  test.each([
    ['groupNorm', (t: kg.Tensor) => F.groupNorm(t, 2, kg.ones([4]), kg.zeros([4]), { eps: 0 })],
    ['layerNorm', (t: kg.Tensor) => F.layerNorm(t, [4, 50], kg.ones([4, 50]), kg.zeros([4, 50]), { eps: 0 })],
  ] as const)('%s at mean 1e4 and spread 0.1: within 1e-5 of the spread', (_, op) => {
    const x = normal(3 * 200, 21, 1e4, 0.1);
    const y = op(kg.tensor(x, [3, 4, 50])).toArray();
    const groupSize = _ === 'groupNorm' ? 100 : 200;
    const want = new Float64Array(600);
    for (let g = 0; g < 600 / groupSize; g++) {
      const part = Float64Array.from(x.subarray(g * groupSize, (g + 1) * groupSize));
      const mean = part.reduce((a, b) => a + b, 0) / groupSize;
      const sd = Math.sqrt(part.reduce((a, b) => a + (b - mean) ** 2, 0) / groupSize);
      part.forEach((v, i) => (want[g * groupSize + i] = (v - mean) / sd));
    }
    expect(closeTo(y, want, 0, 1e-5)).toBeNull();
  });

  test('a constant group gives exactly beta', () => {
    const y = F.groupNorm(kg.full([2, 3, 4], 1234.5), 3, kg.tensor([2, 3, 4]), kg.tensor([0.25, -1, 3]));
    expect(Array.from(y.toArray())).toEqual(Array.from({ length: 24 }, (_, i) => [0.25, -1, 3][Math.floor(i / 4) % 3]));
  });
});

describe('determinism', () => {
  test.each([
    ['groupNorm', [8, 16, 32, 32], (x: kg.Tensor, g: kg.Tensor, b: kg.Tensor) => F.groupNorm(x, 4, g, b), [16]],
    ['layerNorm', [256, 513], (x: kg.Tensor, g: kg.Tensor, b: kg.Tensor) => F.layerNorm(x, 513, g, b), [513]],
  ] as const)('%s on %j: the same bits with 1 thread and 2', (_, shape, op, pshape) => {
    const xs = normal(shape.reduce((a, b) => a * b, 1), 61, 2, 3);
    const head = kg.tensor(normal(xs.length, 62), [...shape]);
    const run = () => {
      const x = kg.tensor(xs, [...shape]).attachGrad();
      const g = kg.tensor(normal(pshape[0], 63, 1, 0.2), [...pshape]).attachGrad();
      const b = kg.zeros([...pshape]).attachGrad();
      const y = kg.autograd.record(() => op(x, g, b));
      y.backward(head);
      return [y, x.grad, g.grad, b.grad].map((t) => (t as kg.Tensor).toArray());
    };
    const one = withThreads(1, run);
    const two = withThreads(2, run);
    one.forEach((v, i) => expect(bitwiseEqual(v, two[i])).toBe(true));
  });
});

describe('modules', () => {
  test('GroupNorm and LayerNorm forward their functional forms, with gamma and beta as parameters', () => {
    const x = kg.tensor(normal(2 * 6 * 3 * 3, 31), [2, 6, 3, 3]);
    const gn = new kg.nn.GroupNorm(3, 6, { eps: 1e-3 });
    expect(Array.from(gn.forward(x).toArray())).toEqual(Array.from(F.groupNorm(x, 3, kg.ones([6]), kg.zeros([6]), { eps: 1e-3 }).toArray()));
    const ln = new kg.nn.LayerNorm([3, 3]);
    expect(Array.from(ln.forward(x).toArray())).toEqual(Array.from(F.layerNorm(x, [3, 3], kg.ones([3, 3]), kg.zeros([3, 3])).toArray()));
    expect(gn.namedParameters().map(([n, t]) => [n, t.shape])).toEqual([['gamma', [6]], ['beta', [6]]]);
    expect(ln.namedParameters().map(([n, t]) => [n, t.shape])).toEqual([['gamma', [3, 3]], ['beta', [3, 3]]]);
    expect(String(gn)).toBe('GroupNorm(3, 6, eps=0.001)');
    expect(String(new kg.nn.LayerNorm(5))).toBe('LayerNorm([5], eps=0.00001)'.replace('0.00001', String(1e-5)));
  });

  test('a GroupNorm layer trains: its gamma and beta get gradients through a model', () => {
    const model = new kg.nn.Sequential(new kg.nn.Conv2d(2, 4, 3, { seed: 1 }), new kg.nn.GroupNorm(2, 4), new kg.nn.ReLU(), new kg.nn.Flatten(), new kg.nn.Linear(4 * 3 * 3, 3, { seed: 2 }));
    const x = kg.tensor(normal(1 * 2 * 5 * 5, 41), [1, 2, 5, 5]); // a batch of one: no batch statistics needed
    const loss = kg.autograd.record(() => F.softmaxCrossEntropy(model.forward(x), [2]));
    loss.backward();
    for (const [name, p] of model.namedParameters()) expect([name, p.grad !== null && p.grad.toArray().some((v) => v !== 0)]).toEqual([name, true]);
  });
});

describe('errors', () => {
  const x = kg.zeros([2, 6, 3]);
  test.each([
    ['groups that do not divide the channels', () => F.groupNorm(x, 4, kg.ones([6]), kg.zeros([6])), RangeError, /groupNorm: channels \(6\) of x \[2, 6, 3\] must be divisible by groups \(4\)/],
    ['a gamma of the wrong shape', () => F.groupNorm(x, 3, kg.ones([3]), kg.zeros([6])), RangeError, /groupNorm: gamma must have shape \[6\] \(one per channel\) for x \[2, 6, 3\], got \[3\]/],
    ['1-D input', () => F.groupNorm(kg.zeros([6]), 3, kg.ones([6]), kg.zeros([6])), RangeError, /groupNorm: x must be \(batch, channels, \.\.\.\)/],
    ['an unknown option', () => F.groupNorm(x, 3, kg.ones([6]), kg.zeros([6]), { epsilon: 1 } as never), TypeError, /groupNorm: unknown option 'epsilon'/],
    ['a negative eps', () => F.layerNorm(x, [3], kg.ones([3]), kg.zeros([3]), { eps: -1 }), RangeError, /layerNorm: eps must be >= 0/],
    ['a normalized shape that is not x\'s tail', () => F.layerNorm(x, [6], kg.ones([6]), kg.zeros([6])), RangeError, /layerNorm: the last dimensions of x \[2, 6, 3\] must be normalizedShape \[6\]/],
    ['an empty normalized shape', () => F.layerNorm(x, [], kg.ones([1]), kg.zeros([1])), TypeError, /layerNorm: normalizedShape must be a positive integer or a non-empty array/],
    ['a batch of one value per channel', () => F.batchRenorm(kg.zeros([1, 3]), kg.ones([3]), kg.zeros([3]), { training: true, runningMean: kg.zeros([3]), runningVar: kg.ones([3]) }), RangeError, /batchRenorm: training needs more than one value per channel/],
    ['rMax below 1', () => F.batchRenorm(kg.zeros([4, 3]), kg.ones([3]), kg.zeros([3]), { training: true, runningMean: kg.zeros([3]), runningVar: kg.ones([3]), rMax: 0.5 }), RangeError, /batchRenorm: rMax must be >= 1, got 0.5/],
    ['missing running statistics', () => F.batchRenorm(kg.zeros([4, 3]), kg.ones([3]), kg.zeros([3]), { training: true } as never), TypeError, /batchRenorm: runningMean must be a Tensor, got undefined/],
    ['a module whose groups do not divide its channels', () => new kg.nn.GroupNorm(4, 6), RangeError, /kg.nn.GroupNorm: groups \(4\) must divide channels \(6\)/],
    ['a module with dMax < 0', () => new kg.nn.BatchRenorm(3, { dMax: -1 }), RangeError, /kg.nn.BatchRenorm: dMax must be >= 0/],
    ['a module momentum above 1, named', () => new kg.nn.BatchRenorm(3, { momentum: 2 }), RangeError, /kg.nn.BatchRenorm: momentum must be in \[0, 1\], got 2/],
    ['an rMax schedule step below 1', () => { new kg.nn.BatchRenorm(3).rMax = 0.9; }, RangeError, /kg.nn.BatchRenorm.rMax: rMax must be >= 1/],
  ])('%s', (_, f, type, message) => {
    expect(f).toThrow(type);
    expect(f).toThrow(message);
  });

  test('NaN in x is reported with its group, and batch renorm leaves the running statistics alone', () => {
    const v = normal(2 * 6 * 3, 51);
    v[20] = NaN; // sample 1, channel 0
    expect(() => F.groupNorm(kg.tensor(v, [2, 6, 3]), 3, kg.ones([6]), kg.zeros([6]))).toThrow(/groupNorm: sample 1, group 0 of x \[2, 6, 3\] has a mean of NaN/);
    expect(() => F.layerNorm(kg.tensor(v, [2, 6, 3]), [3], kg.ones([3]), kg.zeros([3]))).toThrow(kg.NonFiniteError);
    const runningMean = kg.zeros([6]);
    expect(() => F.batchRenorm(kg.tensor(v, [2, 6, 3, 1]), kg.ones([6]), kg.zeros([6]), { training: true, runningMean, runningVar: kg.ones([6]) })).toThrow(/batchRenorm: channel 0 .* the running statistics were left unchanged/);
    expect(Array.from(runningMean.toArray()).every((m) => m === 0)).toBe(true);
    expect(() => F.layerNorm(kg.zeros([2, 3]), 3, kg.ones([3]), kg.zeros([3]), { eps: 0 })).toThrow(/layerNorm: row 0 of x \[2, 3\] has zero variance and eps is 0/);
  });
});

describe('the raw binding', () => {
  test('an empty shape with a huge outer dimension returns at once (no loop over 2^52 empty stretches)', () => {
    const s = (n: number) => new native.Storage(0, n);
    const started = Date.now();
    native.normForward([2 ** 52, 7, 0, 2, 7], s(0), s(2), s(2), 1e-5, s(0), s(7), s(7), s(7));
    native.normBackward([2 ** 52, 7, 0, 2, 7], s(0), s(0), s(2), s(7), s(7), s(7), null, null, s(0), s(2), s(2));
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
