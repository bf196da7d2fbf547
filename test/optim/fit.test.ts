// fit() and trainStep() with any optimizer, and fit()'s schedule: the rate of every step comes
// from the schedule, with the step counted across epochs (and from startEpoch on resumed runs).
import * as kg from '../../lib';
import { ArrayDataset, DataLoader } from '../../lib/data/loader';
import { fit, FitOptions } from '../../lib/train/loop';

function dataset(count: number): ArrayDataset {
  const r = new kg.Random(count);
  const inputs = new Float32Array(count * 4);
  for (let i = 0; i < inputs.length; i++) inputs[i] = r.uniform();
  return { inputs, labels: Array.from({ length: count }, (_, i) => i % 2), count, sampleShape: [1, 2, 2] };
}

function setup(count: number, batchSize: number, makeOptimizer: (ps: kg.Tensor[]) => kg.optim.Optimizer) {
  const model = new kg.nn.Sequential(new kg.nn.Flatten(), new kg.nn.Linear(4, 6, { seed: 1 }), new kg.nn.BatchNorm(6), new kg.nn.ReLU(), new kg.nn.Linear(6, 2, { seed: 2 }));
  const options: FitOptions = {
    optimizer: makeOptimizer(model.parameters()),
    train: new DataLoader(dataset(count), { batchSize, device: 'cpu' }),
    test: new DataLoader(dataset(8), { batchSize: 8, device: 'cpu' }),
    epochs: 1,
    progress: false,
    log: () => {},
  };
  return { model, options };
}

describe('fit with Adam, AdamW and schedules', () => {
  test.each([
    ['Adam', (ps: kg.Tensor[]) => new kg.optim.Adam(ps, { lr: 0.01 })],
    ['AdamW', (ps: kg.Tensor[]) => new kg.optim.AdamW(ps, { lr: 0.01 })],
    ['SGD with Nesterov', (ps: kg.Tensor[]) => new kg.optim.SGD(ps, { lr: 0.01, momentum: 0.9, nesterov: true })],
  ])('%s trains (the loss goes down)', async (_, make) => {
    const { model, options } = setup(64, 8, make);
    const metrics = await fit(model, { ...options, epochs: 6, lossReduction: 'mean' });
    expect(metrics[5].loss).toBeLessThan(metrics[0].loss);
    options.optimizer.dispose();
  });

  test('the schedule sets lr before every step, counting steps across epochs', async () => {
    // 22 examples in batches of 4: 5 full batches and a last one of 2, so 6 steps an epoch.
    const { model, options } = setup(22, 4, (ps) => new kg.optim.Adam(ps));
    const seen: number[] = [];
    const rates: number[] = [];
    const schedule = (step: number) => {
      seen.push(step);
      return 0.001 * (step + 1);
    };
    const optimizer = options.optimizer;
    const realStep = optimizer.step.bind(optimizer);
    optimizer.step = () => {
      rates.push(optimizer.lr);
      realStep();
    };
    await fit(model, { ...options, epochs: 3, schedule });
    expect(kg.train.stepsPerEpoch(options.train)).toBe(6);
    expect(seen).toEqual(Array.from({ length: 18 }, (_, i) => i));
    rates.forEach((r, i) => expect(r).toBeCloseTo(0.001 * (i + 1), 12));
  });

  test('a resumed run continues the schedule at startEpoch * steps per epoch; skipped batches of one do not count', async () => {
    // 21 examples in batches of 4: the last batch holds 1 example and is skipped, 5 steps an epoch.
    const { model, options } = setup(21, 4, (ps) => new kg.optim.SGD(ps, { lr: 0.1 }));
    const seen: number[] = [];
    await fit(model, { ...options, startEpoch: 2, epochs: 1, schedule: (s) => (seen.push(s), 0.01) });
    expect(seen).toEqual([10, 11, 12, 13, 14]);
  });

  test('a schedule that returns something other than a rate stops the run, naming the step', async () => {
    const { model, options } = setup(16, 4, (ps) => new kg.optim.SGD(ps, { lr: 0.1 }));
    await expect(fit(model, { ...options, schedule: (s) => (s === 2 ? NaN : 0.1) })).rejects.toThrow(
      /^kg\.train\.fit: schedule\(2\) returned NaN, which is not a learning rate \(a finite number >= 0\)/,
    );
    await expect(fit(model, { ...options, schedule: () => -1 })).rejects.toThrow(/schedule\(0\) returned -1/);
    await expect(fit(model, { ...options, schedule: 0.1 as never })).rejects.toThrow(/^kg\.train\.fit: schedule must be a function \(step\) => lr/);
  });

  test('a real schedule end to end: cosine over the whole run ends near minLr', async () => {
    const { model, options } = setup(16, 4, (ps) => new kg.optim.AdamW(ps, { lr: 0.01 }));
    const steps = 3 * kg.train.stepsPerEpoch(options.train);
    await fit(model, { ...options, epochs: 3, schedule: kg.optim.schedules.cosine({ lr: 0.01, steps, minLr: 1e-4 }) });
    // The last step ran at schedule(steps - 1), just above minLr.
    expect(options.optimizer.lr).toBeCloseTo(1e-4 + ((0.01 - 1e-4) * (1 + Math.cos((Math.PI * (steps - 1)) / steps))) / 2, 12);
  });

  test('trainStep takes any optimizer, and refuses what is not one', () => {
    const { model } = setup(4, 4, (ps) => new kg.optim.Adam(ps));
    const adam = new kg.optim.Adam(model.parameters(), { lr: 0.01 });
    const x = kg.rand([4, 1, 2, 2], { seed: 3 });
    const r = kg.train.trainStep(model, adam, x, [0, 1, 0, 1]);
    expect(Number.isFinite(r.meanLoss)).toBe(true);
    expect(() => kg.train.trainStep(model, { step() {}, zeroGrad() {}, lr: 1 } as never, x, [0, 1, 0, 1])).toThrow(
      /^kg\.train\.trainStep: optimizer must be a kg\.optim optimizer \(SGD, Adam, AdamW\), got an object/,
    );
  });

  test('stepsPerEpoch counts the batches fit() trains on', () => {
    const loader = (count: number, batchSize: number, dropLast = false) => new DataLoader(dataset(count), { batchSize, dropLast, device: 'cpu' });
    expect(kg.train.stepsPerEpoch(loader(64, 8))).toBe(8);
    expect(kg.train.stepsPerEpoch(loader(65, 8))).toBe(8);
    expect(kg.train.stepsPerEpoch(loader(66, 8))).toBe(9);
    expect(kg.train.stepsPerEpoch(loader(66, 8, true))).toBe(8);
    expect(kg.train.stepsPerEpoch(loader(5, 1))).toBe(0);
    expect(() => kg.train.stepsPerEpoch({} as never)).toThrow(/^kg\.train\.stepsPerEpoch: train must be a kg\.data\.DataLoader, got an object/);
  });
});
