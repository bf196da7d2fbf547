// DataLoader transforms: normalize, random crop with padding and horizontal flip, against
// references written out pixel by pixel; seeded per (seed, epoch, example) so runs reproduce.
import * as kg from '../../lib';
import type { ArrayDataset } from '../../lib/data/loader';

const D = kg.data;

function dataset(count: number, shape: [number, number, number]): ArrayDataset {
  const size = shape[0] * shape[1] * shape[2];
  const inputs = Float32Array.from({ length: count * size }, (_, i) => i + 1); // distinct, nonzero
  return { inputs, labels: Array.from({ length: count }, (_, i) => i % 10), count, sampleShape: shape };
}

function batchOf(loader: kg.data.DataLoader, epoch = 0): Float32Array[] {
  return [...loader.batches(epoch)].map((b) => b.x.toArray());
}

describe('transforms', () => {
  test('normalize: (x - mean[c]) / std[c]', () => {
    const ds = dataset(2, [3, 2, 5]);
    const mean = [1, -2, 0.5];
    const std = [2, 0.5, 3];
    const x = new D.DataLoader(ds, { batchSize: 2, device: 'cpu', transforms: [D.normalize({ mean, std })] }).gather(Int32Array.of(1, 0)).x.toArray();
    for (let i = 0; i < 2; i++) {
      const k = 1 - i;
      for (let j = 0; j < 30; j++) {
        const c = Math.floor(j / 10);
        expect(x[i * 30 + j]).toBeCloseTo((ds.inputs[k * 30 + j] - mean[c]) / std[c], 4);
      }
    }
    expect(() => D.normalize({ mean: [0, 0], std: [1, 1, 1] })).toThrow(/kg\.data\.normalize: mean has 2 channels but std has 3/);
    expect(() => D.normalize({ mean: 0, std: 0 })).toThrow(/std must be a positive finite number/);
    const two = new D.DataLoader(ds, { batchSize: 2, device: 'cpu', transforms: [D.normalize({ mean: [0, 0], std: 1 })] });
    expect(() => two.gather(Int32Array.of(0))).toThrow(/mean has 2 values but the examples have 3 channels/);
  });

  test('randomCrop: every output is the input shifted by the drawn offset, zeros where it moved out', () => {
    const ds = dataset(40, [2, 5, 7]);
    const pad = 2;
    const loader = new D.DataLoader(ds, { batchSize: 40, device: 'cpu', transforms: [D.randomCrop({ padding: pad })], seed: 3 });
    const x = loader.gather(Int32Array.from({ length: 40 }, (_, i) => i), 4).x.toArray();
    const shifts = new Set<string>();
    for (let k = 0; k < 40; k++) {
      const src = ds.inputs.subarray(k * 70, (k + 1) * 70);
      const out = x.subarray(k * 70, (k + 1) * 70);
      // Find the shift that explains the output; it must be within the padding.
      let found: string | null = null;
      for (let dy = -pad; dy <= pad && !found; dy++) {
        for (let dx = -pad; dx <= pad && !found; dx++) {
          let ok = true;
          for (let c = 0; c < 2 && ok; c++) {
            for (let i = 0; i < 5 && ok; i++) {
              for (let j = 0; j < 7 && ok; j++) {
                const r = i + dy;
                const q = j + dx;
                const want = r >= 0 && r < 5 && q >= 0 && q < 7 ? src[(c * 5 + r) * 7 + q] : 0;
                ok = out[(c * 5 + i) * 7 + j] === want;
              }
            }
          }
          if (ok) found = `${dy},${dx}`;
        }
      }
      expect(found).not.toBeNull();
      shifts.add(found as string);
    }
    expect(shifts.size).toBeGreaterThan(8); // 25 possible shifts, 40 draws
  });

  test('horizontalFlip mirrors rows; p 0 never, p 1 always', () => {
    const ds = dataset(3, [2, 3, 4]);
    const all = Int32Array.of(0, 1, 2);
    const flipped = new D.DataLoader(ds, { device: 'cpu', transforms: [D.horizontalFlip({ p: 1 })] }).gather(all).x.toArray();
    for (let k = 0; k < 3; k++) {
      for (let row = 0; row < 6; row++) {
        for (let j = 0; j < 4; j++) expect(flipped[k * 24 + row * 4 + j]).toBe(ds.inputs[k * 24 + row * 4 + (3 - j)]);
      }
    }
    const kept = new D.DataLoader(ds, { device: 'cpu', transforms: [D.horizontalFlip({ p: 0 })] }).gather(all).x.toArray();
    expect(Array.from(kept)).toEqual(Array.from(ds.inputs));
    expect(() => D.horizontalFlip({ p: 2 })).toThrow(/kg\.data\.horizontalFlip: p must be a number in \[0, 1\], got 2/);
  });

  test('seeded per (seed, epoch, example): reproducible, different across epochs, independent of the batch', () => {
    const ds = dataset(16, [3, 8, 8]);
    const make = (seed: number) =>
      new D.DataLoader(ds, { batchSize: 4, shuffle: true, seed, device: 'cpu', transforms: [D.randomCrop({ padding: 3 }), D.horizontalFlip()] });
    expect(batchOf(make(5), 2).map((b) => Array.from(b))).toEqual(batchOf(make(5), 2).map((b) => Array.from(b)));
    expect(batchOf(make(5), 2).map((b) => Array.from(b))).not.toEqual(batchOf(make(6), 2).map((b) => Array.from(b)));
    const a = make(5);
    const one = a.gather(Int32Array.of(7), 1).x.toArray();
    const inBatch = a.gather(Int32Array.of(3, 7, 9), 1).x.toArray().subarray(192, 384);
    expect(Array.from(inBatch)).toEqual(Array.from(one));
    expect(Array.from(a.gather(Int32Array.of(7), 2).x.toArray())).not.toEqual(Array.from(one));
    // The dataset itself is never modified.
    expect(ds.inputs[0]).toBe(1);
  });

  test('bad transforms', () => {
    const ds = dataset(2, [1, 2, 2]);
    expect(() => new D.DataLoader(ds, { transforms: D.horizontalFlip() as never })).toThrow(/kg\.data\.DataLoader: transforms must be an array/);
    expect(() => new D.DataLoader(ds, { transforms: [{}] as never })).toThrow(/transforms\[0\] is not a transform/);
    const flat: ArrayDataset = { inputs: new Float32Array(8), labels: [0, 1], count: 2, sampleShape: [4] };
    expect(() => new D.DataLoader(flat, { transforms: [D.horizontalFlip()] })).toThrow(/transforms need examples of shape \(c, h, w\), the dataset's are \[4\]/);
    expect(() => D.randomCrop({ padding: -1 })).toThrow(/padding must be a non-negative integer/);
    expect(() => new D.DataLoader(ds).gather(Int32Array.of(0), -1)).toThrow(/epoch must be a non-negative integer/);
  });
});
