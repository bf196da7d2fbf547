// The tutorial's network in plain float64 loops: forward, loss, backward. It checks one training
// step of ours (loss and every gradient) and our inference logits before they are timed.
// Layout as in the tutorial: NCHW activations, conv weights (K, C, KH, KW), dense weights (in, out).
import { normal } from '../lib/rng';

export const PARAM_SHAPES: Record<string, number[]> = {
  W1: [20, 1, 3, 3], b1: [20], gamma1: [20], beta1: [20],
  W2: [50, 20, 5, 5], b2: [50], gamma2: [50], beta2: [50],
  W3: [800, 128], b3: [128], gamma3: [128], beta3: [128],
  W4: [128, 10], b4: [10],
};
export const PARAM_NAMES = Object.keys(PARAM_SHAPES);
export type Params = Record<string, Float32Array>;

/** The tutorial's initialization: N(0, 0.01), gammas N(1, 0.01). */
export function initParams(seed: number, scale = 0.01): Params {
  const p: Params = {};
  PARAM_NAMES.forEach((name, i) => {
    const n = PARAM_SHAPES[name].reduce((a, b) => a * b, 1);
    p[name] = normal(n, seed * 100 + i, name.startsWith('gamma') ? 1 : 0, scale);
  });
  return p;
}

/** Running statistics for inference: mean, variance per BN layer (channels 20, 50, 128). */
export function initRunningStats(seed: number): Record<string, Float32Array> {
  const s: Record<string, Float32Array> = {};
  [20, 50, 128].forEach((c, i) => {
    s[`mean${i + 1}`] = normal(c, seed * 10 + i, 0, 0.05);
    s[`var${i + 1}`] = normal(c, seed * 10 + i + 5, 1, 0.1).map((v) => Math.abs(v) + 0.1);
  });
  return s;
}

type Arr = ArrayLike<number>;

function conv(x: Arr, [n, c, h, w]: number[], W: Arr, [k, , kh, kw]: number[], b: Arr): Float64Array {
  const oh = h - kh + 1;
  const ow = w - kw + 1;
  const y = new Float64Array(n * k * oh * ow);
  for (let ni = 0; ni < n; ni++)
    for (let ki = 0; ki < k; ki++) {
      const yo = (ni * k + ki) * oh * ow;
      for (let i = 0; i < oh * ow; i++) y[yo + i] = b[ki];
      for (let ci = 0; ci < c; ci++) {
        const xo = (ni * c + ci) * h * w;
        for (let p = 0; p < kh; p++)
          for (let q = 0; q < kw; q++) {
            const wv = W[((ki * c + ci) * kh + p) * kw + q];
            for (let i = 0; i < oh; i++) {
              const xr = xo + (i + p) * w + q;
              const yr = yo + i * ow;
              for (let j = 0; j < ow; j++) y[yr + j] += wv * x[xr + j];
            }
          }
      }
    }
  return y;
}

function convBack(x: Arr, [n, c, h, w]: number[], W: Arr, [k, , kh, kw]: number[], dy: Float64Array, wantDx: boolean) {
  const oh = h - kh + 1;
  const ow = w - kw + 1;
  const dW = new Float64Array(k * c * kh * kw);
  const db = new Float64Array(k);
  const dbAbs = new Float64Array(k);
  const dx = wantDx ? new Float64Array(n * c * h * w) : null;
  for (let ni = 0; ni < n; ni++)
    for (let ki = 0; ki < k; ki++) {
      const yo = (ni * k + ki) * oh * ow;
      for (let i = 0; i < oh * ow; i++) {
        db[ki] += dy[yo + i];
        dbAbs[ki] += Math.abs(dy[yo + i]);
      }
      for (let ci = 0; ci < c; ci++) {
        const xo = (ni * c + ci) * h * w;
        for (let p = 0; p < kh; p++)
          for (let q = 0; q < kw; q++) {
            const wi = ((ki * c + ci) * kh + p) * kw + q;
            const wv = W[wi];
            let s = 0;
            for (let i = 0; i < oh; i++) {
              const xr = xo + (i + p) * w + q;
              const yr = yo + i * ow;
              for (let j = 0; j < ow; j++) {
                s += dy[yr + j] * x[xr + j];
                if (dx) dx[xr + j] += dy[yr + j] * wv;
              }
            }
            dW[wi] += s;
          }
      }
    }
  return { dx, dW, db, dbAbs };
}

