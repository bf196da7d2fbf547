// Layer normalization (Ba, Kiros & Hinton, 2016): statistics over the trailing dimensions of each
// sample, with one gamma and beta per element of those dimensions.
import { describeItems, readOptions } from '../options';
import { formatShape } from '../shape';
import { Tensor } from '../tensor';
import { checkPositiveInt, checkTensor } from './check';
import { checkEps, checkParameter, normalize } from './normalize';

export interface LayerNormOptions {
  /** Added to the variance before the square root. Default 1e-5. */
  eps?: number;
}

/** The normalized shape as an array of positive integers. */
export function readNormalizedShape(shape: unknown, op: string): number[] {
  const dims = typeof shape === 'number' ? [shape] : shape;
  if (!Array.isArray(dims) || dims.length === 0) {
    throw new TypeError(`${op}: normalizedShape must be a positive integer or a non-empty array of them, got ${describeItems(shape)}`);
  }
  return dims.map((d, i) => checkPositiveInt(d, op, `normalizedShape[${i}]`));
}

/**
 * y = gamma * (x - mean) / sqrt(var + eps) + beta, the mean and biased variance taken over the
 * last normalizedShape.length dimensions of x, which must equal normalizedShape; gamma and beta
 * have shape normalizedShape.
 */
export function layerNorm(x: Tensor, normalizedShape: number | readonly number[], gamma: Tensor, beta: Tensor, options?: LayerNormOptions): Tensor {
  const op = 'layerNorm';
  checkTensor(x, op, 'x');
  const opts = readOptions(options, op, ['eps']);
  const dims = readNormalizedShape(normalizedShape, op);
  const tail = x.shape.slice(x.ndim - dims.length);
  if (x.ndim < dims.length || tail.some((d, i) => d !== dims[i])) {
    throw new RangeError(`${op}: the last dimensions of x ${formatShape(x.shape)} must be normalizedShape ${formatShape(dims)}`);
  }
  checkParameter(gamma, dims, x, op, 'gamma', 'normalizedShape');
  checkParameter(beta, dims, x, op, 'beta', 'normalizedShape');
  const eps = checkEps(opts.eps ?? 1e-5, op);
  const d = dims.reduce((a, b) => a * b, 1);
  const rows = x.numel / d;
  return normalize({ op, x, gamma, beta, eps, shape: [1, rows, d, d, 1], group: (g) => `row ${g}` });
}
