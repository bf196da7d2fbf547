// The running statistics that batch norm's training forward kernel updates itself, against a
// float64 reference of the rule, on one device: exponential averaging of the biased and the
// unbiased variance and cumulative averaging over several batches, the batch count, and a channel
// whose statistics fail (that channel keeps its running statistics, the others move). Run on the
// CPU by test/core/batchnorm-running.test.ts and on CUDA by test/gpu/batchnorm-running.test.ts.
import * as kg from '../../lib';
import { NonFiniteError } from '../../lib/non-finite';
import { Random } from '../../lib/random';

const F = kg.nn.functional;

interface Rule {
  name: string;
  options: { momentum?: number; runningVariance?: 'biased' | 'unbiased'; averaging?: 'cumulative' };
}

const RULES: Rule[] = [
  { name: 'exponential, biased', options: { momentum: 0.7 } },
  { name: 'exponential, unbiased', options: { momentum: 0.8, runningVariance: 'unbiased' } },
  { name: 'cumulative, biased', options: { averaging: 'cumulative' } },
  { name: 'cumulative, unbiased', options: { averaging: 'cumulative', runningVariance: 'unbiased' } },
];

/**
 * Rows layout with one and two column groups, planar layout with scalar and float4 access, and on
 * CUDA, channels split over several blocks in both layouts (one writes, all read the count's copy).
 */
const SHAPES = [[7, 5], [9, 40], [600, 3], [5, 3, 3, 3], [6, 4, 2, 2], [9, 2, 15, 17]];

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** Data whose channels differ in mean and spread. */
function batchData(shape: number[], r: Random): Float32Array {
  const [n, c] = shape;
  const l = numel(shape) / (n * c);
  const offset = Array.from({ length: c }, () => 4 * r.uniform() - 2);
  const scale = Array.from({ length: c }, () => 0.2 + 2 * r.uniform());
  const x = r.fillNormal(new Float32Array(numel(shape)));
  for (let i = 0; i < n; i++) for (let ch = 0; ch < c; ch++) for (let j = 0; j < l; j++) {
    const k = (i * c + ch) * l + j;
    x[k] = offset[ch] + scale[ch] * x[k];
  }
  return x;
}

/** Per channel, the float64 mean and biased variance of x (n, c, l...). */
function statsRef(x: Float32Array, shape: number[]): { mean: number[]; variance: number[] } {
  const [n, c] = shape;
  const l = x.length / (n * c);
  const mean: number[] = [];
  const variance: number[] = [];
  for (let ch = 0; ch < c; ch++) {
    let s = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j < l; j++) s += x[(i * c + ch) * l + j];
    const mu = s / (n * l);
    let q = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j < l; j++) q += (x[(i * c + ch) * l + j] - mu) ** 2;
    mean.push(mu);
    variance.push(q / (n * l));
  }
  return { mean, variance };
}

/** running = (1 - momentum) * batch + momentum * running in float64; momentum seen / (seen + 1) when cumulative. */
function updateRef(rule: Rule, running: { mean: number[]; variance: number[] }, x: Float32Array, shape: number[], seen: number, skip = -1): void {
  const batch = statsRef(x, shape);
  const m = x.length / shape[1];
  const momentum = rule.options.averaging === 'cumulative' ? seen / (seen + 1) : (rule.options.momentum as number);
  const correction = rule.options.runningVariance === 'unbiased' ? m / (m - 1) : 1;
  for (let ch = 0; ch < shape[1]; ch++) {
    if (ch === skip) continue;
    running.mean[ch] = (1 - momentum) * batch.mean[ch] + momentum * running.mean[ch];
    running.variance[ch] = (1 - momentum) * correction * batch.variance[ch] + momentum * running.variance[ch];
  }
}

function expectNear(got: ArrayLike<number>, want: number[], what: string): void {
  const worst = want.reduce((w, v, i) => Math.max(w, Math.abs(got[i] - v) / (1 + Math.abs(v))), 0);
  if (!(worst <= 1e-5)) throw new Error(`${what}: worst relative error ${worst}, got ${Array.from(got)}, want ${want}`);
}