interface BnSaved { xhat: Float64Array; invstd: Float64Array; mean: Float64Array; variance: Float64Array }

function bn(x: Arr, [n, c, l]: number[], gamma: Arr, beta: Arr, eps: number, stats?: { mean: Arr; variance: Arr }) {
  const m = n * l;
  const mean = new Float64Array(c);
  const variance = new Float64Array(c);
  if (stats) {
    for (let ci = 0; ci < c; ci++) { mean[ci] = stats.mean[ci]; variance[ci] = stats.variance[ci]; }
  } else {
    for (let ni = 0; ni < n; ni++) for (let ci = 0; ci < c; ci++) for (let j = 0, o = (ni * c + ci) * l; j < l; j++) mean[ci] += x[o + j];
    for (let ci = 0; ci < c; ci++) mean[ci] /= m;
    for (let ni = 0; ni < n; ni++)
      for (let ci = 0; ci < c; ci++)
        for (let j = 0, o = (ni * c + ci) * l; j < l; j++) variance[ci] += (x[o + j] - mean[ci]) ** 2;
    for (let ci = 0; ci < c; ci++) variance[ci] /= m;
  }
  const invstd = variance.map((v) => 1 / Math.sqrt(v + eps));
  const xhat = new Float64Array(n * c * l);
  const y = new Float64Array(n * c * l);
  for (let ni = 0; ni < n; ni++)
    for (let ci = 0; ci < c; ci++)
      for (let j = 0, o = (ni * c + ci) * l; j < l; j++) {
        xhat[o + j] = (x[o + j] - mean[ci]) * invstd[ci];
        y[o + j] = gamma[ci] * xhat[o + j] + beta[ci];
      }
  return { y, saved: { xhat, invstd, mean, variance } as BnSaved };
}

function bnBack(dy: Float64Array, [n, c, l]: number[], gamma: Arr, s: BnSaved) {
  const m = n * l;
  const dgamma = new Float64Array(c);
  const dbeta = new Float64Array(c);
  for (let ni = 0; ni < n; ni++)
    for (let ci = 0; ci < c; ci++)
      for (let j = 0, o = (ni * c + ci) * l; j < l; j++) {
        dbeta[ci] += dy[o + j];
        dgamma[ci] += dy[o + j] * s.xhat[o + j];
      }
  const dx = new Float64Array(n * c * l);
  for (let ni = 0; ni < n; ni++)
    for (let ci = 0; ci < c; ci++) {
      const k = (gamma[ci] * s.invstd[ci]) / m;
      for (let j = 0, o = (ni * c + ci) * l; j < l; j++) dx[o + j] = k * (m * dy[o + j] - dbeta[ci] - s.xhat[o + j] * dgamma[ci]);
    }
  return { dx, dgamma, dbeta };
}

const relu = (x: Float64Array) => x.map((v) => (v > 0 ? v : 0));
const reluBack = (x: Float64Array, dy: Float64Array) => dy.map((g, i) => (x[i] > 0 ? g : 0));

function pool(x: Float64Array, [n, c, h, w]: number[]) {
  const oh = h >> 1;
  const ow = w >> 1;
  const y = new Float64Array(n * c * oh * ow);
  for (let nc = 0; nc < n * c; nc++)
    for (let i = 0; i < oh; i++)
      for (let j = 0; j < ow; j++) {
        const o = nc * h * w + 2 * i * w + 2 * j;
        y[(nc * oh + i) * ow + j] = (x[o] + x[o + 1] + x[o + w] + x[o + w + 1]) / 4;
      }
  return y;
}

