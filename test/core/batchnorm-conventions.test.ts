// Batch norm's conventions, one option each, each checked against the update rule it names over
// several batches, with the rule written out here in float64.
import * as kg from '../../lib';
import { Random } from '../../lib/random';
import { closeTo } from '../helpers/gradcheck';
import * as ref from '../helpers/reference';

const F = kg.nn.functional;

interface Batch {
  data: Float32Array;
  shape: number[];
  n: number;
  c: number;
  l: number;
}

function batches(seed: number, shape: number[], count: number): Batch[] {
  const rng = new Random(seed);
  const [n, c] = shape;
  const l = ref.numel(shape) / (n * c);
  return Array.from({ length: count }, (_, i) => ({
    data: rng.fillNormal(new Float32Array(ref.numel(shape)), 1.5 + i, 2 + 0.5 * i),
    shape,
    n,
    c,
    l,
  }));
}

/** The batch's per-channel mean and biased variance, in float64. */
function stats(b: Batch): { mean: Float64Array; biased: Float64Array; unbiased: Float64Array } {
  const { mean, variance } = ref.batchNormTrain(Float64Array.from(b.data), new Float64Array(b.c).fill(1), new Float64Array(b.c), b.n, b.c, b.l, 0);
  const m = b.n * b.l;
  return { mean, biased: variance, unbiased: variance.map((v) => (v * m) / (m - 1)) };
}

const ones64 = (c: number) => new Float64Array(c).fill(1);

describe('PyTorch conventions, against its documented update rules', () => {
  // torch.nn.BatchNorm2d: running = (1 - momentum) * running + momentum * batch with momentum 0.1,
  // running_var tracks the unbiased variance, they start at 0 and 1, num_batches_tracked counts
  // training batches; momentum=None averages cumulatively: factor 1 / num_batches_tracked.
  test("convention 'pytorch' follows PyTorch's exponential rule over five batches, 4-D input", () => {
    const bn = new kg.nn.BatchNorm(3, { convention: 'pytorch' });
    const torchMomentum = 0.1;
    let mean = new Float64Array(3);
    let variance = ones64(3);
    const all = batches(1, [4, 3, 3, 5], 5);
    for (const b of all) {
      bn.forward(kg.tensor(b.data, b.shape));
      const s = stats(b);
      mean = mean.map((r, i) => (1 - torchMomentum) * r + torchMomentum * s.mean[i]);
      variance = variance.map((r, i) => (1 - torchMomentum) * r + torchMomentum * s.unbiased[i]);
    }
    expect(closeTo(bn.runningMean.toArray(), mean, 1e-5, 1e-6)).toBeNull();
    expect(closeTo(bn.runningVar.toArray(), variance, 1e-5, 1e-6)).toBeNull();
    expect(bn.numBatchesTracked.item()).toBe(5);

    // Inference normalizes with the biased-or-not running values as they are: PyTorch's rule.
    bn.eval();
    const probe = all[0];
    const y = bn.forward(kg.tensor(probe.data, probe.shape)).toArray();
    const expected = ref.batchNormInfer(Float64Array.from(probe.data), ones64(3), new Float64Array(3), mean, variance, probe.n, probe.c, probe.l, 1e-5);
    expect(closeTo(y, expected, 1e-5, 1e-5)).toBeNull();
    expect(bn.numBatchesTracked.item()).toBe(5);
  });

  test("averaging 'cumulative' (PyTorch's momentum=None) is the plain average of the batches, 2-D input", () => {
    const bn = new kg.nn.BatchNorm(4, { convention: 'pytorch', averaging: 'cumulative' });
    let mean = new Float64Array(4);
    let variance = ones64(4);
    let tracked = 0;
    for (const b of batches(2, [7, 4], 4)) {
      bn.forward(kg.tensor(b.data, b.shape));
      tracked += 1;
      const factor = 1 / tracked;
      const s = stats(b);
      mean = mean.map((r, i) => (1 - factor) * r + factor * s.mean[i]);
      variance = variance.map((r, i) => (1 - factor) * r + factor * s.unbiased[i]);
    }
    expect(closeTo(bn.runningMean.toArray(), mean, 1e-5, 1e-6)).toBeNull();
    expect(closeTo(bn.runningVar.toArray(), variance, 1e-5, 1e-6)).toBeNull();
    expect(bn.numBatchesTracked.item()).toBe(4);
  });

  test('a preset gives way to the options named next to it', () => {
    const bn = new kg.nn.BatchNorm(2, { convention: 'pytorch', runningVariance: 'biased', momentum: 0.5 });
    expect([bn.initRunning, bn.runningVariance, bn.momentum]).toEqual(['zeroOne', 'biased', 0.5]);
    const b = batches(3, [6, 2], 1)[0];
    bn.forward(kg.tensor(b.data, b.shape));
    const s = stats(b);
    expect(closeTo(bn.runningVar.toArray(), s.biased.map((v) => 0.5 + 0.5 * v), 1e-5, 1e-6)).toBeNull();
    expect(String(bn)).toBe('BatchNorm(2, convention=pytorch, momentum=0.5, eps=0.00001, runningVariance=biased)');
  });
});

