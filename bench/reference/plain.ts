// The plain-loop reference: TypeScript, float64 accumulation, no tricks. It checks every kernel of
// ours before that kernel is timed. Big shapes are checked on samples that are still exact: a
// few whole channels for batch norm (each channel's statistics need all of it), a few hundred
// output entries for convolution and GEMM (each entry is one dot product). Small ones in full.
import type { Check } from '../lib/schema';
import { mulberry32 } from '../lib/rng';

type Arr = ArrayLike<number>;

/** err_i = |got_i - ref_i| / scale_i; passes when max err <= tol. */
export class Checker {
  maxErr = 0;
  count = 0;
  worst = '';
  constructor(readonly tol: number) {}
  add(got: number, ref: number, scale: number, where?: () => string): void {
    const e = Math.abs(got - ref) / Math.max(scale, 1e-30);
    this.count++;
    if (!(e <= this.maxErr)) {
      // NaN lands here too
      this.maxErr = Number.isNaN(e) ? Infinity : e;
      if (where) this.worst = `${where()}: got ${got}, want ${ref}`;
    }
  }
  result(how: string): Check {
    const ok = this.maxErr <= this.tol;
    return { status: ok ? 'pass' : 'fail', maxErr: this.maxErr, tol: this.tol, how: ok ? how : `${how}; worst at ${this.worst}` };
  }
}

/** k distinct sorted indices in [0, n), always including 0 and n-1. */
export function sampleIndices(n: number, k: number, seed: number): number[] {
  if (k >= n) return Array.from({ length: n }, (_, i) => i);
  const s = new Set<number>([0, n - 1]);
  const r = mulberry32(seed);
  while (s.size < k) s.add(Math.floor(r() * n));
  return [...s].sort((a, b) => a - b);
}

// ---------------------------------------------------------------- batch norm, (n, c, l) view

export interface BnStats {
  mean: number;
  variance: number; // biased
  invstd: number;
}

export function bnChannelStats(x: Arr, [n, c, l]: [number, number, number], ch: number, eps: number): BnStats {
  let s = 0;
  for (let i = 0; i < n; i++) for (let j = 0, o = (i * c + ch) * l; j < l; j++) s += x[o + j];
  const mean = s / (n * l);
  let v = 0;
  for (let i = 0; i < n; i++)
    for (let j = 0, o = (i * c + ch) * l; j < l; j++) {
      const d = x[o + j] - mean;
      v += d * d;
    }
  const variance = v / (n * l);
  return { mean, variance, invstd: 1 / Math.sqrt(variance + eps) };
}

/** Checks y (and the saved statistics) of the training forward on the given channels; with relu, y is max(batch norm, 0). */
export function checkBnTrainFwd(
  x: Arr, ncl: [number, number, number], gamma: Arr, beta: Arr, eps: number, channels: number[],
  y: Arr, saveMean: Arr, saveInvstd: Arr, batchVar: Arr, tol = 1e-4, relu = false,
): Checker {
  const [n, c, l] = ncl;
  const ck = new Checker(tol);
  for (const ch of channels) {
    const st = bnChannelStats(x, ncl, ch, eps);
    ck.add(saveMean[ch], st.mean, Math.sqrt(st.variance) + Math.abs(st.mean) * 1e-3, () => `mean[${ch}]`);
    ck.add(saveInvstd[ch], st.invstd, st.invstd, () => `invstd[${ch}]`);
    ck.add(batchVar[ch], st.variance, st.variance + eps, () => `var[${ch}]`);
    for (let i = 0; i < n; i++)
      for (let j = 0, o = (i * c + ch) * l; j < l; j++) {
        const bn = gamma[ch] * (x[o + j] - st.mean) * st.invstd + beta[ch];
        const ref = relu ? Math.max(bn, 0) : bn;
        ck.add(y[o + j], ref, 1 + Math.abs(bn), () => `y[${o + j}]`);
      }
  }
  return ck;
}

