// Batch norm on the GPU: the hard inputs (|mean| >> std, constant channels), more channels than a
// grid dimension allows (C > 65,535), and bitwise determinism of forward and backward.
import * as kg from '../../lib';
import { bitwiseEqual, describeGpu, expectSameOnDevices, input, mismatch, normal, numel, runOn, uniform } from './helpers';

const F = kg.nn.functional;

/** Forward in training mode on `device`; the batch statistics come back through running
 * statistics updated with momentum 0 (running = batch, copied exactly). */
function trainForward(device: kg.Device, x: Float32Array, shape: number[], gamma: Float32Array, beta: Float32Array) {
  const c = shape[1];
  const runningMean = kg.zeros([c], { device });
  const runningVar = kg.ones([c], { device });
  const y = F.batchNorm(kg.tensor(x, shape, { device }), kg.tensor(gamma, [c], { device }), kg.tensor(beta, [c], { device }), {
    training: true, runningMean, runningVar, momentum: 0,
  });
  return { y: y.toArray(), mean: runningMean.toArray(), variance: runningVar.toArray() };
}

function ulp(v: number): number {
  const f = Math.fround(Math.abs(v));
  const buf = new Float32Array([f]);
  const bits = new Uint32Array(buf.buffer);
  bits[0] += 1;
  return buf[0] - f;
}

describeGpu('GPU batch norm: robustness', () => {
  // Channel 0: mean 1e4, spread 0.1. Channel 1: constant. Channel 2: mean -2e3, spread 1e-3.
  // Channel 3: ordinary data.
  function hardData(shape: number[]): Float32Array {
    const [n, c] = shape;
    const l = numel(shape) / (n * c);
    const x = normal(numel(shape), 101);
    const noise = normal(numel(shape), 102);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < l; j++) {
        x[(i * c + 0) * l + j] = 1e4 + 0.1 * noise[i * l + j];
        x[(i * c + 1) * l + j] = 3.7;
        x[(i * c + 2) * l + j] = -2e3 + 1e-3 * noise[(i * l + j + 7) % noise.length];
      }
    }
    return x;
  }

  test.each([[[64, 4, 7, 7]], [[1000, 4]], [[8, 4, 32, 32]], [[2, 4, 3, 1]]])('x %j', (shape) => {
    const c = shape[1];
    const x = hardData(shape);
    const gamma = uniform(c, 103, 0.5, 1.5);
    const beta = normal(c, 104);
    const gpu = trainForward('cuda', x, shape, gamma, beta);
    const cpu = trainForward('cpu', x, shape, gamma, beta);
    const l = numel(shape) / (shape[0] * c);

    expect(gpu.y.every(Number.isFinite)).toBe(true);
    expect(gpu.variance.every((v) => v >= 0)).toBe(true);
    // The constant channel: exactly its value as mean, exactly zero variance, exactly beta.
    expect(gpu.mean[1]).toBe(Math.fround(3.7));
    expect(gpu.variance[1]).toBe(0);
    for (let i = 0; i < shape[0]; i++) {
      for (let j = 0; j < l; j++) expect(gpu.y[(i * c + 1) * l + j]).toBe(Math.fround(beta[1]));
    }
    for (let ch = 0; ch < c; ch++) {
      // Statistics: the mean within one fp32 ulp of the CPU's (double-accumulated, rounded once)
      // plus 1e-6 of the spread (fp32 accumulators: for a mean near zero that is many of its own
      // ulps, and still far below anything the output can show), the variance to 1e-5.
      const std = Math.sqrt(cpu.variance[ch]);
      expect(Math.abs(gpu.mean[ch] - cpu.mean[ch])).toBeLessThanOrEqual(ulp(cpu.mean[ch]) + 1e-6 * std);
      expect(mismatch([gpu.variance[ch]], [cpu.variance[ch]], 1e-5, 1e-12)).toBeNull();
      // Output: the normalized values (y - beta) / gamma within 1e-5 of the float64 ones, at mean
      // 1e4 and spread 0.1 too (a float mean alone is off by up to 5e-3 of the spread there),
      // and equal to the CPU's to 1e-5.
      const got: number[] = [];
      const want: number[] = [];
      const values: number[] = [];
      let sum = 0;
      let sq = 0;
      for (let i = 0; i < shape[0]; i++) {
        for (let j = 0; j < l; j++) {
          const k = (i * c + ch) * l + j;
          got.push(gpu.y[k]);
          want.push(cpu.y[k]);
          values.push(x[k]);
          sum += gpu.y[k];
          sq += (gpu.y[k] - beta[ch]) ** 2;
        }
      }
      expect(mismatch(got, want, 1e-5, 1e-5)).toBeNull();
      const exact = values.reduce((a, v) => a + v, 0) / values.length;
      const exactVar = values.reduce((a, v) => a + (v - exact) ** 2, 0) / values.length;
      const normalized = got.map((v) => (v - beta[ch]) / gamma[ch]);
      expect(mismatch(normalized, values.map((v) => (v - exact) / Math.sqrt(exactVar + 1e-5)), 0, 1e-5)).toBeNull();
      if (ch !== 1) {
        // Normalized: the output's mean is beta and its standard deviation gamma * sqrt(var /
        // (var + eps)) (channel 2's variance is below eps).
        const m = sum / got.length;
        const wantSd = gamma[ch] * Math.sqrt(cpu.variance[ch] / (cpu.variance[ch] + 1e-5));
        expect(Math.abs(m - beta[ch])).toBeLessThan(1e-5 * gamma[ch]);
        expect(Math.abs(Math.sqrt(Math.max(0, sq / got.length - (m - beta[ch]) ** 2)) - wantSd)).toBeLessThan(1e-2 * wantSd);
      }
    }
  });

  test('gradients on the hard data match the CPU', () => {
    const shape = [16, 4, 5, 5];
    expectSameOnDevices(
      [{ shape, values: hardData(shape) }, input([4], 105, { low: 0.5, high: 1.5 }), input([4], 106)],
      ([t, g, b]) => F.pureBatchNorm(t, g, b).mul(F.pureBatchNorm(t, g, b)),
      // The squared output makes dx depend on y itself, exact to fp32 rounding of the spread.
      1e-4,
      1e-4,
    );
  });
});

