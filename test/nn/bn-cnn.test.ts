import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as kg from '../../lib/index';
import { loadCheckpoint, loadCheckpointInto, saveCheckpoint } from '../../lib/io/checkpoint';
import { readSafetensors } from '../../lib/io/safetensors';
import { batchNormParameters, bnCnn } from '../../lib/models/bn-cnn';
import { SGD } from '../../lib/optim/sgd';
import { trainStep } from '../../lib/train/loop';

const KEYS = [
  ['conv1.weight', [20, 1, 3, 3]],
  ['conv1.bias', [20]],
  ['bn1.gamma', [20]],
  ['bn1.beta', [20]],
  ['bn1.runningMean', [20]],
  ['bn1.runningVar', [20]],
  ['bn1.numBatchesTracked', []],
  ['conv2.weight', [50, 20, 5, 5]],
  ['conv2.bias', [50]],
  ['bn2.gamma', [50]],
  ['bn2.beta', [50]],
  ['bn2.runningMean', [50]],
  ['bn2.runningVar', [50]],
  ['bn2.numBatchesTracked', []],
  ['fc1.weight', [128, 800]],
  ['fc1.bias', [128]],
  ['bn3.gamma', [128]],
  ['bn3.beta', [128]],
  ['bn3.runningMean', [128]],
  ['bn3.runningVar', [128]],
  ['bn3.numBatchesTracked', []],
  ['fc2.weight', [10, 128]],
  ['fc2.bias', [10]],
];

function meanStd(a: Float32Array): [number, number] {
  const m = a.reduce((s, v) => s + v, 0) / a.length;
  const v = a.reduce((s, x) => s + (x - m) ** 2, 0) / a.length;
  return [m, Math.sqrt(v)];
}

describe('bnCnn', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kg-bncnn-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('state dict names and PyTorch shapes', () => {
    const model = bnCnn({ seed: 1 });
    const sd = model.stateDict();
    expect(Object.entries(sd).map(([k, t]) => [k, [...t.shape]])).toEqual(KEYS);
    expect(model.parameters()).toHaveLength(14); // the tutorial's 14 params
    expect(batchNormParameters(model)).toHaveLength(6);
  });

  test("the tutorial's initialization, reproducible by seed", () => {
    const a = bnCnn({ seed: 5 }).stateDict();
    const b = bnCnn({ seed: 5 }).stateDict();
    const c = bnCnn({ seed: 6 }).stateDict();
    expect(a['conv2.weight'].toArray()).toEqual(b['conv2.weight'].toArray());
    expect(a['conv2.weight'].toArray()).not.toEqual(c['conv2.weight'].toArray());
    const [wm, ws] = meanStd(a['conv2.weight'].toArray());
    expect(Math.abs(wm)).toBeLessThan(0.001);
    expect(ws).toBeGreaterThan(0.009);
    expect(ws).toBeLessThan(0.011);
    const [gm] = meanStd(a['bn3.gamma'].toArray());
    expect(Math.abs(gm - 1)).toBeLessThan(0.005);
    const [bm] = meanStd(a['bn3.beta'].toArray());
    expect(Math.abs(bm)).toBeLessThan(0.005);
  });

  test('forward shapes: (n, 1, 28, 28) -> (n, 10)', () => {
    const model = bnCnn({ seed: 1 });
    expect(model.forward(kg.randn([3, 1, 28, 28], { seed: 1 })).shape).toEqual([3, 10]);
  });

  test('checkpoint round trip: bitwise-equal inference output in a fresh model', () => {
    const model = bnCnn({ seed: 1 });
    const opt = new SGD(model.parameters(), { lr: 0.001, momentum: 0.9 });
    const x = kg.rand([16, 1, 28, 28], { seed: 2 });
    const y = kg.tensor(Array.from({ length: 16 }, (_, i) => i % 10), [16]);
    for (let i = 0; i < 3; i++) trainStep(model, opt, x, y);
    const file = path.join(dir, 'model.safetensors');
    saveCheckpoint(file, model, { architecture: 'bn-cnn', epoch: '0' });

    const fresh = bnCnn({ seed: 99 });
    const meta = loadCheckpointInto(file, fresh);
    expect(meta).toMatchObject({ architecture: 'bn-cnn', epoch: '0', format: 'pt' });
    model.eval();
    fresh.eval();
    const a = Buffer.from(model.forward(x).toArray().buffer);
    const b = Buffer.from(fresh.forward(x).toArray().buffer);
    expect(b.equals(a)).toBe(true);

    // Running statistics are in the file and were updated by training.
    const { tensors } = readSafetensors(file);
    expect(Object.keys(tensors)).toEqual(KEYS.map(([k]) => k));
    expect(Array.from(tensors['bn1.runningVar'].data).some((v) => v !== 1)).toBe(true);
  });

  test('loading a state dict with missing or extra keys fails clearly', () => {
    const file = path.join(dir, 'm.safetensors');
    saveCheckpoint(file, bnCnn({ seed: 1 }));
    const { stateDict } = loadCheckpoint(file);
    const missing = { ...stateDict };
    delete missing['bn2.runningVar'];
    expect(() => bnCnn().loadStateDict(missing)).toThrow(/missing keys: bn2\.runningVar/);
    expect(() => bnCnn().loadStateDict({ ...stateDict, 'fc3.weight': kg.zeros([1]) })).toThrow(/unexpected keys: fc3\.weight/);
    expect(() => bnCnn({ hidden: 64 }).loadStateDict(stateDict)).toThrow(/shape mismatch for fc1\.weight: expected \[64, 800\], got \[128, 800\]/);
  });
});
