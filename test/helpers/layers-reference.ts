// Float64 references of the pooling and dropout layers, written as plainly as possible.

export interface MaxPoolGeometry {
  n: number;
  c: number;
  h: number;
  w: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  ph: number;
  pw: number;
}

export function maxPoolOut(g: MaxPoolGeometry): { oh: number; ow: number } {
  return { oh: Math.floor((g.h + 2 * g.ph - g.kh) / g.sh) + 1, ow: Math.floor((g.w + 2 * g.pw - g.kw) / g.sw) + 1 };
}

/** Each window's maximum and the plane position of its first maximum (NaN wins, the first one). */
export function maxPoolRef(g: MaxPoolGeometry, x: ArrayLike<number>): { y: Float64Array; argmax: Int32Array } {
  const { oh, ow } = maxPoolOut(g);
  const y = new Float64Array(g.n * g.c * oh * ow);
  const argmax = new Int32Array(y.length);
  for (let p = 0; p < g.n * g.c; p++) {
    for (let i = 0; i < oh; i++) {
      for (let j = 0; j < ow; j++) {
        let best = -Infinity;
        let where = -1;
        for (let a = 0; a < g.kh; a++) {
          for (let b = 0; b < g.kw; b++) {
            const r = i * g.sh - g.ph + a;
            const c = j * g.sw - g.pw + b;
            if (r < 0 || r >= g.h || c < 0 || c >= g.w) continue;
            const v = x[p * g.h * g.w + r * g.w + c];
            if (where < 0 || v > best || (Number.isNaN(v) && !Number.isNaN(best))) {
              best = v;
              where = r * g.w + c;
            }
          }
        }
        y[(p * oh + i) * ow + j] = best;
        argmax[(p * oh + i) * ow + j] = where;
      }
    }
  }
  return { y, argmax };
}

const M64 = (1n << 64n) - 1n;
const GOLDEN = 0x9e3779b97f4a7c15n;

function mix(z: bigint): bigint {
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M64;
  return z ^ (z >> 31n);
}

/** dropout_uniform of native/include/kg/dropout_mask.h, in BigInt arithmetic. */
export function dropoutUniform(seed: number, index: number): number {
  const key = mix((BigInt(seed) + GOLDEN) & M64);
  const z = mix((key + BigInt(index + 1) * GOLDEN) & M64);
  return Number(z >> 40n) / 2 ** 24;
}

export function dropoutRef(x: ArrayLike<number>, p: number, seed: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = dropoutUniform(seed, i) >= Math.fround(p) ? x[i] / (1 - p) : 0;
  return out;
}
