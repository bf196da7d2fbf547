// kg.nn.foldBatchNorm: the folded model predicts what the original predicts in eval mode, on the
// tutorial's bn-cnn and on a ResNet (batch norms in residual bodies and shortcuts), and the
// original is left exactly as it was.
import * as kg from '../../lib';
import { Random } from '../../lib/random';
import { closeTo, maxAbs } from '../helpers/gradcheck';

/** Gives every batch norm non-trivial gamma, beta and running statistics. */
function randomizeBatchNorms(model: kg.nn.Module, seed: number): void {
  const rng = new Random(seed);
  for (const [, m] of model.namedModules()) {
    if (!(m instanceof kg.nn.BatchNorm)) continue;
    const c = m.numFeatures;
    m.loadStateDict({
      gamma: kg.tensor(rng.fillUniform(new Float32Array(c), 0.5, 2), [c]),
      beta: kg.tensor(rng.fillNormal(new Float32Array(c), 0, 0.5), [c]),
      runningMean: kg.tensor(rng.fillNormal(new Float32Array(c), 0, 0.3), [c]),
      runningVar: kg.tensor(rng.fillUniform(new Float32Array(c), 0.05, 3), [c]),
      numBatchesTracked: kg.tensor([7], []),
    });
  }
}

function snapshot(model: kg.nn.Module): Record<string, number[]> {
  return Object.fromEntries(Object.entries(model.stateDict()).map(([k, t]) => [k, Array.from(t.toArray())]));
}

function countOf(model: kg.nn.Module, type: abstract new (...args: never[]) => kg.nn.Module): number {
  return model.namedModules().filter(([, m]) => m instanceof type).length;
}

function expectSamePredictions(model: kg.nn.Module, shape: number[], seed: number): kg.nn.Module {
  randomizeBatchNorms(model, seed);
  const before = snapshot(model);
  const folded = kg.nn.foldBatchNorm(model);
  expect(model.training).toBe(true); // the original keeps its mode
  expect(snapshot(model)).toEqual(before);
  const x = kg.tensor(new Random(seed + 1).fillNormal(new Float32Array(shape.reduce((a, b) => a * b, 1))), shape);
  const want = model.eval().forward(x).toArray();
  const got = folded.forward(x).toArray();
  expect(closeTo(got, want, 1e-5, 1e-5 * maxAbs(want))).toBeNull();
  expect(snapshot(model)).toEqual(before);
  return folded;
}

describe('kg.nn.foldBatchNorm', () => {
  test('bn-cnn: every batch norm folds into the convolution or dense layer before it; eval predictions agree to 1e-5', () => {
    const model = kg.models.bnCnn({ device: 'cpu', hidden: 32, weightScale: 0.1 });
    const folded = expectSamePredictions(model, [5, 1, 28, 28], 3);
    expect(countOf(model, kg.nn.BatchNorm)).toBe(3);
    expect(countOf(folded, kg.nn.BatchNorm)).toBe(0);
    expect(folded.children().map(([n]) => n)).toEqual(['conv1', 'relu1', 'pool1', 'conv2', 'relu2', 'pool2', 'flatten', 'fc1', 'relu3', 'fc2']);
    expect(folded.training).toBe(false);
  });

  test('a ResNet: batch norms in the stem, the residual bodies and the strided shortcuts fold; bias-free convolutions gain a bias', () => {
    const model = kg.models.resnet({ depth: 8, width: 4, device: 'cpu', seed: 2 });
    const folded = expectSamePredictions(model, [3, 3, 9, 11], 5);
    expect(countOf(folded, kg.nn.BatchNorm)).toBe(0);
    const sd = folded.stateDict();
    expect(sd['stem.conv.bias'].shape).toEqual([4]);
    expect(sd['stage2.0.residual.shortcut.conv.bias'].shape).toEqual([8]);
    expect(sd['stage1.0.residual.body.bn1.gamma']).toBeUndefined();
    expect(folded.numParameters()).toBeLessThan(model.numParameters());
  });

  test('the folded model is independent: training the original afterwards does not change it', () => {
    const model = new kg.nn.Sequential(new kg.nn.Linear(4, 3, { seed: 1 }), new kg.nn.BatchNorm(3), new kg.nn.ReLU(), new kg.nn.Dropout(0.5));
    randomizeBatchNorms(model, 7);
    const folded = kg.nn.foldBatchNorm(model);
    const x = kg.tensor(new Random(9).fillNormal(new Float32Array(8)), [2, 4]);
    const first = Array.from(folded.forward(x).toArray());
    model.forward(kg.tensor(new Random(10).fillNormal(new Float32Array(20), 3, 2), [5, 4])); // moves the running statistics
    (model.at(0) as kg.nn.Linear).weight.copy_(kg.zeros([3, 4]));
    expect(Array.from(folded.forward(x).toArray())).toEqual(first);
    expect(model.at(3).training).toBe(true);
  });

  test('a batch norm that follows no convolution or dense layer is kept, copied', () => {
    const model = new kg.nn.Sequential(new kg.nn.ReLU(), new kg.nn.BatchNorm(3), new kg.nn.Linear(3, 2, { seed: 1 }));
    const folded = expectSamePredictions(model, [4, 3], 11);
    expect(countOf(folded, kg.nn.BatchNorm)).toBe(1);
    expect((folded as kg.nn.Sequential).at(1)).not.toBe(model.at(1));
  });

  test('a BatchRenorm after a convolution folds too: its inference is batch norm with its moving statistics', () => {
    const model = new kg.nn.Sequential(new kg.nn.Conv2d(2, 3, 3, { seed: 4 }), new kg.nn.BatchRenorm(3), new kg.nn.ReLU());
    const folded = expectSamePredictions(model, [2, 2, 6, 5], 13);
    expect(countOf(folded, kg.nn.BatchNorm)).toBe(0);
  });

  test('grouped and depthwise convolutions fold: the scale is per output channel, whatever its group', () => {
    const model = new kg.nn.Sequential(
      new kg.nn.Conv2d(4, 6, 3, { groups: 2, padding: 1, seed: 5 }),
      new kg.nn.BatchNorm(6),
      new kg.nn.Conv2d(6, 6, 3, { groups: 6, bias: false, seed: 6 }),
      new kg.nn.BatchNorm(6),
    );
    const folded = expectSamePredictions(model, [3, 4, 7, 5], 17);
    expect(countOf(folded, kg.nn.BatchNorm)).toBe(0);
    expect(String((folded as kg.nn.Sequential).at(1))).toBe('Conv2d(6, 6, kernelSize=[3, 3], groups=6)');
  });

  test('a model that is not a Module is refused by name', () => {
    expect(() => kg.nn.foldBatchNorm({} as never)).toThrow(new TypeError('kg.nn.foldBatchNorm: model must be a Module, got an object'));
  });
});
