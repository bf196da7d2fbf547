// Elementwise arithmetic with NumPy broadcasting, and the reductions that undo broadcasting in
// the gradients.
//
// A number operand may be anything float32 can hold, NaN and the infinities included (as in
// PyTorch, t.add(NaN) is a tensor of NaN); a finite number beyond float32's range is rejected.
import { recordOp } from '../autograd/tape';
import { BinaryOpCode, native } from '../native';
import { describe, readOptions } from '../options';
import {
  broadcastShapes, broadcastStrides, checkShape, collapseDims, formatShape, MAX_KERNEL_DIMS, normalizeAxes, numelOf, sameShape, Shape,
} from '../shape';
import { Tensor } from '../tensor';
import { checkSameDevice, checkTensor } from './check';
import { allocate, checkFloat32, scalar } from './creation';

export type Operand = Tensor | number;

const opNames = ['kg.add', 'kg.sub', 'kg.mul', 'kg.div'] as const;

function operand(x: Operand, like: Tensor, op: string, name: string): Tensor {
  if (typeof x === 'number') return scalar(checkFloat32(x, op, name), like.device);
  if (!(x instanceof Tensor)) throw new TypeError(`${op}: ${name} must be a Tensor or a number, got ${describe(x)}`);
  return checkTensor(x, op, name);
}

/**
 * out[shape] = a (op) b, reading a and b through broadcast strides. Dimensions that every operand
 * walks contiguously are merged first, so any rank works as long as the broadcast has at most
 * MAX_KERNEL_DIMS separate runs.
 */
function broadcastKernel(op: BinaryOpCode, name: string, shape: Shape, a: Tensor, b: Tensor, aStrides: number[], bStrides: number[], out: Tensor): void {
  if (numelOf(shape) === 0) return;
  const c = collapseDims(shape, [aStrides, bStrides]);
  if (c.shape.length > MAX_KERNEL_DIMS) {
    throw new RangeError(
      `${name}: shapes ${formatShape(a.shape)} and ${formatShape(b.shape)} broadcast to ${formatShape(shape)}, which has ` +
        `${c.shape.length} separately strided dimensions; at most ${MAX_KERNEL_DIMS} are supported (reshape to merge some)`,
    );
  }
  native.binary(op, c.shape, c.strides[0], c.strides[1], a.storage, b.storage, out.storage);
}

/** out = a (op) b, broadcast, without recording. */
function binaryRaw(op: BinaryOpCode, a: Tensor, b: Tensor): Tensor {
  const name = opNames[op];
  checkSameDevice(name, { a, b });
  const shape = broadcastShapes(a.shape, b.shape, name);
  const out = allocate(shape, a.device, name);
  broadcastKernel(op, name, shape, a, b, broadcastStrides(a.shape, shape), broadcastStrides(b.shape, shape), out);
  return out;
}

/** Sums `g` down to `shape` over the dimensions that broadcasting expanded. */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const offset = g.ndim - shape.length;
  const axes: number[] = [];
  g.shape.forEach((d, i) => {
    if (i < offset || (shape[i - offset] === 1 && d !== 1)) axes.push(i);
  });
  return reshape(sum(g, axes), shape);
}

function lhs(a: Tensor | number, b: Tensor | number, op: string): Tensor {
  if (a instanceof Tensor) return checkTensor(a, op, 'a');
  if (b instanceof Tensor) return checkTensor(b, op, 'b');
  throw new TypeError(`${op}: at least one operand must be a Tensor, got ${describe(a)} and ${describe(b)}`);
}

export function add(a: Operand, b: Operand): Tensor {
  const like = lhs(a, b, 'kg.add');
  const ta = operand(a, like, 'kg.add', 'a');
  const tb = operand(b, like, 'kg.add', 'b');
  return recordOp('add', binaryRaw(BinaryOpCode.Add, ta, tb), [ta, tb], [], (g) => [sumTo(g, ta.shape), sumTo(g, tb.shape)]);
}

export function sub(a: Operand, b: Operand): Tensor {
  const like = lhs(a, b, 'kg.sub');
  const ta = operand(a, like, 'kg.sub', 'a');
  const tb = operand(b, like, 'kg.sub', 'b');
  return recordOp('sub', binaryRaw(BinaryOpCode.Sub, ta, tb), [ta, tb], [], (g) => [sumTo(g, ta.shape), scale(sumTo(g, tb.shape), -1)]);
}