describe('one option each, against the formula it names', () => {
  test("runningVariance 'unbiased': the batch variance times m / (m - 1), from the first batch on", () => {
    const bn = new kg.nn.BatchNorm(3, { runningVariance: 'unbiased', momentum: 0.7 });
    const [b1, b2, b3] = batches(4, [5, 3, 2, 2], 3);
    let variance = stats(b1).unbiased; // the tutorial's first-batch initialization
    for (const b of [b1, b2, b3]) bn.forward(kg.tensor(b.data, b.shape));
    for (const b of [b2, b3]) variance = variance.map((r, i) => 0.7 * r + 0.3 * stats(b).unbiased[i]);
    expect(closeTo(bn.runningVar.toArray(), variance, 1e-5, 1e-6)).toBeNull();
  });

  test("the functional form: runningVariance 'unbiased' and averaging 'cumulative' with a count it increments", () => {
    const runningMean = kg.zeros([2]);
    const runningVar = kg.ones([2]);
    const numBatchesTracked = kg.full([], 3); // as if three batches had been averaged already
    let mean = new Float64Array(2);
    let variance = ones64(2);
    let tracked = 3;
    for (const b of batches(5, [9, 2], 3)) {
      F.batchNorm(kg.tensor(b.data, b.shape), null, null, { training: true, runningMean, runningVar, numBatchesTracked, averaging: 'cumulative', runningVariance: 'unbiased' });
      tracked += 1;
      const s = stats(b);
      mean = mean.map((r, i) => r + (s.mean[i] - r) / tracked);
      variance = variance.map((r, i) => r + (s.unbiased[i] - r) / tracked);
    }
    expect(numBatchesTracked.item()).toBe(6);
    expect(closeTo(runningMean.toArray(), mean, 1e-5, 1e-6)).toBeNull();
    expect(closeTo(runningVar.toArray(), variance, 1e-5, 1e-6)).toBeNull();
  });

  test('trackRunningStats false: no moving statistics, batch statistics in inference mode too', () => {
    const bn = new kg.nn.BatchNorm(3, { trackRunningStats: false });
    expect(Object.keys(bn.stateDict())).toEqual(['gamma', 'beta']);
    const b = batches(6, [4, 3, 2, 3], 1)[0];
    const expected = ref.batchNormTrain(Float64Array.from(b.data), ones64(3), new Float64Array(3), b.n, b.c, b.l, 1e-5).y;
    for (const mode of ['train', 'eval'] as const) {
      bn[mode]();
      expect(closeTo(bn.forward(kg.tensor(b.data, b.shape)).toArray(), expected, 1e-5, 1e-5)).toBeNull();
    }
    expect(() => bn.runningMean).toThrow(/has no runningMean \(trackRunningStats: false\)/);
    expect(() => bn.freeze()).toThrow(/freeze\(\) needs moving statistics/);
  });

  test('affine false: no gamma and beta, y is the normalized x, and x still gets its gradient', () => {
    const bn = new kg.nn.BatchNorm(2, { affine: false });
    expect(bn.parameters()).toEqual([]);
    expect(Object.keys(bn.stateDict())).toEqual(['runningMean', 'runningVar', 'numBatchesTracked']);
    const b = batches(7, [5, 2], 1)[0];
    const x = kg.tensor(b.data, b.shape).attachGrad();
    const y = kg.autograd.record(() => bn.forward(x));
    const expected = ref.batchNormTrain(Float64Array.from(b.data), ones64(2), new Float64Array(2), 5, 2, 1, 1e-5).y;
    expect(closeTo(y.toArray(), expected, 1e-5, 1e-5)).toBeNull();
    // d/dx of sum(y * w) with a non-constant w is non-zero; with w constant per channel it is zero.
    const w = new Random(8).fillNormal(new Float32Array(10));
    y.backward(kg.tensor(w, [5, 2]));
    expect(x.grad!.toArray().some((v) => Math.abs(v) > 1e-3)).toBe(true);
    expect(() => bn.gamma).toThrow(/has no gamma \(affine: false\)/);
  });

  test('numBatchesTracked counts training batches only, and is saved and loaded with the model', () => {
    const bn = new kg.nn.BatchNorm(2);
    const [b1, b2] = batches(9, [4, 2], 2);
    bn.forward(kg.tensor(b1.data, b1.shape));
    bn.forward(kg.tensor(b2.data, b2.shape));
    bn.eval().forward(kg.tensor(b1.data, b1.shape));
    expect(bn.numBatchesTracked.item()).toBe(2);
    const other = new kg.nn.BatchNorm(2);
    other.loadStateDict(bn.stateDict());
    expect(other.numBatchesTracked.item()).toBe(2);
  });
});

