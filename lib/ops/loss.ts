// Softmax cross-entropy from logits and class indices, and argmax for predictions.
import { isUnitHead } from '../autograd/backward';
import { isRecording, recordOp } from '../autograd/tape';
import { native } from '../native';
import { describe, readOptions } from '../options';
import { formatShape } from '../shape';
import { Tensor } from '../tensor';
import { mean, sum } from './arith';
import { checkNdim, checkSameDevice, checkTensor } from './check';
import { tensor } from './creation';
import { isFloat32Array, isInt32Array } from '../typed-arrays';

export type Labels = Tensor | Int32Array | Float32Array | readonly number[];
export type Reduction = 'none' | 'sum' | 'mean';

/**
 * Label tensors already checked, with the tensor's version at the check and the largest label
 * plus one. Reading labels back for the check synchronizes with the GPU, so each tensor is
 * checked once per version (every in-place write bumps it) rather than at every step.
 */
const checkedLabels = new WeakMap<Tensor, { version: number; bound: number }>();

function checkLabelValues(values: ArrayLike<number>, n: number, k: number, like: Tensor): number {
  const op = 'kg.nn.functional.softmaxCrossEntropy';
  if (values.length !== n) {
    throw new RangeError(`${op}: ${values.length} labels for ${n} rows of logits ${formatShape(like.shape)}`);
  }
  let bound = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isInteger(v) || v < 0 || v >= k) {
      throw new RangeError(`${op}: label ${i} is ${v}, expected an integer class index in [0, ${k})`);
    }
    bound = Math.max(bound, v + 1);
  }
  return bound;
}

/**
 * @internal Records what the caller already knows about a label tensor it just made from these
 * host values (a data loader), so that its first use needs no read back from the GPU. Values that
 * are not class indices are simply not recorded. The trust holds for the tensor's current version
 * only: after an in-place write the labels are read back and checked again.
 */
export function rememberLabels(t: Tensor, values: ArrayLike<number>): void {
  let bound = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isInteger(v) || v < 0) return;
    bound = Math.max(bound, v + 1);
  }
  checkedLabels.set(t, { version: t.version, bound });
}

/**
 * @internal Checks labels for n rows of logits `like` with k classes, as softmaxCrossEntropy does
 * (a label tensor whose values are not known is read back); returns the largest label + 1.
 */
export function labelBound(labels: Labels, n: number, k: number, like: Tensor): number {
  if (labels instanceof Tensor) {
    labelTensor(labels, n, k, like);
    return (checkedLabels.get(labels) as { bound: number }).bound;
  }
  if (isInt32Array(labels) || isFloat32Array(labels) || Array.isArray(labels)) return checkLabelValues(labels, n, k, like);
  return labelTensor(labels, n, k, like).numel; // throws the TypeError for what is not labels
}

/** @internal The largest label + 1 of a label tensor whose current values were checked, else undefined. */
export function knownLabelBound(t: Tensor): number | undefined {
  const known = checkedLabels.get(t);
  return known !== undefined && known.version === t.version ? known.bound : undefined;
}

/** @internal Marks the current values of `t`, copied from labels checked by labelBound, as checked. */
export function trustLabels(t: Tensor, bound: number): void {
  checkedLabels.set(t, { version: t.version, bound });
}

/** Labels as a tensor of class indices on `device`, each checked to be an integer in [0, k). */
function labelTensor(labels: Labels, n: number, k: number, like: Tensor): Tensor {
  const op = 'kg.nn.functional.softmaxCrossEntropy';
  if (labels instanceof Tensor) {
    checkTensor(labels, op, 'labels');
    checkSameDevice(op, { logits: like, labels });
    if (labels.ndim !== 1) throw new RangeError(`${op}: labels must be 1-D class indices, got shape ${formatShape(labels.shape)}`);
    if (labels.shape[0] !== n) {
      throw new RangeError(`${op}: ${labels.shape[0]} labels for ${n} rows of logits ${formatShape(like.shape)}`);
    }
    const known = checkedLabels.get(labels);
    if (known === undefined || known.version !== labels.version || known.bound > k) {
      checkedLabels.set(labels, { version: labels.version, bound: checkLabelValues(labels.toArray(), n, k, like) });
    }
    return labels;
  }
  if (isInt32Array(labels) || isFloat32Array(labels) || Array.isArray(labels)) {
    checkLabelValues(labels, n, k, like);
    return tensor(Float32Array.from(labels), [n], { device: like.device });
  }
  throw new TypeError(`${op}: labels must be a Tensor, Int32Array, Float32Array or array of class indices, got ${describe(labels)}`);
}

