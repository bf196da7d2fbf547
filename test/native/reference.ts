// Shared helpers for the native kernel tests: a seeded RNG, storage helpers, a tolerant
// comparison that prints the first mismatches, and float64 reference implementations of every
// kernel, written as plain loops straight from the definitions in native/include/kg/ops.inc.
import { ConvShapeArg, native, Storage } from '../../lib/native';

// Jest runs tests in a vm context, where every global lookup (`Math` too) goes through a slow
// interceptor; hot reference loops use these module-level bindings instead.
const { abs, sqrt, exp, log, max, floor, cos, imul, PI } = Math;
const { isNaN: isNaNNumber } = Number;

// ---------------------------------------------------------------------------------------------
// Random data

/** mulberry32: a small, fast, seeded PRNG (uniform in [0, 1)). */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = imul(t ^ (t >>> 15), t | 1);
    t ^= t + imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  uniform(lo = -1, hi = 1): number {
    return lo + (hi - lo) * this.next();
  }
  int(lo: number, hi: number): number {
    return lo + floor(this.next() * (hi - lo + 1));
  }
  normal(): number {
    const u = 1 - this.next();
    return sqrt(-2 * log(u)) * cos(2 * PI * this.next());
  }
  pick<T>(items: readonly T[]): T {
    return items[floor(this.next() * items.length)];
  }
  /** n values uniform in [lo, hi), as float32. */
  array(n: number, lo = -1, hi = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.uniform(lo, hi);
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// Storages

const live: Storage[] = [];

/** A CPU storage holding `data`. Freed by disposeAll(). */
export function store(data: Float32Array | number[]): Storage {
  const arr = data instanceof Float32Array ? data : Float32Array.from(data);
  const s = new native.Storage(0, arr.length);
  s.write(arr);
  live.push(s);
  return s;
}

/** A CPU storage of n elements filled with `value` (NaN by default: outputs must be written). */
export function empty(n: number, value = NaN): Storage {
  return store(new Float32Array(n).fill(value));
}

export function disposeAll(): void {
  for (const s of live.splice(0)) s.dispose();
}

/** Bitwise equality of two float arrays (NaN payloads and -0 included). */
export function bitwiseEqual(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return false;
  return true;
}

/** Runs f with the CPU kernels limited to `threads` threads, restoring the previous count. */
export function withThreads<T>(threads: number, f: () => T): T {
  const before = native.cpuThreads();
  native.setCpuThreads(threads);
  try {
    return f();
  } finally {
    native.setCpuThreads(before);
  }
}

// ---------------------------------------------------------------------------------------------
// Comparison

export interface Tolerance {
  rtol: number;
  atol: number;
  /**
   * Per-element magnitude to scale rtol by instead of |expected|, e.g. the sum of |terms| of a
   * dot product (whose rounding error is relative to that, not to a possibly cancelled result).
   */
  scale?: ArrayLike<number>;
}

/** Throws, listing the first mismatches, unless |actual - expected| <= atol + rtol * scale everywhere. */
export function expectClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: Tolerance,
  label = 'values',
): void {
  if (actual.length !== expected.length) {
    throw new Error(`${label}: length ${actual.length}, expected ${expected.length}`);
  }
  const bad: string[] = [];
  let count = 0;
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    const mag = tol.scale ? max(abs(e), tol.scale[i]) : abs(e);
    const limit = tol.atol + tol.rtol * mag;
    const err = abs(a - e);
    if (!(err <= limit)) {
      count++;
      worst = max(worst, Number.isFinite(err) ? err / limit : Infinity);
      if (bad.length < 8) bad.push(`  [${i}] got ${a}, expected ${e} (|diff| ${err.toExponential(2)} > ${limit.toExponential(2)})`);
    }
  }
  if (count > 0) {
    throw new Error(
      `${label}: ${count} of ${expected.length} mismatches (worst ${worst.toFixed(1)}x the tolerance):\n${bad.join('\n')}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// References. Each returns float64 results; dot-product-like ones also return `scale`, the sum of
// the absolute values of the terms behind each result (the right yardstick for rounding error).

export interface WithScale {
  value: Float64Array;
  scale: Float64Array;
}

/** C = alpha * op(A) op(B) + beta * C0 (beta == 0 ignores C0). */
export function gemmRef(
  transA: boolean, transB: boolean, m: number, n: number, k: number,
  alpha: number, A: ArrayLike<number>, B: ArrayLike<number>, beta: number, C0: ArrayLike<number>,
): WithScale {
  const value = new Float64Array(m * n);
  const scale = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      let mag = 0;
      for (let p = 0; p < k; p++) {
        const a = transA ? A[p * m + i] : A[i * k + p];
        const b = transB ? B[j * k + p] : B[p * n + j];
        s += a * b;
        mag += abs(a * b);
      }
      const c = beta === 0 ? 0 : beta * C0[i * n + j];
      value[i * n + j] = alpha * s + c;
      scale[i * n + j] = abs(alpha) * mag + abs(c);
    }
  }
  return { value, scale };
}

export interface ConvGeometry {
  n: number; c: number; h: number; w: number;
  k: number; kh: number; kw: number;
  sh: number; sw: number; ph: number; pw: number;
  /** Channel groups (default 1): filter k sees input channels [g * c/groups, (g + 1) * c/groups), g = k / (k/groups). */
  groups?: number;
}

export function convOut(g: ConvGeometry): { oh: number; ow: number } {
  return { oh: floor((g.h + 2 * g.ph - g.kh) / g.sh) + 1, ow: floor((g.w + 2 * g.pw - g.kw) / g.sw) + 1 };
}

export function convArg(g: ConvGeometry): ConvShapeArg {
  return [g.n, g.c, g.h, g.w, g.k, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.groups ?? 1];
}

/** Visits every (input element, weight, output element) triple of the convolution. */
function forEachConvTerm(g: ConvGeometry, f: (xi: number, wi: number, yi: number) => void): void {
  const { oh, ow } = convOut(g);
  const cg = g.c / (g.groups ?? 1), kg = g.k / (g.groups ?? 1);  // per group
  for (let s = 0; s < g.n; s++)
    for (let k = 0; k < g.k; k++)
      for (let i = 0; i < oh; i++)
        for (let j = 0; j < ow; j++)
          for (let cw = 0; cw < cg; cw++)
            for (let p = 0; p < g.kh; p++)
              for (let q = 0; q < g.kw; q++) {
                const y = i * g.sh + p - g.ph;
                const x = j * g.sw + q - g.pw;
                if (y < 0 || y >= g.h || x < 0 || x >= g.w) continue;
                const c = floor(k / kg) * cg + cw;  // the input channel, in filter k's group
                f(((s * g.c + c) * g.h + y) * g.w + x, ((k * cg + cw) * g.kh + p) * g.kw + q, ((s * g.k + k) * oh + i) * ow + j);
              }
}

export function conv2dForwardRef(g: ConvGeometry, x: ArrayLike<number>, w: ArrayLike<number>, bias: ArrayLike<number> | null): WithScale {
  const { oh, ow } = convOut(g);
  const value = new Float64Array(g.n * g.k * oh * ow);
  const scale = new Float64Array(value.length);
  if (bias) {
    for (let i = 0; i < value.length; i++) {
      const k = floor(i / (oh * ow)) % g.k;
      value[i] = bias[k];
      scale[i] = abs(bias[k]);
    }
  }
  forEachConvTerm(g, (xi, wi, yi) => {
    value[yi] += x[xi] * w[wi];
    scale[yi] += abs(x[xi] * w[wi]);
  });
  return { value, scale };
}

/** dx = the transpose of the forward map applied to dy. */
export function conv2dBackwardDataRef(g: ConvGeometry, dy: ArrayLike<number>, w: ArrayLike<number>): WithScale {
  const value = new Float64Array(g.n * g.c * g.h * g.w);
  const scale = new Float64Array(value.length);
  forEachConvTerm(g, (xi, wi, yi) => {
    value[xi] += dy[yi] * w[wi];
    scale[xi] += abs(dy[yi] * w[wi]);
  });
  return { value, scale };
}

export function conv2dBackwardWeightRef(g: ConvGeometry, x: ArrayLike<number>, dy: ArrayLike<number>): WithScale {
  const value = new Float64Array((g.k * g.c * g.kh * g.kw) / (g.groups ?? 1));
  const scale = new Float64Array(value.length);
  forEachConvTerm(g, (xi, wi, yi) => {
    value[wi] += dy[yi] * x[xi];
    scale[wi] += abs(dy[yi] * x[xi]);
  });
  return { value, scale };
}

export function conv2dBackwardBiasRef(g: ConvGeometry, dy: ArrayLike<number>): WithScale {
  const { oh, ow } = convOut(g);
  const value = new Float64Array(g.k);
  const scale = new Float64Array(g.k);
  for (let i = 0; i < dy.length; i++) {
    const k = floor(i / (oh * ow)) % g.k;
    value[k] += dy[i];
    scale[k] += abs(dy[i]);
  }
  return { value, scale };
}

export interface PoolGeometry {
  n: number; c: number; h: number; w: number;
  kh: number; kw: number; sh: number; sw: number;
}

export function poolOut(g: PoolGeometry): { oh: number; ow: number } {
  return { oh: floor((g.h - g.kh) / g.sh) + 1, ow: floor((g.w - g.kw) / g.sw) + 1 };
}

/** Visits every (input element, output element) pair of average pooling. */
function forEachPoolTerm(g: PoolGeometry, f: (xi: number, yi: number) => void): void {
  const { oh, ow } = poolOut(g);
  for (let pl = 0; pl < g.n * g.c; pl++)
    for (let i = 0; i < oh; i++)
      for (let j = 0; j < ow; j++)
        for (let a = 0; a < g.kh; a++)
          for (let b = 0; b < g.kw; b++) f((pl * g.h + i * g.sh + a) * g.w + j * g.sw + b, (pl * oh + i) * ow + j);
}

export function avgPoolForwardRef(g: PoolGeometry, x: ArrayLike<number>): Float64Array {
  const { oh, ow } = poolOut(g);
  const y = new Float64Array(g.n * g.c * oh * ow);
  forEachPoolTerm(g, (xi, yi) => (y[yi] += x[xi] / (g.kh * g.kw)));
  return y;
}

export function avgPoolBackwardRef(g: PoolGeometry, dy: ArrayLike<number>): Float64Array {
  const dx = new Float64Array(g.n * g.c * g.h * g.w);
  forEachPoolTerm(g, (xi, yi) => (dx[xi] += dy[yi] / (g.kh * g.kw)));
  return dx;
}

/** Batch norm shapes: x is (n, c, l). */
export interface BnGeometry {
  n: number;
  c: number;
  l: number;
}

function bnIndex(g: BnGeometry, i: number, ch: number, j: number): number {
  return (i * g.c + ch) * g.l + j;
}

/** Per-channel mean and biased variance in float64, two-pass. */
export function bnStatsRef(g: BnGeometry, x: ArrayLike<number>): { mean: Float64Array; variance: Float64Array } {
  const m = g.n * g.l;
  const mean = new Float64Array(g.c);
  const variance = new Float64Array(g.c);
  for (let ch = 0; ch < g.c; ch++) {
    let s = 0;
    for (let i = 0; i < g.n; i++) for (let j = 0; j < g.l; j++) s += x[bnIndex(g, i, ch, j)];
    mean[ch] = s / m;
    let v = 0;
    for (let i = 0; i < g.n; i++)
      for (let j = 0; j < g.l; j++) {
        const d = x[bnIndex(g, i, ch, j)] - mean[ch];
        v += d * d;
      }
    variance[ch] = v / m;
  }
  return { mean, variance };
}

/** y = gamma * (x - mean) / sqrt(var + eps) + beta with the given per-channel statistics. */
export function bnNormalizeRef(
  g: BnGeometry, x: ArrayLike<number>, gamma: ArrayLike<number>, beta: ArrayLike<number>,
  mean: ArrayLike<number>, variance: ArrayLike<number>, eps: number,
): Float64Array {
  const y = new Float64Array(x.length);
  for (let i = 0; i < g.n; i++)
    for (let ch = 0; ch < g.c; ch++)
      for (let j = 0; j < g.l; j++) {
        const idx = bnIndex(g, i, ch, j);
        y[idx] = (gamma[ch] * (x[idx] - mean[ch])) / sqrt(variance[ch] + eps) + beta[ch];
      }
  return y;
}

/**
 * Backward of batch norm around the given mean and invstd. Training form (statistics depend on x):
 * dx = gamma*invstd*(dy - sum(dy)/m - xhat*sum(dy*xhat)/m); inference form: dx = dy*gamma*invstd.
 */
export function bnBackwardRef(
  g: BnGeometry, x: ArrayLike<number>, dy: ArrayLike<number>, gamma: ArrayLike<number>,
  mean: ArrayLike<number>, invstd: ArrayLike<number>, training: boolean,
): { dx: WithScale; dgamma: WithScale; dbeta: WithScale } {
  const m = g.n * g.l;
  const dgamma = { value: new Float64Array(g.c), scale: new Float64Array(g.c) };
  const dbeta = { value: new Float64Array(g.c), scale: new Float64Array(g.c) };
  const dx = { value: new Float64Array(x.length), scale: new Float64Array(x.length) };
  for (let ch = 0; ch < g.c; ch++) {
    for (let i = 0; i < g.n; i++)
      for (let j = 0; j < g.l; j++) {
        const idx = bnIndex(g, i, ch, j);
        const xhat = (x[idx] - mean[ch]) * invstd[ch];
        dbeta.value[ch] += dy[idx];
        dbeta.scale[ch] += abs(dy[idx]);
        dgamma.value[ch] += dy[idx] * xhat;
        dgamma.scale[ch] += abs(dy[idx] * xhat);
      }
    const k = gamma[ch] * invstd[ch];
    for (let i = 0; i < g.n; i++)
      for (let j = 0; j < g.l; j++) {
        const idx = bnIndex(g, i, ch, j);
        if (!training) {
          dx.value[idx] = dy[idx] * k;
          dx.scale[idx] = abs(dx.value[idx]);
          continue;
        }
        const xhat = (x[idx] - mean[ch]) * invstd[ch];
        const a = dbeta.value[ch] / m;
        const b = (xhat * dgamma.value[ch]) / m;
        dx.value[idx] = k * (dy[idx] - a - b);
        dx.scale[idx] = abs(k) * (abs(dy[idx]) + abs(a) + abs(b));
      }
  }
  return { dx, dgamma, dbeta };
}

/** out[i] = a[i . astride] op b[i . bstride] over the multi-index i of shape. */
export function binaryRef(
  op: (a: number, b: number) => number, shape: number[], as: number[], bs: number[],
  a: ArrayLike<number>, b: ArrayLike<number>,
): Float64Array {
  const numel = shape.reduce((p, d) => p * d, 1);
  const out = new Float64Array(numel);
  const idx = new Array(shape.length).fill(0);
  for (let flat = 0; flat < numel; flat++) {
    let rest = flat;
    for (let d = shape.length - 1; d >= 0; d--) {
      idx[d] = rest % shape[d];
      rest = floor(rest / shape[d]);
    }
    let ao = 0;
    let bo = 0;
    for (let d = 0; d < shape.length; d++) {
      ao += idx[d] * as[d];
      bo += idx[d] * bs[d];
    }
    out[flat] = op(a[ao], b[bo]);
  }
  return out;
}

/** Row-major (contiguous) strides of a shape. */
export function contiguousStrides(shape: number[]): number[] {
  const strides = new Array(shape.length).fill(0);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = s;
    s *= shape[d];
  }
  return strides;
}

/** y[o, i] = scale * sum_r x[o, r, i]. */
export function reduceSumRef(outer: number, r: number, inner: number, scale: number, x: ArrayLike<number>): WithScale {
  const value = new Float64Array(outer * inner);
  const mag = new Float64Array(outer * inner);
  for (let o = 0; o < outer; o++)
    for (let k = 0; k < r; k++)
      for (let i = 0; i < inner; i++) {
        value[o * inner + i] += x[(o * r + k) * inner + i];
        mag[o * inner + i] += abs(x[(o * r + k) * inner + i]);
      }
  for (let i = 0; i < value.length; i++) {
    value[i] *= scale;
    mag[i] *= abs(scale);
  }
  return { value, scale: mag };
}

/** Per-row softmax cross-entropy loss and its gradient (scaled by dloss). */
export function softmaxXentRef(
  n: number, k: number, logits: ArrayLike<number>, labels: ArrayLike<number>, dloss: ArrayLike<number>,
): { loss: Float64Array; dlogits: Float64Array } {
  const loss = new Float64Array(n);
  const dlogits = new Float64Array(n * k);
  for (let i = 0; i < n; i++) {
    let mx = -Infinity;
    for (let j = 0; j < k; j++) mx = max(mx, logits[i * k + j]);
    let s = 0;
    for (let j = 0; j < k; j++) s += exp(logits[i * k + j] - mx);
    loss[i] = log(s) + mx - logits[i * k + labels[i]];
    for (let j = 0; j < k; j++) {
      const p = exp(logits[i * k + j] - mx) / s;
      dlogits[i * k + j] = (p - (j === labels[i] ? 1 : 0)) * dloss[i];
    }
  }
  return { loss, dlogits };
}

/** Index of the first maximum per row; NaN counts as the maximum (first NaN wins). */
export function argmaxRef(n: number, k: number, x: ArrayLike<number>): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) {
      const v = x[i * k + j];
      const b = x[i * k + best];
      if (isNaNNumber(b)) break;
      if (isNaNNumber(v) || v > b) best = j;
    }
    out[i] = best;
  }
  return out;
}

/** One SGD step: g' = g + wd*p; v = mom*v + g'; p -= lr*v. */
export function sgdRef(
  lr: number, momentum: number, wd: number, param: ArrayLike<number>, grad: ArrayLike<number>, velocity: ArrayLike<number> | null,
): { param: Float64Array; velocity: Float64Array } {
  const p = Float64Array.from(param);
  const v = new Float64Array(p.length);
  for (let i = 0; i < p.length; i++) {
    const g = grad[i] + wd * param[i];
    v[i] = momentum === 0 ? g : momentum * (velocity ? velocity[i] : 0) + g;
    p[i] -= lr * v[i];
  }
  return { param: p, velocity: v };
}