describeGpu('GPU batch norm: more than 65,535 channels', () => {
  test.each([[[4, 70000]], [[2, 70000, 2, 2]], [[3, 66000, 1, 3]]])('x %j forward and backward', (shape) => {
    const c = shape[1];
    expectSameOnDevices([input(shape, 111), input([c], 112, { low: 0.5, high: 1.5 }), input([c], 113)], ([t, g, b]) =>
      F.pureBatchNorm(t, g, b),
    );
  });
});

describeGpu('GPU batch norm: determinism', () => {
  test.each([[[64, 20, 26, 26]], [[64, 128]], [[16, 50, 9, 9]], [[100000, 3]]])('x %j: two runs are bitwise equal', (shape) => {
    const c = shape[1];
    const inputs = [input(shape, 121), input([c], 122, { low: 0.5, high: 1.5 }), input([c], 123)];
    const fn = ([t, g, b]: kg.Tensor[]) => F.pureBatchNorm(t, g, b);
    const a = runOn('cuda', inputs, fn);
    const b = runOn('cuda', inputs, fn);
    expect(bitwiseEqual(a.out, b.out)).toBe(true);
    a.grads.forEach((g, i) => expect(bitwiseEqual(g as Float32Array, b.grads[i] as Float32Array)).toBe(true));
  });
});