export function checkBnInferFwd(
  x: Arr, [n, c, l]: [number, number, number], gamma: Arr, beta: Arr, mean: Arr, variance: Arr, eps: number,
  channels: number[], y: Arr, tol = 1e-5,
): Checker {
  const ck = new Checker(tol);
  for (const ch of channels) {
    const inv = 1 / Math.sqrt(variance[ch] + eps);
    for (let i = 0; i < n; i++)
      for (let j = 0, o = (i * c + ch) * l; j < l; j++) {
        const ref = gamma[ch] * (x[o + j] - mean[ch]) * inv + beta[ch];
        ck.add(y[o + j], ref, 1 + Math.abs(ref), () => `y[${o + j}]`);
      }
  }
  return ck;
}

/** Backward of the training form, statistics recomputed here from x. */
export function checkBnBackward(
  x: Arr, dy: Arr, ncl: [number, number, number], gamma: Arr, eps: number, channels: number[],
  dx: Arr, dgamma: Arr, dbeta: Arr, tol = 1e-4,
): Checker {
  const [n, c, l] = ncl;
  const m = n * l;
  const ck = new Checker(tol);
  for (const ch of channels) {
    const st = bnChannelStats(x, ncl, ch, eps);
    let sdy = 0;
    let sdyx = 0;
    let sabs = 0;
    let sabsx = 0;
    for (let i = 0; i < n; i++)
      for (let j = 0, o = (i * c + ch) * l; j < l; j++) {
        const xh = (x[o + j] - st.mean) * st.invstd;
        sdy += dy[o + j];
        sdyx += dy[o + j] * xh;
        sabs += Math.abs(dy[o + j]);
        sabsx += Math.abs(dy[o + j] * xh);
      }
    ck.add(dbeta[ch], sdy, sabs, () => `dbeta[${ch}]`);
    ck.add(dgamma[ch], sdyx, sabsx, () => `dgamma[${ch}]`);
    const k = (gamma[ch] * st.invstd) / m;
    for (let i = 0; i < n; i++)
      for (let j = 0, o = (i * c + ch) * l; j < l; j++) {
        const xh = (x[o + j] - st.mean) * st.invstd;
        const ref = k * (m * dy[o + j] - sdy - xh * sdyx);
        const scale = Math.abs(k) * (m * Math.abs(dy[o + j]) + Math.abs(sdy) + Math.abs(xh * sdyx)) + 1e-6;
        ck.add(dx[o + j], ref, scale, () => `dx[${o + j}]`);
      }
  }
  return ck;
}

// ---------------------------------------------------------------- convolution, NCHW / KCRS

export interface ConvDims {
  n: number; c: number; h: number; w: number;
  k: number; kh: number; kw: number;
  stride: number; pad: number;
  oh: number; ow: number;
}

/** y[n,k,i,j] and the sum of |terms| for the error scale. */
export function convFwdAt(d: ConvDims, x: Arr, w: Arr, b: Arr | null, n: number, k: number, i: number, j: number): [number, number] {
  let s = b ? b[k] : 0;
  let a = Math.abs(s);
  for (let c = 0; c < d.c; c++)
    for (let p = 0; p < d.kh; p++) {
      const hi = i * d.stride + p - d.pad;
      if (hi < 0 || hi >= d.h) continue;
      for (let q = 0; q < d.kw; q++) {
        const wi = j * d.stride + q - d.pad;
        if (wi < 0 || wi >= d.w) continue;
        const t = x[((n * d.c + c) * d.h + hi) * d.w + wi] * w[((k * d.c + c) * d.kh + p) * d.kw + q];
        s += t;
        a += Math.abs(t);
      }
    }
  return [s, a];
}

/** dx[n,c,h,w] = sum over (k,p,q) with h = i*stride + p - pad of dy[n,k,i,j] w[k,c,p,q]. */
export function convBwdDataAt(d: ConvDims, dy: Arr, w: Arr, n: number, c: number, h: number, ww: number): [number, number] {
  let s = 0;
  let a = 0;
  for (let k = 0; k < d.k; k++)
    for (let p = 0; p < d.kh; p++) {
      const ti = h + d.pad - p;
      if (ti < 0 || ti % d.stride) continue;
      const i = ti / d.stride;
      if (i >= d.oh) continue;
      for (let q = 0; q < d.kw; q++) {
        const tj = ww + d.pad - q;
        if (tj < 0 || tj % d.stride) continue;
        const j = tj / d.stride;
        if (j >= d.ow) continue;
        const t = dy[((n * d.k + k) * d.oh + i) * d.ow + j] * w[((k * d.c + c) * d.kh + p) * d.kw + q];
        s += t;
        a += Math.abs(t);
      }
    }
  return [s, a];
}