function poolBack(dy: Float64Array, [n, c, h, w]: number[]) {
  const oh = h >> 1;
  const ow = w >> 1;
  const dx = new Float64Array(n * c * h * w);
  for (let nc = 0; nc < n * c; nc++)
    for (let i = 0; i < oh; i++)
      for (let j = 0; j < ow; j++) {
        const g = dy[(nc * oh + i) * ow + j] / 4;
        const o = nc * h * w + 2 * i * w + 2 * j;
        dx[o] += g; dx[o + 1] += g; dx[o + w] += g; dx[o + w + 1] += g;
      }
  return dx;
}

/** y (n x out) = x (n x in) W (in x out) + b */
function dense(x: Arr, n: number, din: number, W: Arr, dout: number, b: Arr) {
  const y = new Float64Array(n * dout);
  for (let i = 0; i < n; i++) {
    for (let o = 0; o < dout; o++) y[i * dout + o] = b[o];
    for (let k = 0; k < din; k++) {
      const xv = x[i * din + k];
      for (let o = 0; o < dout; o++) y[i * dout + o] += xv * W[k * dout + o];
    }
  }
  return y;
}

function denseBack(x: Arr, n: number, din: number, W: Arr, dout: number, dy: Float64Array) {
  const dx = new Float64Array(n * din);
  const dW = new Float64Array(din * dout);
  const db = new Float64Array(dout);
  for (let i = 0; i < n; i++)
    for (let k = 0; k < din; k++) {
      let s = 0;
      const xv = x[i * din + k];
      for (let o = 0; o < dout; o++) {
        s += dy[i * dout + o] * W[k * dout + o];
        dW[k * dout + o] += xv * dy[i * dout + o];
      }
      dx[i * din + k] = s;
    }
  const dbAbs = new Float64Array(dout);
  for (let i = 0; i < n; i++)
    for (let o = 0; o < dout; o++) {
      db[o] += dy[i * dout + o];
      dbAbs[o] += Math.abs(dy[i * dout + o]);
    }
  return { dx, dW, db, dbAbs };
}

export interface PlainStep {
  loss: number;
  logits: Float64Array;
  grads: Record<string, Float64Array>;
  /** For the biases that feed a batch norm (b1, b2, b3) the exact gradient is 0: BN removes any
   *  per-channel shift. Their error is measured against the sum of |terms| (per channel) instead. */
  scales: Record<string, Float64Array>;
}

