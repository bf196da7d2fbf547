// The op behind group norm, layer norm and batch renorm: statistics over a set of axes of x (one
// mean and variance per group, kg/shapes.h NormShape), normalization and a per-parameter affine
// map in one forward kernel, the closed-form gradient in one backward kernel.
import { recordOp } from '../autograd/tape';
import { NormShapeArg, native } from '../native';
import { NonFiniteError } from '../non-finite';
import { formatShape } from '../shape';
import { Tensor } from '../tensor';
import { checkFinite, checkSameDevice, checkTensor } from './check';

/** Batch renorm's running statistics and clipping limits (Ioffe, 2017). */
export interface RenormInputs {
  runningMean: Tensor;
  runningVar: Tensor;
  rMax: number;
  dMax: number;
  /** Called with the batch mean and biased variance once they are known to be finite. */
  update?: (batchMean: Tensor, batchVar: Tensor) => void;
}

export interface NormalizeCall {
  op: string;
  x: Tensor;
  gamma: Tensor;
  beta: Tensor;
  shape: NormShapeArg;
  eps: number;
  /** Names group g in error messages, e.g. "row 3" or "sample 1, group 2". */
  group: (g: number) => string;
  renorm?: RenormInputs;
}

/** The affine parameters' shape, checked; `what` says what they must match, for the message. */
export function checkParameter(t: unknown, shape: readonly number[], x: Tensor, op: string, name: string, what: string): Tensor {
  const v = checkTensor(t, op, name);
  if (v.ndim !== shape.length || v.shape.some((d, i) => d !== shape[i])) {
    throw new RangeError(`${op}: ${name} must have shape ${formatShape(shape)} (${what}) for x ${formatShape(x.shape)}, got ${formatShape(v.shape)}`);
  }
  return v;
}

export function checkEps(eps: unknown, op: string): number {
  const v = checkFinite(eps, op, 'eps');
  if (v < 0) throw new RangeError(`${op}: eps must be >= 0, got ${v}`);
  return v;
}

/** y = ((x - mean) * invstd * r + d) * gamma + beta, recorded for autograd; r = 1, d = 0 without renorm. */
export function normalize(c: NormalizeCall): Tensor {
  const { op, x, gamma, beta, shape, eps, renorm } = c;
  const groups = shape[1];
  checkSameDevice(op, { x, gamma, beta, runningMean: renorm?.runningMean, runningVar: renorm?.runningVar });
  const y = Tensor.empty(x.shape, x.device);
  const saveMean = Tensor.empty([groups], x.device);
  const saveMeanLo = Tensor.empty([groups], x.device);
  const saveInvstd = Tensor.empty([groups], x.device);
  const extra = renorm ? [Tensor.empty([groups], x.device), Tensor.empty([groups], x.device), Tensor.empty([groups], x.device)] : [];
  const [batchVar, r, d] = extra;
  try {
    if (renorm) {
      native.renormForward(shape, x.storage, gamma.storage, beta.storage, eps, renorm.runningMean.storage, renorm.runningVar.storage, renorm.rMax, renorm.dMax,
        y.storage, saveMean.storage, saveMeanLo.storage, saveInvstd.storage, batchVar.storage, r.storage, d.storage);
    } else {
      native.normForward(shape, x.storage, gamma.storage, beta.storage, eps, y.storage, saveMean.storage, saveMeanLo.storage, saveInvstd.storage);
    }
    checkStatistics(c, saveMean, saveInvstd, batchVar);
    renorm?.update?.(saveMean, batchVar);
  } catch (e) {
    for (const t of [y, saveMean, saveMeanLo, saveInvstd, ...extra]) t.dispose();
    throw e;
  }
  batchVar?.dispose();
  return recordOp(op, y, [x, gamma, beta], [x, gamma], (g) => {
    const dx = x.tracksGrad ? Tensor.empty(x.shape, x.device) : null;
    const dgamma = Tensor.empty(gamma.shape, x.device);
    const dbeta = Tensor.empty(beta.shape, x.device);
    native.normBackward(shape, x.storage, g.storage, gamma.storage, saveMean.storage, saveMeanLo.storage, saveInvstd.storage, r?.storage ?? null, d?.storage ?? null,
      dx ? dx.storage : null, dgamma.storage, dbeta.storage);
    return [dx, dgamma, dbeta];
  });
}

/**
 * Throws, naming the group, when a statistic is not finite: a NaN or infinity in x would
 * otherwise turn the group's whole output (and, for batch renorm, the running statistics) into
 * NaN. Reads the per-group values back, which on a GPU waits for the forward kernel.
 */
function checkStatistics(c: NormalizeCall, mean: Tensor, invstd: Tensor, variance: Tensor | undefined): void {
  const m = mean.toArray();
  const s = invstd.toArray();
  const v = variance?.toArray();
  const where = (g: number) => `${c.op}: ${c.group(g)} of x ${formatShape(c.x.shape)}`;
  for (let g = 0; g < m.length; g++) {
    if (!Number.isFinite(m[g])) {
      throw new NonFiniteError(`${where(g)} has a mean of ${m[g]}: x holds NaN or infinite values${c.renorm ? '; the running statistics were left unchanged' : ''}`);
    }
    if (s[g] === Infinity) throw new NonFiniteError(`${where(g)} has zero variance and eps is ${c.eps}, so it cannot be normalized; use eps > 0`);
    if (!(s[g] > 0) || (v && !Number.isFinite(v[g]))) {
      throw new NonFiniteError(`${where(g)} has a variance too large for float32 (values of magnitude near 1e38); scale the input down`);
    }
  }
}