/** dw[k,c,p,q] = sum over (n,i,j) of x[n,c,i*s+p-pad,j*s+q-pad] dy[n,k,i,j]. */
export function convBwdWeightAt(d: ConvDims, x: Arr, dy: Arr, k: number, c: number, p: number, q: number): [number, number] {
  let s = 0;
  let a = 0;
  for (let n = 0; n < d.n; n++)
    for (let i = 0; i < d.oh; i++) {
      const hi = i * d.stride + p - d.pad;
      if (hi < 0 || hi >= d.h) continue;
      for (let j = 0; j < d.ow; j++) {
        const wi = j * d.stride + q - d.pad;
        if (wi < 0 || wi >= d.w) continue;
        const t = x[((n * d.c + c) * d.h + hi) * d.w + wi] * dy[((n * d.k + k) * d.oh + i) * d.ow + j];
        s += t;
        a += Math.abs(t);
      }
    }
  return [s, a];
}

export function convBwdBiasAt(d: ConvDims, dy: Arr, k: number): [number, number] {
  let s = 0;
  let a = 0;
  for (let n = 0; n < d.n; n++)
    for (let i = 0, o = (n * d.k + k) * d.oh * d.ow; i < d.oh * d.ow; i++) {
      s += dy[o + i];
      a += Math.abs(dy[o + i]);
    }
  return [s, a];
}

/** Checks `count` sampled entries (all when small) of an output of `total` entries. */
export function checkSampled(
  total: number, count: number, seed: number, tol: number,
  at: (idx: number) => [number, number], got: Arr, label: string,
): Checker {
  const ck = new Checker(tol);
  for (const idx of sampleIndices(total, count, seed)) {
    const [ref, scale] = at(idx);
    ck.add(got[idx], ref, scale + 1e-12, () => `${label}[${idx}]`);
  }
  return ck;
}

// ---------------------------------------------------------------- average pooling 2x2 / 2

export function poolFwd64(x: Arr, [n, c, h, w]: number[]): Float64Array {
  const oh = Math.floor((h - 2) / 2) + 1;
  const ow = Math.floor((w - 2) / 2) + 1;
  const y = new Float64Array(n * c * oh * ow);
  for (let nc = 0; nc < n * c; nc++)
    for (let i = 0; i < oh; i++)
      for (let j = 0; j < ow; j++) {
        const o = nc * h * w + 2 * i * w + 2 * j;
        y[(nc * oh + i) * ow + j] = (x[o] + x[o + 1] + x[o + w] + x[o + w + 1]) / 4;
      }
  return y;
}

export function poolBwd64(dy: Arr, [n, c, h, w]: number[]): Float64Array {
  const oh = Math.floor((h - 2) / 2) + 1;
  const ow = Math.floor((w - 2) / 2) + 1;
  const dx = new Float64Array(n * c * h * w);
  for (let nc = 0; nc < n * c; nc++)
    for (let i = 0; i < oh; i++)
      for (let j = 0; j < ow; j++) {
        const g = dy[(nc * oh + i) * ow + j] / 4;
        const o = nc * h * w + 2 * i * w + 2 * j;
        dx[o] += g;
        dx[o + 1] += g;
        dx[o + w] += g;
        dx[o + w + 1] += g;
      }
  return dx;
}

export function checkFull(got: Arr, ref: Arr, tol: number, label: string): Checker {
  const ck = new Checker(tol);
  if (got.length !== ref.length) {
    ck.maxErr = Infinity;
    ck.worst = `${label}: length ${got.length} != ${ref.length}`;
    return ck;
  }
  for (let i = 0; i < ref.length; i++) ck.add(got[i], ref[i], 1 + Math.abs(ref[i]), () => `${label}[${i}]`);
  return ck;
}

// ---------------------------------------------------------------- GEMM, row-major, no transposes

/** C[i,j] of A (m x k) times B (k x n) and the sum of |terms|. */
export function gemmAt(a: Arr, b: Arr, k: number, n: number, i: number, j: number): [number, number] {
  let s = 0;
  let abs = 0;
  for (let p = 0; p < k; p++) {
    const t = a[i * k + p] * b[p * n + j];
    s += t;
    abs += Math.abs(t);
  }
  return [s, abs];
}
