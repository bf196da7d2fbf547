// 2-D convolution and average pooling, NCHW, with their gradients.
import { recordOp } from '../autograd/tape';
import { ConvShapeArg, native, PoolShapeArg } from '../native';
import { describe, readOptions } from '../options';
import { formatShape } from '../shape';
import { Tensor } from '../tensor';
import { checkNdim, checkPositiveInt, checkSameDevice, checkTensor } from './check';

export type Pair = number | readonly [number, number];

export function pair(v: Pair | undefined, fallback: number, op: string, name: string, min: number): [number, number] {
  const p = v === undefined ? [fallback, fallback] : typeof v === 'number' ? [v, v] : v;
  if (!Array.isArray(p) || p.length !== 2) throw new TypeError(`${op}: ${name} must be a number or [h, w], got ${describe(v)}`);
  return [checkPositiveInt(p[0], op, name, min), checkPositiveInt(p[1], op, name, min)];
}

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Pair;
  /**
   * Split the channels into this many groups (default 1), each convolved with its own k / groups
   * filters, which see only the c / groups input channels of their group; groups = c is depthwise.
   */
  groups?: number;
}

/**
 * Cross-correlation of x (n, c, h, w) with w (k, c / groups, kh, kw), plus bias (k). Output channel
 * o reads the input channels of its group g = floor(o / (k / groups)) only.
 */
export function conv2d(x: Tensor, w: Tensor, bias?: Tensor | null, options?: Conv2dOptions): Tensor {
  const op = 'kg.nn.functional.conv2d';
  const opts = readOptions(options, op, ['stride', 'padding', 'groups']);
  checkTensor(x, op, 'x');
  checkTensor(w, op, 'weight');
  if (bias !== undefined && bias !== null) checkTensor(bias, op, 'bias');
  checkNdim(x, [4], op, 'x', '4-D (n, c, h, w)');
  checkNdim(w, [4], op, 'weight', '4-D (out, in, kh, kw)');
  checkSameDevice(op, { x, weight: w, bias });
  const [sh, sw] = pair(opts.stride, 1, op, 'stride', 1);
  const [ph, pw] = pair(opts.padding, 0, op, 'padding', 0);
  const groups = opts.groups === undefined ? 1 : checkPositiveInt(opts.groups, op, 'groups', 1);
  const [n, c, h, wd] = x.shape;
  const [k, wc, kh, kw] = w.shape;
  if (c % groups !== 0) {
    throw new RangeError(`${op}: groups (${groups}) must divide the ${c} channels of x ${formatShape(x.shape)}`);
  }
  if (k % groups !== 0) {
    throw new RangeError(`${op}: groups (${groups}) must divide the ${k} output channels of weight ${formatShape(w.shape)}`);
  }
  if (groups === 1 && wc !== c) {
    throw new RangeError(`${op}: x ${formatShape(x.shape)} has ${c} channels, weight ${formatShape(w.shape)} expects ${wc}`);
  }
  if (wc !== c / groups) {
    throw new RangeError(
      `${op}: weight's second dimension must be c / groups = ${c} / ${groups} = ${c / groups} for x ${formatShape(x.shape)}, but weight is ${formatShape(w.shape)}`,
    );
  }
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== k)) {
    throw new RangeError(`${op}: bias must have shape [${k}], got ${formatShape(bias.shape)}`);
  }
  if (h + 2 * ph < kh || wd + 2 * pw < kw) {
    throw new RangeError(`${op}: kernel ${kh}x${kw} is larger than the padded input ${h + 2 * ph}x${wd + 2 * pw} (x ${formatShape(x.shape)})`);
  }
  const oh = Math.floor((h + 2 * ph - kh) / sh) + 1;
  const ow = Math.floor((wd + 2 * pw - kw) / sw) + 1;
  const shape: ConvShapeArg = [n, c, h, wd, k, kh, kw, sh, sw, ph, pw, groups];
  const y = Tensor.empty([n, k, oh, ow], x.device);
  native.conv2dForward(shape, x.storage, w.storage, bias ? bias.storage : null, y.storage);
  const inputs = bias ? [x, w, bias] : [x, w];
  return recordOp('conv2d', y, inputs, [x.tracksGrad && w, w.tracksGrad && x], (g) => {
    let dx: Tensor | null = null;
    let dw: Tensor | null = null;
    if (x.tracksGrad) {
      dx = Tensor.empty(x.shape, x.device);
      native.conv2dBackwardData(shape, g.storage, w.storage, dx.storage);
    }
    const db = bias ? Tensor.empty([k], g.device) : null;
    if (w.tracksGrad) {
      // The bias gradient comes with the weight's (on CUDA, inside the same GEMM).
      dw = Tensor.empty(w.shape, w.device);
      native.conv2dBackwardWeight(shape, x.storage, g.storage, dw.storage, db ? db.storage : null);
    } else if (db) {
      native.conv2dBackwardBias(shape, g.storage, db.storage);
    }
    return db ? [dx, dw, db] : [dx, dw];
  });
}

export interface AvgPool2dOptions {
  kernelSize: Pair;
  /** Defaults to kernelSize (non-overlapping windows). */
  stride?: Pair;
}

/** Average over kernelSize windows of x (n, c, h, w), no padding; the output size rounds down. */
export function avgPool2d(x: Tensor, options: AvgPool2dOptions): Tensor {
  const op = 'kg.nn.functional.avgPool2d';
  checkTensor(x, op, 'x');
  checkNdim(x, [4], op, 'x', '4-D (n, c, h, w)');
  const opts = readOptions(options, op, ['kernelSize', 'stride']);
  if (opts.kernelSize === undefined) throw new TypeError(`${op}: options.kernelSize is required`);
  const [kh, kw] = pair(opts.kernelSize, 1, op, 'kernelSize', 1);
  const [sh, sw] = opts.stride === undefined ? [kh, kw] : pair(opts.stride, 1, op, 'stride', 1);
  const [n, c, h, w] = x.shape;
  if (h < kh || w < kw) {
    throw new RangeError(`${op}: window ${kh}x${kw} is larger than the input ${formatShape(x.shape)}`);
  }
  const oh = Math.floor((h - kh) / sh) + 1;
  const ow = Math.floor((w - kw) / sw) + 1;
  const shape: PoolShapeArg = [n, c, h, w, kh, kw, sh, sw];
  const y = Tensor.empty([n, c, oh, ow], x.device);
  native.avgPool2dForward(shape, x.storage, y.storage);
  return recordOp('avgPool2d', y, [x], [], (g) => {
    const dx = Tensor.empty(x.shape, x.device);
    native.avgPool2dBackward(shape, g.storage, dx.storage);
    return [dx];
  });
}
