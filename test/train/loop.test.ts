import * as kg from '../../lib/index';
import { ArrayDataset, DataLoader } from '../../lib/data/loader';
import { BatchNorm } from '../../lib/nn/batchnorm';
import { Flatten } from '../../lib/nn/flatten';
import { Linear } from '../../lib/nn/linear';
import { ReLU } from '../../lib/nn/activation';
import { Sequential } from '../../lib/nn/sequential';
import { SGD } from '../../lib/optim/sgd';
import { evaluateAccuracy } from '../../lib/train/evaluate';
import { fit } from '../../lib/train/loop';
import { EpochMetrics } from '../../lib/train/metrics';
import { NonFiniteError } from '../../lib/non-finite';

/** Two well-separated classes of 2x2 "images": class 1 is bright on the left column. */
function twoClasses(count: number, seed: number): ArrayDataset {
  const r = new kg.Random(seed);
  const inputs = new Float32Array(count * 4);
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const c = i % 2;
    labels[i] = c;
    for (let k = 0; k < 4; k++) inputs[i * 4 + k] = r.uniform() * 0.5 + (c === 1 && k % 2 === 0 ? 1 : 0);
  }
  return { inputs, labels, count, sampleShape: [1, 2, 2] };
}

function smallNet() {
  return new Sequential(new Flatten(), new Linear(4, 8, { seed: 1 }), new BatchNorm(8), new ReLU(), new Linear(8, 2, { seed: 2 }));
}

describe('training loop', () => {
  test('fit learns, reports each epoch and skips a last batch of one', async () => {
    const model = smallNet();
    const train = new DataLoader(twoClasses(129, 1), { batchSize: 16, shuffle: true, seed: 1 }); // 8x16 + 1
    const test = new DataLoader(twoClasses(64, 2), { batchSize: 16 });
    const lines: string[] = [];
    const seen: EpochMetrics[] = [];
    const result = await fit(model, {
      optimizer: new SGD(model.parameters(), { lr: 0.01 }),
      train,
      test,
      epochs: 3,
      progress: false,
      log: (l) => lines.push(l),
      onEpoch: (m) => {
        seen.push(m);
      },
    });
    expect(result).toHaveLength(3);
    expect(seen).toEqual(result);
    expect(lines[0]).toMatch(/^Epoch 0\. Loss: [\d.e-]+, Train_acc [\d.]+, Test_acc [\d.]+$/);
    expect(result[2].testAccuracy).toBeGreaterThan(0.9);
    expect(result[2].loss).toBeLessThan(result[0].loss);
    expect(result[0].imagesPerSecond).toBeGreaterThan(0);
    expect(result[0].device).toBe(kg.defaultDevice());
    expect(model.training).toBe(true);
  });

  test('evaluateAccuracy runs in inference mode, changes nothing and restores the mode', () => {
    const model = smallNet();
    const loader = new DataLoader(twoClasses(33, 3), { batchSize: 8 });
    // One training-mode pass initializes the moving statistics.
    model.forward(kg.rand([8, 1, 2, 2], { seed: 4 }));
    const before = Object.fromEntries(Object.entries(model.stateDict()).map(([k, t]) => [k, Array.from(t.toArray())]));
    const acc = evaluateAccuracy(model, loader);
    expect(acc).toBeGreaterThanOrEqual(0);
    expect(acc).toBeLessThanOrEqual(1);
    const after = Object.fromEntries(Object.entries(model.stateDict()).map(([k, t]) => [k, Array.from(t.toArray())]));
    expect(after).toEqual(before);
    expect(model.training).toBe(true);
    model.eval();
    evaluateAccuracy(model, loader);
    expect(model.training).toBe(false);
  });
});

describe('a non-finite loss', () => {
  function linearNet() {
    return new Sequential(new Flatten(), new Linear(4, 2, { seed: 1 }));
  }

  /** Runs one epoch on `data` (batches of 8, in order) and returns the error fit() threw. */
  async function failure(model: Sequential, data: ArrayDataset, lr: number): Promise<Error> {
    const train = new DataLoader(data, { batchSize: 8 });
    const test = new DataLoader(twoClasses(8, 9), { batchSize: 8 });
    const run = fit(model, { optimizer: new SGD(model.parameters(), { lr }), train, test, epochs: 1, progress: false, log: () => {} });
    return run.then(
      () => { throw new Error('fit did not fail'); },
      (e: Error) => e,
    );
  }

  function withNaN(batch: number): ArrayDataset {
    const data = twoClasses(40, 5);
    data.inputs[(batch * 8 + 3) * 4 + 1] = NaN; // example 3 of the batch
    return data;
  }

  test('non-finite data names the batch, when the loss is NaN', async () => {
    const e = await failure(linearNet(), withNaN(2), 0.01);
    expect(e).toBeInstanceOf(NonFiniteError);
    expect(e.message).toBe(
      'fit: epoch 0, batch 2: its inputs hold NaN at index 13; the data is not finite, so check or clean that batch (the loss became NaN)',
    );
  });

  test('non-finite data names the batch, when batch norm refuses it first', async () => {
    const e = await failure(smallNet(), withNaN(3), 0.01);
    expect(e).toBeInstanceOf(NonFiniteError);
    expect(e.message).toMatch(/^fit: epoch 0, batch 3: its inputs hold NaN at index 13; the data is not finite, so check or clean that batch \(batchNorm(Relu)?: channel \d+ of x \[8, 8\] has a batch mean of NaN/);
  });

  test('a loss that overflows on finite data is divergence: lower the learning rate', async () => {
    const e = await failure(linearNet(), twoClasses(40, 5), 1e38);
    expect(e).not.toBeInstanceOf(NonFiniteError);
    expect(e.message).toMatch(/^fit: epoch 0, batch [1-4]: the loss became (NaN|Infinity); the inputs are finite, so the model diverged: lower the learning rate \(lr 1e\+38\)$/);
  });

  test('batch norm meeting the values of a diverged model on finite data says divergence too', async () => {
    const e = await failure(smallNet(), twoClasses(40, 5), 1e38);
    expect(e.message).toMatch(/^fit: epoch 0, batch [1-4]: batchNorm(Relu)?: channel \d+ of x \[8, 8\] .*; the inputs are finite, so the model diverged: lower the learning rate/);
  });
});
