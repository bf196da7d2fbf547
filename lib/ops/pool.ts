// Max pooling and global average pooling, NCHW, with their gradients.
import { recordOp } from '../autograd/tape';
import { MaxPoolShapeArg, native } from '../native';
import { readOptions } from '../options';
import { formatShape } from '../shape';
import { Tensor } from '../tensor';
import { mean } from './arith';
import { checkNdim, checkTensor } from './check';
import { Pair, pair } from './conv';

export interface MaxPool2dOptions {
  kernelSize: Pair;
  /** Defaults to kernelSize (non-overlapping windows). */
  stride?: Pair;
  /** Implicit -Infinity on each side, at most half the kernel size (default 0). */
  padding?: Pair;
}

/**
 * Maximum over kernelSize windows of x (n, c, h, w); the output size rounds down, as in PyTorch.
 * The gradient goes to the first maximum of each window (row-major), and a NaN in a window is its
 * maximum, so NaN propagates instead of being skipped.
 */
export function maxPool2d(x: Tensor, options: MaxPool2dOptions): Tensor {
  const op = 'kg.nn.functional.maxPool2d';
  checkTensor(x, op, 'x');
  checkNdim(x, [4], op, 'x', '4-D (n, c, h, w)');
  const opts = readOptions(options, op, ['kernelSize', 'stride', 'padding']);
  if (opts.kernelSize === undefined) throw new TypeError(`${op}: options.kernelSize is required`);
  const [kh, kw] = pair(opts.kernelSize, 1, op, 'kernelSize', 1);
  const [sh, sw] = opts.stride === undefined ? [kh, kw] : pair(opts.stride, 1, op, 'stride', 1);
  const [ph, pw] = pair(opts.padding, 0, op, 'padding', 0);
  if (2 * ph > kh || 2 * pw > kw) {
    throw new RangeError(`${op}: padding ${ph}x${pw} must be at most half the kernel size ${kh}x${kw}`);
  }
  const [n, c, h, w] = x.shape;
  if (h + 2 * ph < kh || w + 2 * pw < kw) {
    throw new RangeError(`${op}: window ${kh}x${kw} is larger than the padded input ${h + 2 * ph}x${w + 2 * pw} (x ${formatShape(x.shape)})`);
  }
  if (h === 0 || w === 0) throw new RangeError(`${op}: x ${formatShape(x.shape)} has empty planes, which have no maximum`);
  if (h * w > 2 ** 24) throw new RangeError(`${op}: planes of ${h}x${w} have more than 2^24 pixels (x ${formatShape(x.shape)})`);
  const oh = Math.floor((h + 2 * ph - kh) / sh) + 1;
  const ow = Math.floor((w + 2 * pw - kw) / sw) + 1;
  const shape: MaxPoolShapeArg = [n, c, h, w, kh, kw, sh, sw, ph, pw];
  const y = Tensor.empty([n, c, oh, ow], x.device);
  const argmax = Tensor.empty([n, c, oh, ow], x.device);
  native.maxPool2dForward(shape, x.storage, y.storage, argmax.storage);
  return recordOp('maxPool2d', y, [x], [], (g) => {
    const dx = Tensor.empty(x.shape, x.device);
    native.maxPool2dBackward(shape, g.storage, argmax.storage, dx.storage);
    return [dx];
  });
}

/**
 * Average pooling to a fixed output size. Only outputSize 1 (global average pooling, the
 * ResNet head) is supported: (n, c, h, w) -> (n, c, 1, 1).
 */
export function adaptiveAvgPool2d(x: Tensor, outputSize: Pair = 1): Tensor {
  const op = 'kg.nn.functional.adaptiveAvgPool2d';
  checkTensor(x, op, 'x');
  checkNdim(x, [4], op, 'x', '4-D (n, c, h, w)');
  const [oh, ow] = pair(outputSize, 1, op, 'outputSize', 1);
  if (oh !== 1 || ow !== 1) throw new RangeError(`${op}: only outputSize 1 (global average pooling) is supported, got ${oh}x${ow}`);
  if (x.shape[2] * x.shape[3] === 0) throw new RangeError(`${op}: x ${formatShape(x.shape)} has no pixels to average`);
  return mean(x, [2, 3], { keepDims: true });
}
