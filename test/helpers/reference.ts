// Float64 reference implementations in plain loops: the specification every kernel is checked
// against (forward values directly, gradients through central differences of these functions).

export type Shape = number[];

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function broadcastShape(a: Shape, b: Shape): Shape {
  const n = Math.max(a.length, b.length);
  const out: Shape = [];
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    out.push(Math.max(da, db));
  }
  return out;
}

/** Index into a tensor of `shape` from a multi-index of the broadcast `out` shape. */
function broadcastIndex(idx: number[], shape: Shape, outNdim: number): number {
  let flat = 0;
  const off = outNdim - shape.length;
  for (let i = 0; i < shape.length; i++) flat = flat * shape[i] + (shape[i] === 1 ? 0 : idx[i + off]);
  return flat;
}

export function binary(op: (x: number, y: number) => number, a: Float64Array, as: Shape, b: Float64Array, bs: Shape): Float64Array {
  const os = broadcastShape(as, bs);
  const out = new Float64Array(numel(os));
  const idx = new Array(os.length).fill(0);
  for (let f = 0; f < out.length; f++) {
    out[f] = op(a[broadcastIndex(idx, as, os.length)], b[broadcastIndex(idx, bs, os.length)]);
    for (let d = os.length - 1; d >= 0; d--) {
      if (++idx[d] < os[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

export function sumAxes(x: Float64Array, shape: Shape, axes: number[]): Float64Array {
  const outShape = shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const out = new Float64Array(numel(outShape));
  const idx = new Array(shape.length).fill(0);
  for (let f = 0; f < x.length; f++) {
    let o = 0;
    for (let d = 0; d < shape.length; d++) o = o * outShape[d] + (axes.includes(d) ? 0 : idx[d]);
    out[o] += x[f];
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

export function matmul(a: Float64Array, b: Float64Array, m: number, k: number, n: number): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let p = 0; p < k; p++) for (let j = 0; j < n; j++) c[i * n + j] += a[i * k + p] * b[p * n + j];
  return c;
}

/** x (n, in) times w (out, in) transposed, plus bias. */
export function linear(x: Float64Array, w: Float64Array, b: Float64Array | null, n: number, inF: number, outF: number): Float64Array {
  const y = new Float64Array(n * outF);
  for (let i = 0; i < n; i++)
    for (let o = 0; o < outF; o++) {
      let s = b ? b[o] : 0;
      for (let p = 0; p < inF; p++) s += x[i * inF + p] * w[o * inF + p];
      y[i * outF + o] = s;
    }
  return y;
}

export interface ConvParams {
  n: number; c: number; h: number; w: number; k: number; kh: number; kw: number;
  sh: number; sw: number; ph: number; pw: number;
  /** Channel groups, default 1: filter k sees the c / groups input channels of group floor(k / (k / groups)). */
  groups?: number;
}

export function convOut(p: ConvParams): [number, number] {
  return [Math.floor((p.h + 2 * p.ph - p.kh) / p.sh) + 1, Math.floor((p.w + 2 * p.pw - p.kw) / p.sw) + 1];
}

export function conv2d(x: Float64Array, w: Float64Array, b: Float64Array | null, p: ConvParams): Float64Array {
  const [oh, ow] = convOut(p);
  const y = new Float64Array(p.n * p.k * oh * ow);
  const cg = p.c / (p.groups ?? 1), kg = p.k / (p.groups ?? 1);  // per group
  for (let n = 0; n < p.n; n++)
    for (let k = 0; k < p.k; k++)
      for (let i = 0; i < oh; i++)
        for (let j = 0; j < ow; j++) {
          let s = b ? b[k] : 0;
          for (let cw = 0; cw < cg; cw++)
            for (let u = 0; u < p.kh; u++)
              for (let v = 0; v < p.kw; v++) {
                const hi = i * p.sh + u - p.ph;
                const wi = j * p.sw + v - p.pw;
                if (hi < 0 || hi >= p.h || wi < 0 || wi >= p.w) continue;
                const c = Math.floor(k / kg) * cg + cw;  // the input channel, in filter k's group
                s += x[((n * p.c + c) * p.h + hi) * p.w + wi] * w[((k * cg + cw) * p.kh + u) * p.kw + v];
              }
          y[((n * p.k + k) * oh + i) * ow + j] = s;
        }
  return y;
}

export function avgPool2d(x: Float64Array, n: number, c: number, h: number, w: number, kh: number, kw: number, sh: number, sw: number): Float64Array {
  const oh = Math.floor((h - kh) / sh) + 1;
  const ow = Math.floor((w - kw) / sw) + 1;
  const y = new Float64Array(n * c * oh * ow);
  for (let nc = 0; nc < n * c; nc++)
    for (let i = 0; i < oh; i++)
      for (let j = 0; j < ow; j++) {
        let s = 0;
        for (let u = 0; u < kh; u++) for (let v = 0; v < kw; v++) s += x[(nc * h + i * sh + u) * w + j * sw + v];
        y[(nc * oh + i) * ow + j] = s / (kh * kw);
      }
  return y;
}

/** Training-mode batch norm over (n, c, l); returns y and the biased batch variance. */
export function batchNormTrain(x: Float64Array, gamma: Float64Array, beta: Float64Array, n: number, c: number, l: number, eps: number) {
  const y = new Float64Array(x.length);
  const mean = new Float64Array(c);
  const variance = new Float64Array(c);
  const m = n * l;
  for (let ch = 0; ch < c; ch++) {
    let s = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j < l; j++) s += x[(i * c + ch) * l + j];
    const mu = s / m;
    let v = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j < l; j++) v += (x[(i * c + ch) * l + j] - mu) ** 2;
    v /= m;
    mean[ch] = mu;
    variance[ch] = v;
    const inv = 1 / Math.sqrt(v + eps);
    for (let i = 0; i < n; i++)
      for (let j = 0; j < l; j++) {
        const f = (i * c + ch) * l + j;
        y[f] = gamma[ch] * (x[f] - mu) * inv + beta[ch];
      }
  }
  return { y, mean, variance };
}

export function batchNormInfer(x: Float64Array, gamma: Float64Array, beta: Float64Array, mean: Float64Array, variance: Float64Array, n: number, c: number, l: number, eps: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let i = 0; i < n; i++)
    for (let ch = 0; ch < c; ch++)
      for (let j = 0; j < l; j++) {
        const f = (i * c + ch) * l + j;
        y[f] = gamma[ch] * (x[f] - mean[ch]) / Math.sqrt(variance[ch] + eps) + beta[ch];
      }
  return y;
}

export function softmaxCrossEntropy(logits: Float64Array, labels: number[], n: number, k: number): Float64Array {
  const loss = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let mx = -Infinity;
    for (let j = 0; j < k; j++) mx = Math.max(mx, logits[i * k + j]);
    let s = 0;
    for (let j = 0; j < k; j++) s += Math.exp(logits[i * k + j] - mx);
    loss[i] = Math.log(s) + mx - logits[i * k + labels[i]];
  }
  return loss;
}