describe('freeze', () => {
  test('a frozen layer normalizes with its moving statistics in training mode, leaves them alone, and trains gamma and beta', () => {
    const bn = new kg.nn.BatchNorm(3);
    const [b1, b2] = batches(10, [6, 3, 2, 2], 2);
    bn.forward(kg.tensor(b1.data, b1.shape));
    const mean = Float64Array.from(bn.runningMean.toArray());
    const variance = Float64Array.from(bn.runningVar.toArray());
    expect(bn.freeze().frozen).toBe(true);
    expect(bn.training).toBe(true);
    const x = kg.tensor(b2.data, b2.shape);
    const y = kg.autograd.record(() => bn.forward(x));
    const expected = ref.batchNormInfer(Float64Array.from(b2.data), ones64(3), new Float64Array(3), mean, variance, b2.n, b2.c, b2.l, 1e-5);
    expect(closeTo(y.toArray(), expected, 1e-5, 1e-5)).toBeNull();
    expect(Array.from(bn.runningMean.toArray())).toEqual(Array.from(Float32Array.from(mean)));
    expect(bn.numBatchesTracked.item()).toBe(1);
    y.backward(kg.ones(y.shape));
    // dbeta = sum of dy per channel = the m values of the channel.
    expect(Array.from(bn.beta.grad!.toArray())).toEqual([24, 24, 24]);

    bn.unfreeze();
    bn.forward(x);
    expect(bn.runningMean.toArray()).not.toEqual(Float32Array.from(mean));
    expect(bn.numBatchesTracked.item()).toBe(2);
  });

  test('model.freezeBatchNorm() freezes every batch norm of a network while SGD trains the rest', () => {
    const model = kg.models.bnCnn({ seed: 3, device: 'cpu' });
    const x = kg.rand([8, 1, 28, 28], { seed: 4 });
    const labels = kg.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9].slice(0, 8));
    model.forward(x); // the first batch initializes the statistics
    const frozenState = () => model.namedBuffers().map(([name, t]) => [name, Array.from(t.toArray())]);
    const before = frozenState();
    const weightBefore = Array.from(model.stateDict()['conv1.weight'].toArray());
    model.freezeBatchNorm();
    const sgd = new kg.optim.SGD(model.parameters(), { lr: 0.01 });
    for (let step = 0; step < 2; step++) {
      sgd.zeroGrad();
      kg.autograd.record(() => F.softmaxCrossEntropy(model.forward(x), labels)).backward();
      sgd.step();
    }
    expect(frozenState()).toEqual(before);
    expect(Array.from(model.stateDict()['conv1.weight'].toArray())).not.toEqual(weightBefore);
    model.unfreezeBatchNorm();
    model.forward(x);
    expect(frozenState()).not.toEqual(before);
  });
});

