// The CUDA runtime as users meet it: the device list, memory that stays flat over a long training
// loop, a clear error for an impossible allocation (after which the process still works), and a
// clear error when CPU and GPU tensors are mixed.
import * as kg from '../../lib';
import { SGD } from '../../lib/optim/sgd';
import { describeGpu, gpu, normal, sized } from './helpers';

const F = kg.nn.functional;

describeGpu('CUDA runtime', () => {
  test('devices() lists the GPU with its name and memory', () => {
    expect(kg.cuda.isAvailable()).toBe(true);
    const d = gpu as kg.CudaDeviceInfo;
    expect(d.index).toBe(0);
    expect(d.name.length).toBeGreaterThan(0);
    expect(d.memory).toBeGreaterThan(1e9);
  });

  test('mixing a CPU and a CUDA tensor throws an error naming both devices', () => {
    const a = kg.ones([3], { device: 'cpu' });
    const b = kg.ones([3], { device: 'cuda' });
    expect(() => a.add(b)).toThrow(/cpu.*cuda|cuda.*cpu/);
    expect(() => kg.ones([2, 3], { device: 'cuda' }).matmul(kg.ones([3, 1], { device: 'cpu' }))).toThrow(/cpu.*cuda|cuda.*cpu/);
    const cpuGamma = kg.ones([3], { device: 'cpu' });
    const cpuBeta = kg.zeros([3], { device: 'cpu' });
    expect(() => F.batchNorm(kg.ones([2, 3], { device: 'cuda' }), cpuGamma, cpuBeta, { training: true })).toThrow(
      /cpu.*cuda|cuda.*cpu/,
    );
  });

  test('an impossible allocation throws an error about memory, and the GPU stays usable', () => {
    const before = kg.cuda.memoryStats();
    expect(() => kg.zeros([1e12 / 4], { device: 'cuda' })).toThrow(/memory/);
    expect(() => kg.zeros([2 ** 40], { device: 'cuda' })).toThrow(/memory/);
    const t = kg.tensor([1, -2, 3], [3], { device: 'cuda' });
    expect(Array.from(t.relu().toArray())).toEqual([1, 0, 3]);
    expect(kg.cuda.memoryStats().allocated).toBeLessThanOrEqual(before.allocated + 1024);
  });

  test('emptyCache returns the cached blocks; memoryStats is consistent', () => {
    kg.tidy(() => kg.zeros([1 << 20], { device: 'cuda' }).add(1).sum().item());
    const s = kg.cuda.memoryStats();
    expect(s.reserved).toBeGreaterThanOrEqual(s.allocated);
    expect(s.peakReserved).toBeGreaterThanOrEqual(s.reserved);
    expect(s.peakAllocated).toBeGreaterThanOrEqual(s.allocated);
    kg.cuda.emptyCache();
    const e = kg.cuda.memoryStats();
    expect(e.reserved).toBe(e.allocated);
  });

  const steps = sized(10_000, 1_000);
  test(
    `${steps.toLocaleString('en-US')} training steps of a small network leave allocated and reserved memory flat`,
    () => {
      const device = 'cuda';
      const p = (shape: number[], seed: number, scale: number) =>
        kg.tensor(normal(shape.reduce((a, b) => a * b, 1), seed, 0, scale), shape, { device }).attachGrad();
      const w1 = p([4, 1, 3, 3], 1, 0.3);
      const b1 = p([4], 2, 0.1);
      const g1 = kg.ones([4], { device }).attachGrad();
      const be1 = kg.zeros([4], { device }).attachGrad();
      const w2 = p([16, 36], 3, 0.2);
      const b2 = p([16], 4, 0.1);
      const w3 = p([10, 16], 5, 0.2);
      const b3 = p([10], 6, 0.1);
      const rm = kg.zeros([4], { device }).keep();
      const rv = kg.ones([4], { device }).keep();
      const params = [w1, b1, g1, be1, w2, b2, w3, b3];
      const opt = new SGD(params, { lr: 0.01, momentum: 0.9, weightDecay: 1e-4 });
      const x = kg.tensor(normal(8 * 64, 7), [8, 1, 8, 8], { device });
      const labels = Array.from({ length: 8 }, (_, i) => i % 10);

      const step = () =>
        kg.tidy(() => {
          opt.zeroGrad();
          const loss = kg.autograd.record(() => {
            let h = F.conv2d(x, w1, b1);
            h = F.relu(F.batchNorm(h, g1, be1, { training: true, runningMean: rm, runningVar: rv }));
            h = F.avgPool2d(h, { kernelSize: 2 }).reshape([8, 36]);
            h = F.relu(F.linear(h, w2, b2));
            return F.softmaxCrossEntropy(F.linear(h, w3, b3), labels, { reduction: 'mean' });
          });
          loss.backward();
          opt.step();
          return loss.item();
        });

      // Warm-up: every size class the step needs is now cached. Tensors of earlier tests may still
      // be collected by V8 during the loop (allocated can only go down then), but nothing may
      // grow: no new cudaMalloc, the same reserved bytes, no more allocated bytes.
      for (let i = 0; i < 20; i++) step();
      const warm = kg.cuda.memoryStats();
      let first = NaN;
      let last = NaN;
      for (let i = 0; i < steps; i++) {
        const loss = step();
        if (i === 0) first = loss;
        last = loss;
        if (i % Math.ceil(steps / 4) === 0) {
          const s = kg.cuda.memoryStats();
          expect(s.allocated).toBeLessThanOrEqual(warm.allocated);
          expect(s.reserved).toBe(warm.reserved);
        }
      }
      const end = kg.cuda.memoryStats();
      expect(end.allocated).toBeLessThanOrEqual(warm.allocated);
      expect(end.reserved).toBe(warm.reserved);
      expect(end.numMallocs).toBe(warm.numMallocs); // no cudaMalloc in a warm step
      expect(Number.isFinite(last)).toBe(true);
      expect(last).toBeLessThan(first); // it learned something on its one batch
    },
    600_000,
  );
});
