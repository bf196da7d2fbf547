// Per-example transforms applied by the DataLoader on the host as it gathers a batch: normalization
// and the standard augmentations (random crop with padding, horizontal flip). Each example gets its
// own generator seeded from (loader seed, epoch, example index), so a run reproduces exactly and an
// example is augmented the same way whatever batch it lands in.
import { checkPositiveInt } from '../ops/check';
import { describe, describeItems, readOptions } from '../options';
import type { Random } from '../random';

/**
 * Rewrites one example in place. `x` holds c * h * w values (c, h, w) = `shape`; `rng` is the
 * example's generator for this epoch.
 */
export interface Transform {
  readonly name: string;
  apply(x: Float32Array, shape: readonly [number, number, number], rng: Random): void;
}

function perChannel(v: unknown, fn: string, name: string, positive: boolean): number[] {
  const list = typeof v === 'number' ? [v] : Array.isArray(v) ? v : null;
  if (list === null || list.length === 0 || !list.every((d) => typeof d === 'number' && Number.isFinite(d) && (!positive || d > 0))) {
    throw new TypeError(`${fn}: ${name} must be a ${positive ? 'positive ' : ''}finite number or an array of them (one per channel), got ${describeItems(v)}`);
  }
  return list as number[];
}

export interface NormalizeOptions {
  /** One value, or one per channel. */
  mean: number | readonly number[];
  std: number | readonly number[];
}

/** (x - mean[c]) / std[c], channel by channel. */
export function normalize(options: NormalizeOptions): Transform {
  const fn = 'kg.data.normalize';
  const opts = readOptions(options, fn, ['mean', 'std']);
  if (options === undefined) throw new TypeError(`${fn}: options { mean, std } are required`);
  const mean = perChannel(opts.mean, fn, 'mean', false);
  const std = perChannel(opts.std, fn, 'std', true);
  if (mean.length !== std.length && mean.length !== 1 && std.length !== 1) {
    throw new RangeError(`${fn}: mean has ${mean.length} channels but std has ${std.length}`);
  }
  return {
    name: 'normalize',
    apply(x, [c, h, w]) {
      for (const [what, list] of [['mean', mean], ['std', std]] as const) {
        if (list.length !== 1 && list.length !== c) throw new RangeError(`${fn}: ${what} has ${list.length} values but the examples have ${c} channels`);
      }
      const plane = h * w;
      for (let ch = 0; ch < c; ch++) {
        const m = mean.length === 1 ? mean[0] : mean[ch];
        const inv = 1 / (std.length === 1 ? std[0] : std[ch]);
        for (let i = ch * plane; i < (ch + 1) * plane; i++) x[i] = (x[i] - m) * inv;
      }
    },
  };
}

export interface RandomCropOptions {
  /** Zeros added on each side before a crop of the original size is taken (default 4). */
  padding?: number;
}

/**
 * Pads the example with `padding` zeros on every side and crops a window of its original size at
 * a uniformly random offset: a shift by up to `padding` pixels each way, the gap filled with 0.
 */
export function randomCrop(options?: RandomCropOptions): Transform {
  const fn = 'kg.data.randomCrop';
  const opts = readOptions(options, fn, ['padding']);
  const pad = checkPositiveInt(opts.padding ?? 4, fn, 'padding', 0);
  let scratch = new Float32Array(0);
  return {
    name: `randomCrop(padding ${pad})`,
    apply(x, [c, h, w], rng) {
      const dy = rng.int(2 * pad + 1) - pad;
      const dx = rng.int(2 * pad + 1) - pad;
      if (dy === 0 && dx === 0) return;
      if (scratch.length < x.length) scratch = new Float32Array(x.length);
      scratch.set(x.subarray(0, c * h * w));
      x.fill(0, 0, c * h * w);
      // Output (i, j) reads input (i + dy, j + dx) where that is inside the image.
      const i0 = Math.max(0, -dy), i1 = Math.min(h, h - dy);
      const j0 = Math.max(0, -dx), j1 = Math.min(w, w - dx);
      for (let ch = 0; ch < c; ch++) {
        for (let i = i0; i < i1; i++) {
          const src = (ch * h + i + dy) * w + dx;
          x.set(scratch.subarray(src + j0, src + j1), (ch * h + i) * w + j0);
        }
      }
    },
  };
}

export interface HorizontalFlipOptions {
  /** Probability of mirroring an example (default 0.5). */
  p?: number;
}

/** Mirrors the example left to right with probability p. */
export function horizontalFlip(options?: HorizontalFlipOptions): Transform {
  const fn = 'kg.data.horizontalFlip';
  const opts = readOptions(options, fn, ['p']);
  const p = opts.p ?? 0.5;
  if (typeof p !== 'number' || !(p >= 0 && p <= 1)) throw new RangeError(`${fn}: p must be a number in [0, 1], got ${describe(p)}`);
  return {
    name: `horizontalFlip(p ${p})`,
    apply(x, [c, h, w], rng) {
      // Drawn even when p is 0 or 1, so that the draws of later transforms do not depend on p.
      if (!(rng.uniform() < p)) return;
      for (let row = 0; row < c * h; row++) x.subarray(row * w, (row + 1) * w).reverse();
    },
  };
}

/** Throws a TypeError naming `fn` unless `list` is an array of transforms. */
export function checkTransforms(list: unknown, fn: string): readonly Transform[] {
  if (!Array.isArray(list)) throw new TypeError(`${fn}: transforms must be an array of transforms (kg.data.normalize, ...), got ${describe(list)}`);
  list.forEach((t, i) => {
    if (t === null || typeof t !== 'object' || typeof (t as Transform).apply !== 'function') {
      throw new TypeError(`${fn}: transforms[${i}] is not a transform (an object with apply(x, shape, rng)), got ${describe(t)}`);
    }
  });
  return list as Transform[];
}
