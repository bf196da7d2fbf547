import { epochBatches, epochOrder, numBatches, permutation } from '../../lib/data/sampler';

const plan = { count: 10, batchSize: 4, shuffle: true, seed: 7, dropLast: false };

describe('batch sampling', () => {
  test('a seeded permutation is reproducible and a permutation', () => {
    const a = permutation(1000, 42);
    expect(Array.from(permutation(1000, 42))).toEqual(Array.from(a));
    expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(Array.from(permutation(1000, 43))).not.toEqual(Array.from(a));
  });

  test('shuffling differs across epochs, reproducible per (seed, epoch)', () => {
    const big = { ...plan, count: 200 };
    const e0 = Array.from(epochOrder(big, 0));
    const e1 = Array.from(epochOrder(big, 1));
    expect(e0).not.toEqual(e1);
    expect(Array.from(epochOrder(big, 1))).toEqual(e1);
    expect(Array.from(epochOrder({ ...big, seed: 8 }, 0))).not.toEqual(e0);
  });

  test('no shuffling keeps the order', () => {
    expect(Array.from(epochOrder({ ...plan, shuffle: false }, 3))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  test('the last partial batch is kept by default and dropped with dropLast', () => {
    const batches = epochBatches(plan, 0);
    expect(batches.map((b) => b.length)).toEqual([4, 4, 2]);
    expect(numBatches(plan)).toBe(3);
    const all = batches.flatMap((b) => Array.from(b)).sort((x, y) => x - y);
    expect(all).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const dropped = epochBatches({ ...plan, dropLast: true }, 0);
    expect(dropped.map((b) => b.length)).toEqual([4, 4]);
    expect(numBatches({ ...plan, dropLast: true })).toBe(2);
  });
});
