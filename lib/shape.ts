// Shape arithmetic and validation shared by every op.
import { describe } from './options';

export type Shape = readonly number[];

export function numelOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function formatShape(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * The shape as a fresh array, checked: a real array (no holes) of non-negative safe integers whose
 * product is a safe integer too (beyond 2^53 the element count itself would be rounded). `fn` names
 * the public function in the error, `what` the argument.
 */
export function checkShape(shape: unknown, fn: string, what = 'shape'): number[] {
  if (!Array.isArray(shape)) {
    throw new TypeError(`${fn}: ${what} must be an array of non-negative integers, got ${describe(shape)}`);
  }
  for (let i = 0; i < shape.length; i++) {
    if (!(i in shape)) throw new TypeError(`${fn}: ${what} has a hole at index ${i} (length ${shape.length})`);
    const d: unknown = shape[i];
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw new TypeError(`${fn}: ${what} must be an array of non-negative integers, got ${String(d)} at index ${i}`);
    }
  }
  const n = numelOf(shape);
  if (!Number.isSafeInteger(n)) {
    throw new RangeError(`${fn}: ${what} ${formatShape(shape)} has ${n} elements, more than 2^53`);
  }
  return shape.slice();
}

/** Row-major strides of a contiguous tensor. */
export function stridesOf(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

/** NumPy broadcasting of two shapes; throws a RangeError naming both when they do not broadcast. */
export function broadcastShapes(a: Shape, b: Shape, op: string): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new RangeError(`${op}: shapes ${formatShape(a)} and ${formatShape(b)} do not broadcast`);
    }
    out[i] = da === 1 ? db : da;
  }
  if (!Number.isSafeInteger(numelOf(out))) {
    throw new RangeError(`${op}: shapes ${formatShape(a)} and ${formatShape(b)} broadcast to ${formatShape(out)}, more than 2^53 elements`);
  }
  return out;
}

/** Strides for reading a tensor of shape `from` as if it had the broadcast shape `to` (0 = repeat). */
export function broadcastStrides(from: Shape, to: Shape): number[] {
  const strides = stridesOf(from);
  const offset = to.length - from.length;
  return to.map((_, i) => {
    const j = i - offset;
    return j < 0 || from[j] === 1 ? 0 : strides[j];
  });
}

/** Normalizes possibly-negative axes against `shape`; throws for an axis that is not in it. */
export function normalizeAxes(axes: unknown, shape: Shape, op: string): number[] {
  const ndim = shape.length;
  if (typeof axes !== 'number' && !Array.isArray(axes)) {
    throw new TypeError(`${op}: axes must be a number or an array of numbers, got ${describe(axes)}`);
  }
  const list: unknown[] = typeof axes === 'number' ? [axes] : [...axes];
  const out = list.map((a) => {
    if (typeof a !== 'number' || !Number.isInteger(a) || a < -ndim || a >= ndim) {
      throw new RangeError(`${op}: axis ${String(a)} is out of range for shape ${formatShape(shape)} (${ndim} dimensions)`);
    }
    return a < 0 ? a + ndim : a;
  });
  return [...new Set(out)].sort((x, y) => x - y);
}

/** The most dimensions the native elementwise kernel takes. */
export const MAX_KERNEL_DIMS = 6;

/**
 * Merges neighbouring dimensions that every operand walks as one (stride[i] = stride[i+1] *
 * shape[i+1], which also holds for two broadcast dimensions of stride 0) and drops dimensions of
 * size 1. The same elements are visited in the same order, so a 7-D broadcast of a few
 * contiguous runs fits a kernel that takes at most 6 dimensions.
 */
export function collapseDims(shape: Shape, strides: readonly (readonly number[])[]): { shape: number[]; strides: number[][] } {
  const outShape: number[] = [];
  const outStrides: number[][] = strides.map(() => []);
  for (let i = 0; i < shape.length; i++) {
    if (shape[i] === 1) continue;
    const last = outShape.length - 1;
    if (last >= 0 && strides.every((s, k) => outStrides[k][last] === s[i] * shape[i])) {
      outShape[last] *= shape[i];
      strides.forEach((s, k) => (outStrides[k][last] = s[i]));
    } else {
      outShape.push(shape[i]);
      strides.forEach((s, k) => outStrides[k].push(s[i]));
    }
  }
  return { shape: outShape, strides: outStrides };
}