export function mul(a: Operand, b: Operand): Tensor {
  const like = lhs(a, b, 'kg.mul');
  const ta = operand(a, like, 'kg.mul', 'a');
  const tb = operand(b, like, 'kg.mul', 'b');
  return recordOp('mul', binaryRaw(BinaryOpCode.Mul, ta, tb), [ta, tb], [ta.tracksGrad && tb, tb.tracksGrad && ta], (g) => [
    ta.tracksGrad ? sumTo(binaryRaw(BinaryOpCode.Mul, g, tb), ta.shape) : null,
    tb.tracksGrad ? sumTo(binaryRaw(BinaryOpCode.Mul, g, ta), tb.shape) : null,
  ]);
}

export function div(a: Operand, b: Operand): Tensor {
  const like = lhs(a, b, 'kg.div');
  const ta = operand(a, like, 'kg.div', 'a');
  const tb = operand(b, like, 'kg.div', 'b');
  const out = binaryRaw(BinaryOpCode.Div, ta, tb);
  return recordOp('div', out, [ta, tb], [tb, tb.tracksGrad && out], (g) => [
    ta.tracksGrad ? sumTo(binaryRaw(BinaryOpCode.Div, g, tb), ta.shape) : null,
    // d(a/b)/db = -(a/b)/b
    tb.tracksGrad ? scale(sumTo(binaryRaw(BinaryOpCode.Div, binaryRaw(BinaryOpCode.Mul, g, out), tb), tb.shape), -1) : null,
  ]);
}

/** alpha * x. */
export function scale(x: Tensor, alpha: number): Tensor {
  checkTensor(x, 'kg.scale', 'x');
  if (typeof alpha !== 'number') throw new TypeError(`kg.scale: alpha must be a number, got ${describe(alpha)}`);
  checkFloat32(alpha, 'kg.scale', 'alpha');
  let out: Tensor;
  if (Number.isFinite(alpha)) {
    out = Tensor.empty(x.shape, x.device);
    native.axpby(alpha, x.storage, 0, out.storage);
  } else {
    // The native axpby takes finite factors only; NaN and ±Infinity go through the multiply.
    const s = scalar(alpha, x.device);
    out = binaryRaw(BinaryOpCode.Mul, x, s);
    s.dispose();
  }
  return recordOp('scale', out, [x], [], (g) => [scale(g, alpha)]);
}

export function neg(x: Tensor): Tensor {
  return scale(x, -1);
}

/** Reshape without copying (the result shares memory); one dimension may be -1. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const fn = 'kg.reshape';
  checkTensor(x, fn, 'x');
  if (!Array.isArray(shape)) throw new TypeError(`${fn}: shape must be an array of integers (one may be -1), got ${describe(shape)}`);
  for (let i = 0; i < shape.length; i++) {
    const d: unknown = shape[i];
    if (!(i in shape) || typeof d !== 'number' || !Number.isSafeInteger(d) || d < -1) {
      throw new TypeError(`${fn}: shape must be an array of integers (one may be -1), got ${i in shape ? String(d) : 'a hole'} at index ${i}`);
    }
  }
  const target = [...shape];
  const unknown = target.indexOf(-1);
  if (unknown !== target.lastIndexOf(-1)) throw new RangeError(`${fn}: only one dimension can be -1, got ${formatShape(shape)}`);
  if (unknown >= 0) {
    const rest = numelOf(target.filter((d) => d !== -1));
    if (rest === 0 || x.numel % rest !== 0) {
      throw new RangeError(`${fn}: cannot reshape ${formatShape(x.shape)} (${x.numel} elements) into ${formatShape(shape)}`);
    }
    target[unknown] = x.numel / rest;
  }
  if (numelOf(target) !== x.numel) {
    throw new RangeError(`${fn}: cannot reshape ${formatShape(x.shape)} (${x.numel} elements) into ${formatShape(shape)}`);
  }
  if (sameShape(target, x.shape)) return x;
  const inputShape = x.shape;
  return recordOp('reshape', x.view(target), [x], [], (g) => [reshape(g, inputShape)]);
}

/** (N, ...) -> (N, rest). */
export function flatten(x: Tensor): Tensor {
  checkTensor(x, 'kg.flatten', 'x');
  if (x.ndim < 1) throw new RangeError(`kg.flatten: x needs at least one dimension, got shape ${formatShape(x.shape)}`);
  return reshape(x, [x.shape[0], x.ndim === 1 ? 1 : -1]);
}