describe('bad options get a clear error', () => {
  test.each([
    ['an unknown convention', () => new kg.nn.BatchNorm(2, { convention: 'keras' } as never), /^kg\.nn\.BatchNorm: convention must be 'tutorial' or 'pytorch', got "keras"/],
    ['an unknown runningVariance', () => new kg.nn.BatchNorm(2, { runningVariance: 'sample' } as never), /runningVariance must be 'biased' or 'unbiased'/],
    ['an unknown averaging', () => new kg.nn.BatchNorm(2, { averaging: 'mean' } as never), /averaging must be 'exponential' or 'cumulative'/],
    ['momentum with cumulative averaging', () => new kg.nn.BatchNorm(2, { averaging: 'cumulative', momentum: 0.9 }), /momentum has no meaning with averaging 'cumulative'/],
    ['affine as a string', () => new kg.nn.BatchNorm(2, { affine: 'no' } as never), /affine must be true or false, got "no"/],
    ['cumulative without a count', () => F.batchNorm(kg.ones([3, 2]), null, null, { training: true, runningMean: kg.zeros([2]), runningVar: kg.ones([2]), averaging: 'cumulative' }),
      /^batchNorm: averaging 'cumulative' needs numBatchesTracked/],
    ['a count of two values', () => F.batchNorm(kg.ones([3, 2]), null, null, { training: true, runningMean: kg.zeros([2]), runningVar: kg.ones([2]), numBatchesTracked: kg.zeros([2]) }),
      /^batchNorm: numBatchesTracked must hold one value \(shape \[\]\), got \[2\]/],
  ])('%s', (_name, call, message) => {
    expect(call).toThrow(message);
  });
});

describe('state dicts written before numBatchesTracked existed', () => {
  test('load into a model, keeping its count; any other missing key still fails', () => {
    const model = new kg.nn.Sequential(new kg.nn.Linear(3, 2), new kg.nn.BatchNorm(2));
    model.forward(kg.tensor([1, 2, 3, 4, 5, 6, 0, 1, 7], [3, 3]));
    const bn = model.namedModules().map(([, m]) => m).find((m) => m instanceof kg.nn.BatchNorm) as kg.nn.BatchNorm;
    const old = Object.fromEntries(Object.entries(model.stateDict()).filter(([k]) => !k.endsWith('numBatchesTracked')));
    const mean = kg.tensor([0.25, -0.5], [2]);
    const key = Object.keys(old).find((k) => k.endsWith('runningMean')) as string;
    model.loadStateDict({ ...old, [key]: mean });
    expect(Array.from(bn.runningMean.toArray())).toEqual(Array.from(mean.toArray()));
    expect(bn.numBatchesTracked.item()).toBe(1);
    const { [key]: _dropped, ...noMean } = old;
    expect(() => model.loadStateDict(noMean)).toThrow(/missing keys: .*runningMean/);
  });
});
