// Float64 references of group norm, layer norm and batch renorm, written from their definitions
// (which values share statistics, which share a gamma), and the op cases that the CPU and the
// GPU suites both check against them: forward values directly, gradients by central differences.
import * as kg from '../../lib';
import { Random } from '../../lib/random';
import { OpCase } from './gradcheck';
import { numel } from './reference';

const F = kg.nn.functional;

/**
 * y[e] = ((x[e] - mean) / sqrt(var + eps) * r + d) * gamma[param(e)] + beta[param(e)], mean and
 * biased variance over the elements of e's group; r and d (per group, default 1 and 0) are constants.
 */
export function normalizeRef(
  x: Float64Array, groupOf: (e: number) => number, paramOf: (e: number) => number, gamma: Float64Array, beta: Float64Array, eps: number,
  rd?: { r: ArrayLike<number>; d: ArrayLike<number> },
): Float64Array {
  const { mean, variance } = groupStatistics(x, groupOf);
  return x.map((v, e) => {
    const g = groupOf(e), p = paramOf(e);
    const xhat = ((v - mean[g]) / Math.sqrt(variance[g] + eps)) * (rd ? rd.r[g] : 1) + (rd ? rd.d[g] : 0);
    return xhat * gamma[p] + beta[p];
  });
}

export function groupStatistics(x: Float64Array, groupOf: (e: number) => number): { mean: number[]; variance: number[] } {
  const sum: number[] = [], count: number[] = [], sq: number[] = [];
  x.forEach((v, e) => {
    const g = groupOf(e);
    sum[g] = (sum[g] ?? 0) + v;
    count[g] = (count[g] ?? 0) + 1;
  });
  const mean = sum.map((s, g) => s / count[g]);
  x.forEach((v, e) => {
    const g = groupOf(e);
    sq[g] = (sq[g] ?? 0) + (v - mean[g]) ** 2;
  });
  return { mean, variance: sq.map((s, g) => s / count[g]) };
}

/** (n, c, ...) with l trailing values per channel: the group of e for `groups` groups, and its channel. */
export function groupNormIndex(c: number, l: number, groups: number) {
  return { groupOf: (e: number) => Math.floor(e / (l * (c / groups))), paramOf: (e: number) => Math.floor(e / l) % c };
}
/** (rows, d): one group per row, one parameter per column. */
export function layerNormIndex(d: number) {
  return { groupOf: (e: number) => Math.floor(e / d), paramOf: (e: number) => e % d };
}
/** (n, c, l): one group and one parameter per channel. */
export function channelIndex(c: number, l: number) {
  const channel = (e: number) => Math.floor(e / l) % c;
  return { groupOf: channel, paramOf: channel };
}

/** Batch renorm's r and d per channel (Ioffe 2017, eq. in Algorithm 1), in float64. */
export function renormFactors(x: Float64Array, c: number, l: number, runningMean: ArrayLike<number>, runningVar: ArrayLike<number>, eps: number, rMax: number, dMax: number) {
  const { mean, variance } = groupStatistics(x, channelIndex(c, l).groupOf);
  const clip = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));
  const sigma = Array.from(runningVar, (v) => Math.sqrt(v + eps));
  return {
    r: mean.map((_, ch) => clip(Math.sqrt(variance[ch] + eps) / sigma[ch], 1 / rMax, rMax)),
    d: mean.map((m, ch) => clip((m - runningMean[ch]) / sigma[ch], -dMax, dMax)),
    mean,
    variance,
  };
}

function values(n: number, seed: number, mean = 0, std = 1): Float32Array {
  return new Random(seed).fillNormal(new Float32Array(n), mean, std);
}

/** Group norm of x `shape` with `groups` groups, random gamma and beta. */
export function groupNormCase(shape: number[], groups: number, seed = 1): OpCase {
  const [, c] = shape;
  const l = numel(shape.slice(2));
  const { groupOf, paramOf } = groupNormIndex(c, l, groups);
  return {
    inputs: [{ shape }, { shape: [c], values: values(c, seed + 1, 1, 0.5) }, { shape: [c] }],
    ours: ([x, gamma, beta]) => F.groupNorm(x, groups, gamma, beta, { eps: 1e-3 }),
    ref: ([x, gamma, beta]) => normalizeRef(x, groupOf, paramOf, gamma, beta, 1e-3),
    seed,
  };
}

/** Layer norm of x `shape` over its trailing `normalized` dimensions. */
export function layerNormCase(shape: number[], normalized: number[], seed = 1): OpCase {
  const d = numel(normalized);
  const { groupOf, paramOf } = layerNormIndex(d);
  return {
    inputs: [{ shape }, { shape: normalized, values: values(d, seed + 1, 1, 0.5) }, { shape: normalized }],
    ours: ([x, gamma, beta]) => F.layerNorm(x, normalized, gamma, beta, { eps: 1e-3 }),
    ref: ([x, gamma, beta]) => normalizeRef(x, groupOf, paramOf, gamma, beta, 1e-3),
    seed,
  };
}

/**
 * Batch renorm in training on x `shape` with running statistics far enough from the batch's that
 * some channels' r and d are clipped and others are not. The reference holds r and d at their
 * values for the unperturbed input, as the op's gradient treats them.
 */
export function batchRenormCase(shape: number[], seed = 1, device: kg.Device = 'cpu'): OpCase {
  const [, c] = shape;
  const l = numel(shape.slice(2));
  const x = values(numel(shape), seed, 0.2, 1.3);
  const runningMean = values(c, seed + 2, 0, 0.4);
  const runningVar = new Random(seed + 3).fillUniform(new Float32Array(c), 0.3, 3);
  const eps = 1e-3, rMax = 1.5, dMax = 0.3;
  const fixed = renormFactors(Float64Array.from(x), c, l, runningMean, runningVar, eps, rMax, dMax);
  const { groupOf, paramOf } = channelIndex(c, l);
  return {
    inputs: [{ shape, values: x }, { shape: [c], values: values(c, seed + 1, 1, 0.5) }, { shape: [c] }],
    ours: ([t, gamma, beta]) =>
      F.batchRenorm(t, gamma, beta, {
        training: true, eps, rMax, dMax,
        runningMean: kg.tensor(runningMean, [c], { device }),
        runningVar: kg.tensor(runningVar, [c], { device }),
      }),
    ref: ([t, gamma, beta]) => normalizeRef(t, groupOf, paramOf, gamma, beta, eps, fixed),
    seed,
    device,
  };
}

/** The shapes both suites run, odd sizes included. */
export const GROUP_NORM_SHAPES: Array<[number[], number]> = [
  [[3, 6, 5, 7], 3],
  [[2, 4, 9], 2],
  [[1, 5, 3, 3], 5], // one channel per group: instance norm
  [[4, 6], 1],
  [[2, 3, 1, 1], 3], // a single value per group: output beta, no gradient into x
];
export const LAYER_NORM_SHAPES: Array<[number[], number[]]> = [
  [[7, 13], [13]],
  [[2, 3, 5, 7], [5, 7]],
  [[3, 4, 1], [4, 1]],
  [[5, 3], [5, 3]],
];
export const BATCH_RENORM_SHAPES: number[][] = [[9, 5], [3, 4, 5, 3], [2, 7, 1, 3]];