export interface ReduceOptions {
  keepDims?: boolean;
}

/** Sums over `axes` with scale applied, by contiguous groups of axes, in a fixed order. */
function reduceRaw(x: Tensor, axes: number[], scaleBy: number): Tensor {
  let current = x;
  let shape = [...x.shape];
  // Reduce from the last group to the first so earlier axis indices stay valid.
  const groups: Array<[number, number]> = [];
  for (const a of axes) {
    const last = groups[groups.length - 1];
    if (last && last[1] === a) last[1] = a + 1;
    else groups.push([a, a + 1]);
  }
  if (groups.length === 0) {
    const out = Tensor.empty(shape, x.device);
    native.axpby(scaleBy, x.storage, 0, out.storage);
    return out;
  }
  for (let gi = groups.length - 1; gi >= 0; gi--) {
    const [from, to] = groups[gi];
    const outer = numelOf(shape.slice(0, from));
    const r = numelOf(shape.slice(from, to));
    const inner = numelOf(shape.slice(to));
    const nextShape = [...shape.slice(0, from), ...shape.slice(to)];
    const out = Tensor.empty(nextShape, x.device);
    native.reduceSum(outer, r, inner, gi === 0 ? scaleBy : 1, current.storage, out.storage);
    if (current !== x) current.dispose();
    current = out;
    shape = nextShape;
  }
  return current;
}

function reduction(op: 'sum' | 'mean', x: Tensor, axes: number | readonly number[] | undefined, options: ReduceOptions | undefined): Tensor {
  const fn = `kg.${op}`;
  checkTensor(x, fn, 'x');
  const opts = readOptions(options, fn, ['keepDims']);
  if (opts.keepDims !== undefined && typeof opts.keepDims !== 'boolean') {
    throw new TypeError(`${fn}: keepDims must be true or false, got ${describe(opts.keepDims)}`);
  }
  const list = axes === undefined ? x.shape.map((_, i) => i) : normalizeAxes(axes, x.shape, fn);
  const count = numelOf(list.map((a) => x.shape[a]));
  if (op === 'mean' && count === 0) throw new RangeError(`${fn}: no elements to average in ${formatShape(x.shape)}`);
  const reduced = reduceRaw(x, list, op === 'mean' ? 1 / count : 1);
  const keptShape = x.shape.map((d, i) => (list.includes(i) ? 1 : d));
  const out = opts.keepDims ? reduced.view(keptShape) : reduced;
  const inputShape = x.shape;
  return recordOp(op, out, [x], [], (g) => {
    const spread = broadcastTo(reshape(g, keptShape), inputShape);
    return [op === 'mean' ? scale(spread, 1 / count) : spread];
  });
}

/** Sum over all elements (shape []), or over the given axes. */
export function sum(x: Tensor, axes?: number | readonly number[], options?: ReduceOptions): Tensor {
  return reduction('sum', x, axes, options);
}

/** Mean over all elements (shape []), or over the given axes. */
export function mean(x: Tensor, axes?: number | readonly number[], options?: ReduceOptions): Tensor {
  return reduction('mean', x, axes, options);
}

/** A copy of x expanded to a broadcast-compatible shape. */
export function broadcastTo(x: Tensor, shape: Shape): Tensor {
  const fn = 'kg.broadcastTo';
  checkTensor(x, fn, 'x');
  const want = checkShape(shape, fn);
  const target = broadcastShapes(x.shape, want, fn);
  if (!sameShape(target, want)) {
    throw new RangeError(`${fn}: cannot broadcast ${formatShape(x.shape)} to ${formatShape(want)}`);
  }
  const out = allocate(target, x.device, fn);
  const zero = scalar(0, x.device);
  try {
    broadcastKernel(BinaryOpCode.Add, fn, target, x, zero, broadcastStrides(x.shape, target), target.map(() => 0), out);
  } finally {
    zero.dispose();
  }
  const inputShape = x.shape;
  return recordOp('broadcastTo', out, [x], [], (g) => [sumTo(g, inputShape)]);
}
