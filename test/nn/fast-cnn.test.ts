// kg.models.fastCnn, the MNIST race's network: its layers and state dict, PyTorch's initialization
// bounds, and a few Adam steps on a generated batch that must fit it.
import * as kg from '../../lib/index';
import { fastCnn } from '../../lib/models/fast-cnn';
import { trainStep } from '../../lib/train/loop';

describe('fastCnn', () => {
  test('layers, state dict names and shapes, no bias before a batch norm', () => {
    const model = fastCnn({ device: 'cpu', seed: 3 });
    const shapes = Object.fromEntries(Object.entries(model.stateDict()).map(([k, t]) => [k, t.shape]));
    expect(shapes).toEqual({
      'conv1.weight': [20, 1, 5, 5], 'bn1.gamma': [20], 'bn1.beta': [20], 'bn1.runningMean': [20], 'bn1.runningVar': [20], 'bn1.numBatchesTracked': [],
      'conv2.weight': [50, 20, 5, 5], 'bn2.gamma': [50], 'bn2.beta': [50], 'bn2.runningMean': [50], 'bn2.runningVar': [50], 'bn2.numBatchesTracked': [],
      'fc1.weight': [128, 800], 'bn3.gamma': [128], 'bn3.beta': [128], 'bn3.runningMean': [128], 'bn3.runningVar': [128], 'bn3.numBatchesTracked': [],
      'fc2.weight': [10, 128], 'fc2.bias': [10],
    });
    // PyTorch's default: U(-1/sqrt(fanIn), 1/sqrt(fanIn)); the running statistics start at 0 and 1.
    const w2 = model.stateDict()['conv2.weight'].toArray();
    const bound = 1 / Math.sqrt(20 * 25);
    expect(Math.max(...w2.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...w2.map(Math.abs))).toBeGreaterThan(0.9 * bound);
    expect(Array.from(model.stateDict()['bn2.runningVar'].toArray())).toEqual(new Array(50).fill(1));
    expect(Array.from(fastCnn({ device: 'cpu', seed: 3 }).stateDict()['fc1.weight'].toArray())).toEqual(Array.from(model.stateDict()['fc1.weight'].toArray()));
    expect(() => fastCnn({ seed: 0.5 })).toThrow(/kg\.models\.fastCnn: seed must be an integer, got 0\.5/);
    expect(() => fastCnn({ depth: 3 } as never)).toThrow(/kg\.models\.fastCnn/);
  });

  test('Adam fits a generated batch in a few steps; inference gives (n, 10) logits', () => {
    const model = fastCnn({ device: 'cpu', seed: 1 });
    const n = 24;
    const x = kg.rand([n, 1, 28, 28], { seed: 5, device: 'cpu' });
    const y = kg.tensor(Int32Array.from({ length: n }, (_, i) => (i * 7) % 10), [n], { device: 'cpu' });
    const optimizer = new kg.optim.Adam(model.parameters(), { lr: 0.01 });
    const first = trainStep(model, optimizer, x, y, 'mean').meanLoss;
    let last = first;
    for (let i = 0; i < 15; i++) last = trainStep(model, optimizer, x, y, 'mean').meanLoss;
    expect(first).toBeGreaterThan(1.5); // about ln 10 at the start
    expect(last).toBeLessThan(0.5 * first);
    model.eval();
    const logits = model.forward(x);
    expect(logits.shape).toEqual([n, 10]);
    expect(logits.toArray().every(Number.isFinite)).toBe(true);
  });
});