describeGpu('GPU batch norm: non-finite and huge values', () => {
  test('a NaN in a training batch throws naming the channel, which keeps its running statistics; the others move as on the CPU', () => {
    const x = normal(6 * 3 * 4, 103);
    x[(2 * 3 + 1) * 4] = NaN;
    const run = (device: kg.Device) => {
      const runningMean = kg.tensor([1, 2, 3], [3], { device });
      const runningVar = kg.tensor([4, 5, 6], [3], { device });
      expect(() =>
        F.batchNorm(kg.tensor(x, [6, 3, 2, 2], { device }), kg.ones([3], { device }), kg.zeros([3], { device }), {
          training: true, runningMean, runningVar,
        }),
      ).toThrow(/batchNorm: channel 1 of x \[6, 3, 2, 2\] has a batch mean of NaN: .*channel 1's running statistics were left unchanged/);
      return [runningMean.toArray(), runningVar.toArray()];
    };
    const [gpu, cpu] = [run('cuda'), run('cpu')];
    expect([gpu[0][1], gpu[1][1]]).toEqual([2, 5]);
    expect(gpu[0][0]).not.toBe(1);
    gpu.forEach((stat, k) => expect(mismatch(stat, cpu[k], 1e-6)).toBeNull());
  });

  test.each([[[8, 1]], [[2, 1, 2, 2]], [[4096, 1]]])('a channel of -1e38 / 1e38 normalizes to -1 / +1, x %j', (shape) => {
    const values = Float32Array.from({ length: numel(shape) }, (_, i) => (i % 2 ? 1e38 : -1e38));
    const y = F.pureBatchNorm(kg.tensor(values, shape, { device: 'cuda' }), kg.ones([1], { device: 'cuda' }), kg.zeros([1], { device: 'cuda' })).toArray();
    y.forEach((v, i) => expect(Math.abs(v - Math.sign(values[i]))).toBeLessThan(1e-6));
  });
});

describeGpu('GPU batch norm fused with ReLU', () => {
  // 4-D with l % 4 == 0 (float4 path) and odd l, 2-D narrow and wide (rows path).
  test.each([[[6, 5, 4, 4]], [[3, 7, 3, 5]], [[64, 10]], [[9, 300]]])('x %j: equal to the CPU and to relu(batchNorm) on the GPU, training and inference', (shape) => {
    const c = shape[1];
    const inputs = [input(shape, 131), input([c], 132, { low: 0.5, high: 1.5 }), input([c], 133)];
    const train = ([t, g, b]: kg.Tensor[]) => F.batchNormRelu(t, g, b, { training: true });
    expectSameOnDevices(inputs, train);
    const fused = runOn('cuda', inputs, train);
    const pair = runOn('cuda', inputs, ([t, g, b]) => F.relu(F.batchNorm(t, g, b, { training: true })));
    expect(bitwiseEqual(fused.out, pair.out)).toBe(true);
    fused.grads.forEach((g, i) => expect(mismatch(g as Float32Array, pair.grads[i] as Float32Array, 1e-6)).toBeNull());

    const stats = (device: kg.Device) => ({
      training: false,
      runningMean: kg.tensor(normal(c, 134), [c], { device }),
      runningVar: kg.tensor(uniform(c, 135, 0.5, 2), [c], { device }),
    });
    expectSameOnDevices(inputs, ([t, g, b]) => F.batchNormRelu(t, g, b, stats(t.device)));
  });
});

describeGpu('GPU batch norm + ReLU + average pooling, fused', () => {
  test.each([[[16, 20, 26, 26], 2], [[6, 5, 9, 9], 2], [[3, 4, 7, 10], 3]])('x %j window %d: the chain bit for bit, and the CPU', (shape, k) => {
    const c = shape[1];
    const inputs = [input(shape, 71), input([c], 72, { low: 0.5, high: 1.5 }), input([c], 73)];
    const fused = ([x, g, b]: kg.Tensor[]) => F.batchNormReluPool(x, g, b, { training: true }, [k, k]);
    const chain = ([x, g, b]: kg.Tensor[]) => F.avgPool2d(F.batchNormRelu(x, g, b, { training: true }), { kernelSize: k });
    const gpu = expectSameOnDevices(inputs, fused);
    const gpuChain = runOn('cuda', inputs, chain);
    expect(bitwiseEqual(gpu.out, gpuChain.out)).toBe(true);
    gpu.grads.forEach((g, i) => expect(bitwiseEqual(g as Float32Array, gpuChain.grads[i] as Float32Array)).toBe(true));
  });
});

describeGpu('GPU batch norm: launches', () => {
  /** Kernel launches of a training forward, and of its backward. */
  function launches(shape: number[]): { forward: number; backward: number } {
    const c = shape[1];
    const x = kg.tensor(normal(numel(shape), 81), shape, { device: 'cuda' }).attachGrad();
    const gamma = kg.ones([c], { device: 'cuda' }).attachGrad();
    const beta = kg.zeros([c], { device: 'cuda' }).attachGrad();
    const stats = { runningMean: kg.zeros([c], { device: 'cuda' }), runningVar: kg.ones([c], { device: 'cuda' }) };
    const head = kg.tensor(normal(numel(shape), 82), shape, { device: 'cuda' });
    const before = kg.cuda.counters().kernelLaunches;
    const y = kg.autograd.record(() => F.batchNorm(x, gamma, beta, { training: true, ...stats }));
    const forward = kg.cuda.counters().kernelLaunches - before;
    y.backward(head);
    return { forward, backward: kg.cuda.counters().kernelLaunches - before - forward };
  }

  test('a layer with one block per channel is one kernel each way, a large one two', () => {
    expect(launches([8, 6, 5, 5])).toEqual({ forward: 1, backward: 1 });
    expect(launches([300, 5])).toEqual({ forward: 1, backward: 1 });
    expect(launches([64, 4, 26, 26])).toEqual({ forward: 2, backward: 2 });
  });
});
