// Gradient-norm clipping (as PyTorch's clip_grad_norm_): the gradients of all parameters, seen as
// one vector, are scaled down in place so that their Euclidean norm is at most maxNorm.
import { native } from '../native';
import { NonFiniteError } from '../non-finite';
import { zeros } from '../ops/creation';
import { describe } from '../options';
import { formatShape } from '../shape';
import { Tensor } from '../tensor';
import type { Device } from '../device';
import { checkNumber } from './optimizer';

/**
 * Scales every gradient by maxNorm / (norm + 1e-6) when the total norm exceeds maxNorm, and
 * returns the total norm from before the scaling. Parameters without a gradient are skipped; with
 * no gradients at all the norm is 0 and nothing changes. A non-finite norm (an infinity or NaN in
 * a gradient) is a NonFiniteError naming the parameter, and no gradient is changed.
 */
export function clipGradNorm(params: Iterable<Tensor>, maxNorm: number): number {
  const fn = 'kg.optim.clipGradNorm';
  if (params === null || typeof params !== 'object' || typeof (params as Iterable<Tensor>)[Symbol.iterator] !== 'function') {
    throw new TypeError(`${fn}: params must be an array (or iterable) of tensors, got ${describe(params)}`);
  }
  checkNumber(maxNorm, fn, 'maxNorm', (x) => x > 0, 'a positive number');
  const withGrad: Array<{ index: number; param: Tensor; grad: Tensor }> = [];
  const seen = new Set<Tensor>();
  let index = 0;
  for (const p of params) {
    if (!(p instanceof Tensor)) throw new TypeError(`${fn}: parameter ${index} is not a Tensor, got ${describe(p)}`);
    if (seen.has(p)) throw new RangeError(`${fn}: parameter ${index} ${formatShape(p.shape)} appears more than once (its gradient would be scaled twice)`);
    seen.add(p);
    if (p.grad !== null) withGrad.push({ index, param: p, grad: p.grad });
    index++;
  }

  // The norm of each gradient, written on its device into one buffer per device, read back once.
  const norms = new Map<Tensor, number>();
  const devices = new Set<Device>(withGrad.map((e) => e.grad.device));
  for (const device of devices) {
    const onDevice = withGrad.filter((e) => e.grad.device === device);
    const out = zeros([onDevice.length], { device });
    try {
      onDevice.forEach((e, i) => native.l2Norm(e.grad.storage, out.storageForWrite(), i));
      const values = out.toArray();
      onDevice.forEach((e, i) => norms.set(e.grad, values[i]));
    } finally {
      out.dispose();
    }
  }
  let sumOfSquares = 0;
  for (const e of withGrad) {
    const norm = norms.get(e.grad) as number;
    if (!Number.isFinite(norm)) {
      throw new NonFiniteError(
        `${fn}: the gradient of parameter ${e.index} ${formatShape(e.param.shape)} has norm ${norm} ` +
          '(it holds a NaN or an infinity, or is too large for float32); no gradient was changed',
      );
    }
    sumOfSquares += norm * norm;
  }
  const total = Math.sqrt(sumOfSquares);
  const coef = maxNorm / (total + 1e-6);
  if (coef < 1) {
    for (const e of withGrad) native.axpby(coef, e.grad.storage, 0, e.grad.storageForWrite());
  }
  return total;
}