/** One training step's forward and backward (batch statistics), loss summed over the batch. */
export function plainTrainStep(p: Params, x: Float32Array, labels: Float32Array, n: number, eps = 1e-5): PlainStep {
  const c1 = conv(x, [n, 1, 28, 28], p.W1, [20, 1, 3, 3], p.b1);
  const bn1 = bn(c1, [n, 20, 676], p.gamma1, p.beta1, eps);
  const r1 = relu(bn1.y);
  const p1 = pool(r1, [n, 20, 26, 26]);
  const c2 = conv(p1, [n, 20, 13, 13], p.W2, [50, 20, 5, 5], p.b2);
  const bn2 = bn(c2, [n, 50, 81], p.gamma2, p.beta2, eps);
  const r2 = relu(bn2.y);
  const p2 = pool(r2, [n, 50, 9, 9]); // n x 800 when flattened
  const h3 = dense(p2, n, 800, p.W3, 128, p.b3);
  const bn3 = bn(h3, [n, 128, 1], p.gamma3, p.beta3, eps);
  const r3 = relu(bn3.y);
  const logits = dense(r3, n, 128, p.W4, 10, p.b4);
  // summed softmax cross-entropy and its gradient
  let loss = 0;
  const dlogits = new Float64Array(n * 10);
  for (let i = 0; i < n; i++) {
    let mx = -Infinity;
    for (let k = 0; k < 10; k++) mx = Math.max(mx, logits[i * 10 + k]);
    let z = 0;
    for (let k = 0; k < 10; k++) z += Math.exp(logits[i * 10 + k] - mx);
    const lse = mx + Math.log(z);
    loss += lse - logits[i * 10 + labels[i]];
    for (let k = 0; k < 10; k++) dlogits[i * 10 + k] = Math.exp(logits[i * 10 + k] - lse) - (k === labels[i] ? 1 : 0);
  }
  const g: Record<string, Float64Array> = {};
  const d4 = denseBack(r3, n, 128, p.W4, 10, dlogits);
  g.W4 = d4.dW; g.b4 = d4.db;
  const dbn3 = bnBack(reluBack(bn3.y, d4.dx), [n, 128, 1], p.gamma3, bn3.saved);
  g.gamma3 = dbn3.dgamma; g.beta3 = dbn3.dbeta;
  const d3 = denseBack(p2, n, 800, p.W3, 128, dbn3.dx);
  g.W3 = d3.dW; g.b3 = d3.db;
  const scales: Record<string, Float64Array> = { b3: d3.dbAbs };
  const dr2 = poolBack(d3.dx, [n, 50, 9, 9]);
  const dbn2 = bnBack(reluBack(bn2.y, dr2), [n, 50, 81], p.gamma2, bn2.saved);
  g.gamma2 = dbn2.dgamma; g.beta2 = dbn2.dbeta;
  const d2 = convBack(p1, [n, 20, 13, 13], p.W2, [50, 20, 5, 5], dbn2.dx, true);
  g.W2 = d2.dW; g.b2 = d2.db; scales.b2 = d2.dbAbs;
  const dr1 = poolBack(d2.dx!, [n, 20, 26, 26]);
  const dbn1 = bnBack(reluBack(bn1.y, dr1), [n, 20, 676], p.gamma1, bn1.saved);
  g.gamma1 = dbn1.dgamma; g.beta1 = dbn1.dbeta;
  const d1 = convBack(x, [n, 1, 28, 28], p.W1, [20, 1, 3, 3], dbn1.dx, false);
  g.W1 = d1.dW; g.b1 = d1.db; scales.b1 = d1.dbAbs;
  return { loss, logits, grads: g, scales };
}

/** Inference logits with the given running statistics. */
export function plainInfer(p: Params, stats: Record<string, Float32Array>, x: Float32Array, n: number, eps = 1e-5): Float64Array {
  const c1 = conv(x, [n, 1, 28, 28], p.W1, [20, 1, 3, 3], p.b1);
  const r1 = relu(bn(c1, [n, 20, 676], p.gamma1, p.beta1, eps, { mean: stats.mean1, variance: stats.var1 }).y);
  const p1 = pool(r1, [n, 20, 26, 26]);
  const c2 = conv(p1, [n, 20, 13, 13], p.W2, [50, 20, 5, 5], p.b2);
  const r2 = relu(bn(c2, [n, 50, 81], p.gamma2, p.beta2, eps, { mean: stats.mean2, variance: stats.var2 }).y);
  const p2 = pool(r2, [n, 50, 9, 9]);
  const h3 = dense(p2, n, 800, p.W3, 128, p.b3);
  const r3 = relu(bn(h3, [n, 128, 1], p.gamma3, p.beta3, eps, { mean: stats.mean3, variance: stats.var3 }).y);
  return dense(r3, n, 128, p.W4, 10, p.b4);
}

/** Relative L2 error ||got - ref|| / ||scale|| (scale defaults to ref), the measure used for whole gradients. */
export function relL2(got: ArrayLike<number>, ref: ArrayLike<number>, scale: ArrayLike<number> = ref): number {
  if (got.length !== ref.length) return Infinity;
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    num += (got[i] - ref[i]) ** 2;
    den += scale[i] ** 2;
  }
  const r = Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
  return Number.isNaN(r) ? Infinity : r;
}
