// fit(): its options are checked up front, it lets the event loop turn between batches (so
// finalizers and timers run during an epoch), and an epoch that cannot train anything is an error.
import * as kg from '../../lib';
import { ArrayDataset, DataLoader } from '../../lib/data/loader';
import { fit, FitOptions } from '../../lib/train/loop';

function dataset(count: number): ArrayDataset {
  const r = new kg.Random(count);
  const inputs = new Float32Array(count * 4);
  for (let i = 0; i < inputs.length; i++) inputs[i] = r.uniform();
  return { inputs, labels: Array.from({ length: count }, (_, i) => i % 2), count, sampleShape: [1, 2, 2] };
}

function setup(count: number, batchSize: number) {
  const model = new kg.nn.Sequential(new kg.nn.Flatten(), new kg.nn.Linear(4, 6, { seed: 1 }), new kg.nn.BatchNorm(6), new kg.nn.ReLU(), new kg.nn.Linear(6, 2, { seed: 2 }));
  const options: FitOptions = {
    optimizer: new kg.optim.SGD(model.parameters(), { lr: 0.01 }),
    train: new DataLoader(dataset(count), { batchSize, device: 'cpu' }),
    test: new DataLoader(dataset(8), { batchSize: 8, device: 'cpu' }),
    epochs: 1,
    progress: false,
    log: () => {},
  };
  return { model, options };
}

describe('fit', () => {
  test('the event loop turns at least once per batch', async () => {
    const { model, options } = setup(40, 4); // 10 batches
    let turns = 0;
    let running = true;
    const tick = () => {
      turns++;
      if (running) setImmediate(tick);
    };
    setImmediate(tick);
    await fit(model, { ...options, epochs: 2 });
    running = false;
    expect(turns).toBeGreaterThanOrEqual(20);
  });

  test('an epoch whose batches all hold one example is an error, not a NaN loss', async () => {
    const { model, options } = setup(3, 1);
    await expect(fit(model, options)).rejects.toThrow(
      /^kg\.train\.fit: epoch 0 trained on nothing: its 3 batches have fewer than 2 examples each, and batch norm needs 2 to compute a variance \(3 examples, batchSize 1\)/,
    );
  });

  test.each<[string, (o: FitOptions) => unknown, RegExp]>([
    ['null options', () => null, /^kg\.train\.fit: options must be an object, got null/],
    ['an unknown option', (o) => ({ ...o, epoch: 3 }), /^kg\.train\.fit: unknown option 'epoch' \(known options: optimizer, schedule, train, test, trainEval, epochs, startEpoch, lossReduction, progress, log, onEpoch, compile\)/],
    ['a missing optimizer', (o) => ({ ...o, optimizer: undefined }), /^kg\.train\.fit: optimizer must be a kg\.optim optimizer \(SGD, Adam, AdamW\), got undefined/],
    ['an array as the test set', (o) => ({ ...o, test: [] }), /^kg\.train\.fit: test must be a kg\.data\.DataLoader, got an array of length 0/],
    ['epochs 0', (o) => ({ ...o, epochs: 0 }), /^kg\.train\.fit: epochs must be a positive integer, got 0/],
    ['a fractional startEpoch', (o) => ({ ...o, startEpoch: 0.5 }), /^kg\.train\.fit: startEpoch must be a non-negative integer, got 0\.5/],
    ['a compile option that is not a boolean', (o) => ({ ...o, compile: 'yes' }), /^kg\.train\.fit: compile must be true or false, got "yes"/],
    ['an unknown reduction', (o) => ({ ...o, lossReduction: 'avg' }), /^kg\.train\.fit: lossReduction must be 'sum' or 'mean', got "avg"/],
  ])('rejects %s', async (_, change, message) => {
    const { model, options } = setup(8, 4);
    await expect(fit(model, change(options) as FitOptions)).rejects.toThrow(message);
  });
});
