// Inverted dropout: in training, each element is zeroed with probability p and the rest scaled by
// 1 / (1 - p), so the expected value is unchanged and inference needs no rescaling.
import { recordOp } from '../autograd/tape';
import { native } from '../native';
import { describe, readOptions } from '../options';
import { Tensor } from '../tensor';
import { checkTensor } from './check';

export interface DropoutOptions {
  /** Probability of zeroing an element, in [0, 1) (default 0.5). */
  p?: number;
  /**
   * Picks the mask: element i is kept when a hash of (seed, i) is >= p, the same on CPU and CUDA.
   * An integer in [0, 2^53]; required, so that every mask is reproducible.
   */
  seed: number;
  /** false gives x itself (inference); default true. */
  training?: boolean;
}

export function checkDropoutP(p: unknown, fn: string): number {
  if (typeof p !== 'number' || !(p >= 0 && p < 1)) throw new RangeError(`${fn}: p must be a number in [0, 1), got ${describe(p)}`);
  return p;
}

export function dropout(x: Tensor, options: DropoutOptions): Tensor {
  const op = 'kg.nn.functional.dropout';
  checkTensor(x, op, 'x');
  const opts = readOptions(options, op, ['p', 'seed', 'training']);
  const p = checkDropoutP(opts.p ?? 0.5, op);
  const seed = opts.seed;
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed) || seed < 0) {
    throw new TypeError(`${op}: seed must be a non-negative integer, got ${describe(seed)}`);
  }
  if (opts.training !== undefined && typeof opts.training !== 'boolean') {
    throw new TypeError(`${op}: training must be true or false, got ${describe(opts.training)}`);
  }
  if (opts.training === false || p === 0) return x;
  const y = Tensor.empty(x.shape, x.device);
  native.dropout(p, seed, x.storage, y.storage);
  return recordOp('dropout', y, [x], [], (g) => {
    const dx = Tensor.empty(g.shape, g.device);
    native.dropout(p, seed, g.storage, dx.storage);
    return [dx];
  });
}