/**
 * -log softmax(logits)[label] per row, computed stably (log-sum-exp with the row maximum
 * subtracted). reduction 'none' (default) gives the per-example vector, as in the tutorial, whose
 * backward() sums it; 'sum' and 'mean' give a scalar.
 */
export function softmaxCrossEntropy(logits: Tensor, labels: Labels, options?: { reduction?: Reduction }): Tensor {
  const op = 'kg.nn.functional.softmaxCrossEntropy';
  checkTensor(logits, op, 'logits');
  checkNdim(logits, [2], op, 'logits', '2-D (batch, classes)');
  const reduction = readOptions(options, op, ['reduction']).reduction ?? 'none';
  if (!['none', 'sum', 'mean'].includes(reduction)) {
    throw new TypeError(`${op}: reduction must be 'none', 'sum' or 'mean', got ${describe(reduction)}`);
  }
  const [n, k] = logits.shape;
  if (k < 1) throw new RangeError(`${op}: logits need at least one class, got ${formatShape(logits.shape)}`);
  const y = labelTensor(labels, n, k, logits);
  if (reduction !== 'none' && n > 0) return reducedLoss(logits, y, reduction === 'mean' ? 1 / n : 1);
  const loss = Tensor.empty([n], logits.device);
  native.softmaxXentForward(n, k, logits.storage, y.storage, loss.storage);
  const perExample = recordOp('softmaxCrossEntropy', loss, [logits], [logits, y], (g) => {
    const dlogits = Tensor.empty(logits.shape, logits.device);
    native.softmaxXentBackward(n, k, logits.storage, y.storage, g.storage, 1, dlogits.storage);
    return [dlogits];
  });
  if (reduction === 'none') return perExample;
  return reduction === 'sum' ? sum(perExample) : mean(perExample);
}

/**
 * The summed (scale 1) or averaged (scale 1/n) loss as one op: the per-example losses are never
 * stored, and backward hands its one upstream value to every row inside the gradient kernel.
 * When gradients are recorded, the forward kernel also writes the gradient for the upstream value
 * 1, which is what backward() starts from at a loss: a training step then launches one kernel for
 * its loss, where the unreduced loss and a sum took five.
 */
function reducedLoss(logits: Tensor, y: Tensor, scale: number): Tensor {
  const [n, k] = logits.shape;
  const loss = Tensor.empty([], logits.device);
  const forOne = isRecording() && logits.tracksGrad ? Tensor.empty(logits.shape, logits.device) : null;
  native.softmaxXentForwardSum(n, k, logits.storage, y.storage, scale, loss.storage, forOne ? forOne.storage : null);
  return recordOp('softmaxCrossEntropy', loss, [logits], [logits, y], (g) => {
    if (forOne && isUnitHead(g)) return [forOne];
    const dlogits = Tensor.empty(logits.shape, logits.device);
    native.softmaxXentBackward(n, k, logits.storage, y.storage, g.storage, scale, dlogits.storage);
    return [dlogits];
  });
}

/** Index of the largest value in each row of a 2-D tensor (the first one on ties), as floats. */
export function argmax(x: Tensor): Tensor {
  checkTensor(x, 'kg.argmax', 'x');
  checkNdim(x, [2], 'kg.argmax', 'x', '2-D (rows, columns)');
  const [n, k] = x.shape;
  if (k < 1) throw new RangeError(`kg.argmax: rows are empty in ${formatShape(x.shape)}`);
  const out = Tensor.empty([n], x.device);
  native.argmaxRows(n, k, x.storage, out.storage);
  return out;
}
