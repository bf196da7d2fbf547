// Module, DataLoader, SGD and checkpoints on the GPU. Skipped where no CUDA device is present
// (failing instead when one is required: see test/gpu/helpers.ts).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as kg from '../../lib/index';
import { ArrayDataset, DataLoader } from '../../lib/data/loader';
import { loadCheckpointInto, saveCheckpoint } from '../../lib/io/checkpoint';
import { bnCnn } from '../../lib/models/bn-cnn';
import { SGD } from '../../lib/optim/sgd';
import { evaluateAccuracy } from '../../lib/train/evaluate';
import { trainStep } from '../../lib/train/loop';
import { gpuTest } from '../gpu/helpers';


describe('training pieces on cuda', () => {
  gpuTest("Module.to('cuda') moves parameters and buffers and keeps them trainable", () => {
    const model = bnCnn({ seed: 1, device: 'cpu' });
    const before = model.stateDict();
    const values = Object.fromEntries(Object.entries(before).map(([k, t]) => [k, t.toArray()]));
    model.to('cuda');
    const after = model.stateDict();
    for (const [k, t] of Object.entries(after)) {
      expect(t.device).toBe('cuda');
      expect(t.toArray()).toEqual(values[k]);
      expect(before[k].disposed).toBe(true);
    }
    expect(model.parameters().every((p) => p.requiresGrad && p.device === 'cuda')).toBe(true);
    expect(model.namedBuffers().every(([, b]) => !b.requiresGrad)).toBe(true);
  });

  gpuTest('a few SGD steps with momentum on cuda match the CPU closely; checkpoints move across devices', () => {
    const x = kg.rand([32, 1, 28, 28], { seed: 3, device: 'cpu' });
    const labels = Array.from({ length: 32 }, (_, i) => i % 10);
    const cpu = bnCnn({ seed: 2, device: 'cpu' });
    const gpu = bnCnn({ seed: 2, device: 'cuda' });
    const optCpu = new SGD(cpu.parameters(), { lr: 0.001, momentum: 0.9 });
    const optGpu = new SGD(gpu.parameters(), { lr: 0.001, momentum: 0.9 });
    const xg = x.to('cuda');
    const yc = kg.tensor(labels, [32], { device: 'cpu' });
    const yg = yc.to('cuda');
    for (let i = 0; i < 3; i++) {
      trainStep(cpu, optCpu, x, yc);
      trainStep(gpu, optGpu, xg, yg);
    }
    cpu.eval();
    gpu.eval();
    const a = cpu.forward(x).toArray();
    const b = gpu.forward(xg).toArray();
    for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThan(1e-3 * (1 + Math.abs(a[i])));

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kg-cuda-'));
    const file = path.join(dir, 'm.safetensors');
    saveCheckpoint(file, gpu);
    const back = bnCnn({ seed: 9, device: 'cpu' });
    loadCheckpointInto(file, back);
    back.eval();
    const c = back.forward(x).toArray();
    for (let i = 0; i < a.length; i++) expect(Math.abs(c[i] - b[i])).toBeLessThan(1e-3 * (1 + Math.abs(b[i])));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  gpuTest('DataLoader batches and evaluateAccuracy on cuda', () => {
    const count = 70;
    const ds: ArrayDataset = {
      inputs: kg.rand([count, 1, 28, 28], { seed: 5 }).toArray(),
      labels: Uint8Array.from({ length: count }, (_, i) => i % 10),
      count,
      sampleShape: [1, 28, 28],
    };
    const loader = new DataLoader(ds, { batchSize: 32, device: 'cuda' });
    const batches = [...loader.batches(0)];
    expect(batches.map((b) => [b.x.device, b.x.shape[0]])).toEqual([['cuda', 32], ['cuda', 32], ['cuda', 6]]);
    const model = bnCnn({ seed: 1, device: 'cuda' });
    model.forward(batches[0].x); // initializes the moving statistics
    const acc = evaluateAccuracy(model, loader);
    expect(acc).toBeGreaterThanOrEqual(0);
    expect(acc).toBeLessThanOrEqual(1);
  });
});