export function runningUpdateSuite(device: kg.Device): void {
  const on = (values: ArrayLike<number>, shape: number[]) => kg.tensor(Float32Array.from(values), shape, { device });

  describe.each(RULES)('running statistics updated by the forward kernel: $name', (rule) => {
    test.each(SHAPES.map((shape) => [shape]))('three batches of x %j, batch norm and batch norm + ReLU in turn', (shape) => {
      const r = new Random(numel(shape) * 7 + rule.name.length);
      const c = shape[1];
      const want = { mean: Array.from({ length: c }, () => 2 * r.uniform() - 1), variance: Array.from({ length: c }, () => 0.5 + 1.5 * r.uniform()) };
      const runningMean = on(want.mean, [c]);
      const runningVar = on(want.variance, [c]);
      const numBatchesTracked = kg.full([], 2, { device }); // cumulative averaging starts as if two batches were in
      const gamma = on(Array.from({ length: c }, () => 0.5 + r.uniform()), [c]);
      const beta = on(Array.from({ length: c }, () => r.uniform() - 0.5), [c]);
      for (let b = 0; b < 3; b++) {
        const x = batchData(shape, r);
        const op = b % 2 === 0 ? F.batchNorm : F.batchNormRelu;
        op(on(x, shape), gamma, beta, { training: true, runningMean, runningVar, numBatchesTracked, ...rule.options });
        updateRef(rule, want, x, shape, 2 + b);
      }
      expectNear(runningMean.toArray(), want.mean, 'running mean');
      expectNear(runningVar.toArray(), want.variance, 'running variance');
      expect(numBatchesTracked.item()).toBe(5);
    });
  });

  test('momentum 0 takes the batch statistics as they are, whatever the running values hold', () => {
    const shape = [6, 3, 1, 5];
    const x = batchData(shape, new Random(5));
    const runningMean = on([NaN, Infinity, 1], [3]);
    const runningVar = on([NaN, -Infinity, 1], [3]);
    F.batchNorm(on(x, shape), null, null, { training: true, runningMean, runningVar, momentum: 0 });
    const ref = statsRef(x, shape);
    expectNear(runningMean.toArray(), ref.mean, 'running mean');
    expectNear(runningVar.toArray(), ref.variance, 'running variance');
  });

  test.each([[[11, 6]], [[4, 6, 2, 3]]])('a NaN in channel 3 of x %j: channel 3 keeps its running statistics, the others move, the batch is counted', (shape) => {
    const r = new Random(17);
    const c = shape[1];
    const x = batchData(shape, r);
    const l = numel(shape) / (shape[0] * c);
    x[(2 * c + 3) * l + l - 1] = NaN; // sample 2, channel 3
    const start = { mean: Array.from({ length: c }, () => r.uniform()), variance: Array.from({ length: c }, () => 1 + r.uniform()) };
    const want = { mean: [...start.mean], variance: [...start.variance] };
    const runningMean = on(start.mean, [c]);
    const runningVar = on(start.variance, [c]);
    const numBatchesTracked = kg.full([], 4, { device });
    const rule = RULES[1];
    expect(() =>
      F.batchNorm(on(x, shape), null, null, { training: true, runningMean, runningVar, numBatchesTracked, ...rule.options }),
    ).toThrow(
      new NonFiniteError(
        `batchNorm: channel 3 of x [${shape.join(', ')}] has a batch mean of NaN: the batch holds NaN or infinite values; ` +
          "channel 3's running statistics were left unchanged (the other channels' were updated)",
      ),
    );
    updateRef(rule, want, x, shape, 4, 3);
    const [mean, variance] = [runningMean.toArray(), runningVar.toArray()];
    expect([mean[3], variance[3]]).toEqual([Math.fround(start.mean[3]), Math.fround(start.variance[3])]);
    expectNear(mean, want.mean, 'running mean');
    expectNear(variance, want.variance, 'running variance');
    expect(numBatchesTracked.item()).toBe(5);
  });
}
