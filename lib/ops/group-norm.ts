// Group normalization (Wu & He, 2018): statistics per sample over groups of channels, so the
// result does not depend on the batch (any batch size, including 1, trains the same way).
import { readOptions } from '../options';
import { formatShape } from '../shape';
import { Tensor } from '../tensor';
import { checkNdim, checkPositiveInt, checkTensor } from './check';
import { checkEps, checkParameter, normalize } from './normalize';

export interface GroupNormOptions {
  /** Added to the variance before the square root. Default 1e-5. */
  eps?: number;
}

/**
 * y = gamma[c] * (x - mean) / sqrt(var + eps) + beta[c], the mean and biased variance taken per
 * sample over each group of channels / groups consecutive channels (and all their positions).
 * x is (batch, channels, ...) with any number of trailing dimensions; gamma and beta are [channels].
 */
export function groupNorm(x: Tensor, groups: number, gamma: Tensor, beta: Tensor, options?: GroupNormOptions): Tensor {
  const op = 'groupNorm';
  checkTensor(x, op, 'x');
  const opts = readOptions(options, op, ['eps']);
  checkNdim(x, [2, 3, 4, 5, 6], op, 'x', '(batch, channels, ...) with at least 2 dimensions');
  checkPositiveInt(groups, op, 'groups');
  const [n, c] = x.shape;
  if (c % groups !== 0) throw new RangeError(`${op}: channels (${c}) of x ${formatShape(x.shape)} must be divisible by groups (${groups})`);
  checkParameter(gamma, [c], x, op, 'gamma', 'one per channel');
  checkParameter(beta, [c], x, op, 'beta', 'one per channel');
  const eps = checkEps(opts.eps ?? 1e-5, op);
  const l = x.shape.slice(2).reduce((a, b) => a * b, 1);
  return normalize({
    op, x, gamma, beta, eps,
    shape: [1, n * groups, (c / groups) * l, c, l],
    group: (g) => `sample ${Math.floor(g / groups)}, group ${g % groups}`,
  });
}
