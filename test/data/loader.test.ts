import { ArrayDataset, DataLoader, mnistDataset, subset } from '../../lib/data/loader';
import { loadMnistSplit } from '../../lib/data/mnist';

function toy(count: number): ArrayDataset {
  const inputs = new Float32Array(count * 4);
  for (let i = 0; i < count; i++) inputs.fill(i, i * 4, i * 4 + 4);
  return { inputs, labels: Uint8Array.from({ length: count }, (_, i) => i % 10), count, sampleShape: [1, 2, 2] };
}

describe('DataLoader', () => {
  test('batches in order without shuffling; last partial batch kept', () => {
    const loader = new DataLoader(toy(10), { batchSize: 4 });
    expect(loader.length).toBe(3);
    const batches = [...loader.batches(0)];
    expect(batches.map((b) => b.x.shape)).toEqual([[4, 1, 2, 2], [4, 1, 2, 2], [2, 1, 2, 2]]);
    expect(Array.from(batches[2].x.toArray())).toEqual([8, 8, 8, 8, 9, 9, 9, 9]);
    expect(Array.from(batches[1].y.toArray())).toEqual([4, 5, 6, 7]);
    expect(batches[1].y.shape).toEqual([4]);
    expect(Array.from(batches[1].labels)).toEqual([4, 5, 6, 7]);
  });

  test('dropLast drops the partial batch', () => {
    const loader = new DataLoader(toy(10), { batchSize: 4, dropLast: true });
    expect([...loader.batches(0)].map((b) => b.x.shape[0])).toEqual([4, 4]);
  });

  test('seeded shuffling: reproducible, a permutation, different each epoch; x and y stay paired', () => {
    const a = new DataLoader(toy(50), { batchSize: 8, shuffle: true, seed: 3 });
    const b = new DataLoader(toy(50), { batchSize: 8, shuffle: true, seed: 3 });
    const first = [...a].map((x) => Array.from(x.indices)).flat();
    const again = [...b].map((x) => Array.from(x.indices)).flat();
    expect(again).toEqual(first);
    expect([...first].sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    const second = [...a].map((x) => Array.from(x.indices)).flat(); // epoch 1
    expect(second).not.toEqual(first);
    expect(a.epoch).toBe(2);
    for (const batch of a.batches(5)) {
      const xs = batch.x.toArray();
      batch.indices.forEach((k, i) => {
        expect(xs[i * 4]).toBe(k);
        expect(batch.labels[i]).toBe(k % 10);
      });
    }
  });

  test('limit / subset keep the first examples', () => {
    const loader = new DataLoader(toy(10), { batchSize: 4, limit: 6 });
    expect(loader.size).toBe(6);
    expect(subset(toy(10), 100).count).toBe(10);
    expect(() => subset(toy(3), 0)).toThrow(/positive integer/);
    expect(() => new DataLoader(toy(3), { batchSize: 0 })).toThrow(/batchSize must be a positive integer/);
  });

  test('MNIST batches are (B, 1, 28, 28) in [0, 1] with digit labels', () => {
    const split = loadMnistSplit('test', { limit: 100 });
    expect(split.count).toBe(100);
    const loader = new DataLoader(mnistDataset(split), { batchSize: 64 });
    const [b0, b1] = [...loader.batches(0)];
    expect(b0.x.shape).toEqual([64, 1, 28, 28]);
    expect(b1.x.shape).toEqual([36, 1, 28, 28]);
    const xs = b0.x.toArray();
    expect(Math.min(...xs)).toBe(0);
    expect(Math.max(...xs)).toBe(1);
    expect(Array.from(b0.labels.slice(0, 5))).toEqual([7, 2, 1, 0, 4]); // the first t10k labels
  });
});
