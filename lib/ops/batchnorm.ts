// Batch normalization (Ioffe & Szegedy, 2015) as an op with its own fused kernels: per-channel
// statistics over the batch (and the spatial positions of 4-D input), normalization, scale and
// shift in one forward pass, and the closed-form gradient in one backward pass.
import { checkOutput, isRecording, recordOp } from '../autograd/tape';
import { BnShapeArg, native, PoolShapeArg } from '../native';
import { NonFiniteError } from '../non-finite';
import { readChoice, readOptions } from '../options';
import { formatShape } from '../shape';
import { Tensor } from '../tensor';
import { checkFinite, checkSameDevice, checkTensor } from './check';
import { ones, zeros } from './creation';
import { avgPool2d } from './conv';
import { deferredChecks, statusProblem } from './deferred-checks';

const ACCEPTED = 'dense (batch, features) or 2-D convolution (batch, channels, height, width) input';

/** Every input seen as (n, c, l): l = h*w for 4-D input and 1 for 2-D input. */
function bnShape(x: Tensor, op: string): BnShapeArg {
  if (x.ndim === 2) return [x.shape[0], x.shape[1], 1];
  if (x.ndim === 4) return [x.shape[0], x.shape[1], x.shape[2] * x.shape[3]];
  throw new RangeError(`${op}: expected ${ACCEPTED}, got ${x.ndim}-D shape ${formatShape(x.shape)}`);
}

function checkPerChannel(t: Tensor | undefined | null, c: number, x: Tensor, op: string, name: string): Tensor {
  checkTensor(t, op, name);
  const v = t as Tensor;
  if (v.ndim !== 1 || v.shape[0] !== c) {
    throw new RangeError(`${op}: ${name} must have shape [${c}] for x ${formatShape(x.shape)} (${c} channels), got ${formatShape(v.shape)}`);
  }
  return v;
}

export interface BatchNormOptions {
  /** Normalize with the batch's statistics (true) or with runningMean/runningVar (false). */
  training: boolean;
  /** Per-channel moving statistics; updated in place in training, read in inference. */
  runningMean?: Tensor | null;
  runningVar?: Tensor | null;
  /**
   * running = momentum * running + (1 - momentum) * batch. Default 0.9, the tutorial's; PyTorch's
   * momentum is the other weight (its 0.1 is 0.9 here).
   */
  momentum?: number;
  /**
   * Which batch variance the running variance tracks: 'biased' (default, the tutorial's: divided by
   * the m values per channel, the variance training normalizes with) or 'unbiased' (divided by
   * m - 1, PyTorch's and Keras's). Normalization always uses the biased one.
   */
  runningVariance?: 'biased' | 'unbiased';
  /**
   * 'exponential' (default): the momentum rule above. 'cumulative': running statistics are the
   * plain average over all batches so far (PyTorch's momentum=None): batch t (counted from 1)
   * enters with weight 1/t. Needs numBatchesTracked.
   */
  averaging?: 'exponential' | 'cumulative';
  /**
   * Scalar count of the batches that updated the running statistics; incremented in place with
   * them, and read by 'cumulative' averaging. Float32, so exact up to 2^24 batches.
   */
  numBatchesTracked?: Tensor | null;
  /** Added to the variance before the square root. Default 1e-5. */
  eps?: number;
}

/**
 * y = gamma * (x - mean) / sqrt(var + eps) + beta, per channel. gamma and beta may be null (no
 * affine map: gamma = 1, beta = 0).
 *
 * Training normalizes with the batch's mean and biased variance and, when running statistics are
 * given, updates them in place (by default the tutorial's convention: biased variance, momentum
 * 0.9). Inference normalizes with the running statistics and changes nothing.
 */
export function batchNorm(x: Tensor, gamma: Tensor | null, beta: Tensor | null, options: BatchNormOptions): Tensor {
  return normalize('batchNorm', false, x, gamma, beta, options);
}

/**
 * relu(batchNorm(x, gamma, beta, options)) as one op: one kernel forward, one backward (the ReLU's
 * mask is read from the output inside batch norm's passes), with the same results as the pair.
 */
export function batchNormRelu(x: Tensor, gamma: Tensor | null, beta: Tensor | null, options: BatchNormOptions): Tensor {
  return normalize('batchNormRelu', true, x, gamma, beta, options);
}

/**
 * avgPool2d(relu(batchNorm(x, gamma, beta, options)), { kernelSize }) with non-overlapping windows
 * (stride = kernelSize) as one op. In training, the forward pass writes only the pooled output and
 * backward forms the pooling's and the ReLU's gradients inside batch norm's passes, so the
 * full-size activation is never stored; the results are the three ops', bit for bit. Inference, and
 * shapes the fused kernels do not take, run the three ops.
 */
export function batchNormReluPool(
  x: Tensor, gamma: Tensor | null, beta: Tensor | null, options: BatchNormOptions, kernelSize: readonly [number, number],
): Tensor {
  const pool = options?.training ? fusedPoolShape(x, kernelSize) : null;
  if (pool === null) return avgPool2d(batchNormRelu(x, gamma, beta, options), { kernelSize: [kernelSize[0], kernelSize[1]] });
  return normalize('batchNormReluPool', true, x, gamma, beta, options, pool);
}

/** The pooling shape the fused kernels take for x, or null (then the ops run one by one). */
function fusedPoolShape(x: Tensor, [kh, kw]: readonly [number, number]): PoolShapeArg | null {
  if (!(x instanceof Tensor) || x.ndim !== 4) return null;
  const [n, c, h, w] = x.shape;
  const planeLimit = 2 ** 31;
  if (h < kh || w < kw || h * w < 2 || h * w >= planeLimit || n * Math.floor(h / kh) * Math.floor(w / kw) >= planeLimit) return null;
  return [n, c, h, w, kh, kw, kh, kw];
}

function normalize(
  op: string, relu: boolean, x: Tensor, gamma: Tensor | null, beta: Tensor | null, options: BatchNormOptions, pool: PoolShapeArg | null = null,
): Tensor {
  checkTensor(x, op, 'x');
  readOptions(options, op, ['training', 'runningMean', 'runningVar', 'momentum', 'runningVariance', 'averaging', 'numBatchesTracked', 'eps']);
  if (options === undefined || typeof options.training !== 'boolean') {
    throw new TypeError(`${op}: options.training must be true or false`);
  }
  const shape = bnShape(x, op);
  const [n, c, l] = shape;
  if (gamma !== null) checkPerChannel(gamma, c, x, op, 'gamma');
  if (beta !== null) checkPerChannel(beta, c, x, op, 'beta');
  const runningVariance = readChoice(options.runningVariance, op, 'runningVariance', ['biased', 'unbiased'], 'biased');
  const averaging = readChoice(options.averaging, op, 'averaging', ['exponential', 'cumulative'], 'exponential');
  if (averaging === 'cumulative' && options.momentum !== undefined) {
    throw new TypeError(`${op}: momentum has no meaning with averaging 'cumulative' (batch t enters with weight 1/t); leave it out`);
  }
  const momentum = checkFinite(options.momentum ?? 0.9, op, 'momentum');
  if (momentum < 0 || momentum > 1) throw new RangeError(`${op}: momentum must be in [0, 1], got ${momentum}`);
  const eps = checkFinite(options.eps ?? 1e-5, op, 'eps');
  if (eps < 0) throw new RangeError(`${op}: eps must be >= 0, got ${eps}`);
  const runningMean = options.runningMean ?? null;
  const runningVar = options.runningVar ?? null;
  if ((runningMean === null) !== (runningVar === null)) {
    throw new TypeError(`${op}: give both runningMean and runningVar, or neither`);
  }
  if (runningMean) checkPerChannel(runningMean, c, x, op, 'runningMean');
  if (runningVar) checkPerChannel(runningVar, c, x, op, 'runningVar');
  const numBatchesTracked = options.numBatchesTracked ?? null;
  if (numBatchesTracked !== null) {
    checkTensor(numBatchesTracked, op, 'numBatchesTracked');
    if (numBatchesTracked.numel !== 1) {
      throw new RangeError(`${op}: numBatchesTracked must hold one value (shape []), got ${formatShape(numBatchesTracked.shape)}`);
    }
  }
  if (averaging === 'cumulative' && runningMean && !numBatchesTracked) {
    throw new TypeError(`${op}: averaging 'cumulative' needs numBatchesTracked, the count of batches averaged so far`);
  }
  checkSameDevice(op, { x, gamma, beta, runningMean, runningVar, numBatchesTracked });

  if (!options.training) {
    if (!runningMean || !runningVar) {
      throw new TypeError(`${op}: inference (training: false) needs runningMean and runningVar`);
    }
    const g = gamma ?? ones([c], { device: x.device });
    const b = beta ?? zeros([c], { device: x.device });
    return batchNormInference(op, relu, x, g, b, runningMean, runningVar, eps, shape);
  }
  if (n * l < 2) {
    throw new RangeError(
      `${op}: training needs more than one value per channel to compute a variance, got x ${formatShape(x.shape)}; ` +
        'use a larger batch, or inference mode',
    );
  }
  const g = gamma ?? ones([c], { device: x.device });
  const b = beta ?? zeros([c], { device: x.device });
  const y = Tensor.empty(pool ? pooledShape(pool) : x.shape, x.device);
  // The mean as a float pair, mean = saveMean + saveMeanLo, so that x - mean keeps every digit.
  const saveMean = Tensor.empty([c], x.device);
  const saveMeanLo = Tensor.empty([c], x.device);
  const saveInvstd = Tensor.empty([c], x.device);
  // The kernel checks each channel's statistics into status words and updates the running
  // statistics of the channels that pass (counting the batch): inside a training loop that defers
  // the checks, into the step's status buffer, read with the loss; else into words read here.
  const deferred = deferredChecks(x.device);
  const own = deferred ? null : Tensor.empty([c], x.device);
  const { status, offset } = deferred ? deferred.reserve(x, eps) : { status: (own as Tensor).storage, offset: 0 };
  const tracked = runningMean !== null && runningVar !== null;
  const saved = [saveMean.storage, saveMeanLo.storage, saveInvstd.storage, null] as const;
  const update = [
    tracked ? runningMean.storageForWrite() : null, tracked ? runningVar.storageForWrite() : null,
    averaging === 'cumulative' ? 0 : momentum, runningVariance === 'unbiased',
    tracked && numBatchesTracked ? numBatchesTracked.storageForWrite() : null, averaging === 'cumulative' && tracked,
    status, offset,
  ] as const;
  if (pool) native.batchNormReluPoolForwardTrain(pool, x.storage, g.storage, b.storage, eps, y.storage, ...saved, ...update);
  else (relu ? native.batchNormReluForwardTrain : native.batchNormForwardTrain)(shape, x.storage, g.storage, b.storage, eps, y.storage, ...saved, ...update);
  if (own) {
    try {
      checkBatchStatistics(op, x, eps, own, saveMean, tracked);
    } catch (e) {
      for (const t of [y, saveMean, saveMeanLo, saveInvstd]) t.dispose();
      throw e;
    } finally {
      own.dispose();
    }
  }
  // The pooled form recomputes the ReLU's output from x, gamma and beta: it keeps beta, not y.
  return recordOp(op, y, [x, g, b], pool ? [x, g, b] : relu ? [x, g, y] : [x, g], (dy) => {
    const dx = x.tracksGrad ? Tensor.empty(x.shape, x.device) : null;
    const dgamma = Tensor.empty([c], x.device);
    const dbeta = Tensor.empty([c], x.device);
    const stats = [saveMean.storage, saveMeanLo.storage, saveInvstd.storage, dx ? dx.storage : null, dgamma.storage, dbeta.storage] as const;
    if (pool) native.batchNormReluPoolBackwardTrain(pool, x.storage, dy.storage, g.storage, b.storage, ...stats);
    else if (relu) native.batchNormReluBackwardTrain(shape, x.storage, y.storage, dy.storage, g.storage, ...stats);
    else native.batchNormBackwardTrain(shape, x.storage, dy.storage, g.storage, ...stats);
    return [dx, dgamma, dbeta];
  });
}

/**
 * Throws, naming the channel, when the forward kernel found a channel's statistics unusable (its
 * status word, kg/batchnorm_update.h): one NaN or infinity in the batch would otherwise make that
 * channel's running mean NaN for good, and its output NaN. The kernel has already left that
 * channel's running statistics alone and updated the others'. Reads C values back, which on a GPU
 * waits for the forward kernel.
 */
function checkBatchStatistics(op: string, x: Tensor, eps: number, status: Tensor, saveMean: Tensor, tracked: boolean): void {
  const kinds = status.toArray();
  const ch = kinds.findIndex((kind) => kind !== 0);
  if (ch < 0) return;
  const kept = tracked ? `; channel ${ch}'s running statistics were left unchanged (the other channels' were updated)` : '';
  const mean = kinds[ch] === 1 ? saveMean.toArray()[ch] : undefined;
  throw new NonFiniteError(`${op}: channel ${ch} of x ${formatShape(x.shape)} ${statusProblem(kinds[ch], eps, mean)}${kept}`);
}

function batchNormInference(
  op: string, relu: boolean, x: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor, variance: Tensor, eps: number, shape: BnShapeArg,
): Tensor {
  const y = Tensor.empty(x.shape, x.device);
  const forward = relu ? native.batchNormReluForwardInfer : native.batchNormForwardInfer;
  forward(shape, x.storage, gamma.storage, beta.storage, mean.storage, variance.storage, eps, y.storage);
  checkOutput(op, y, [x, gamma, beta, mean, variance]); // anomaly mode: the statistics are inputs too
  // The statistics are constants here, so the gradient is the affine map's. Snapshot them: the
  // running tensors may be updated in place before backward runs.
  if (!isRecording() || !(x.tracksGrad || gamma.tracksGrad || beta.tracksGrad)) return y;
  const c = shape[1];
  const savedMean = Tensor.empty([c], x.device);
  const savedVar = Tensor.empty([c], x.device);
  savedMean.storage.copyFrom(mean.storage);
  savedVar.storage.copyFrom(variance.storage);
  return recordOp(op, y, [x, gamma, beta], relu ? [x, gamma, y] : [x, gamma], (g) => {
    const dx = x.tracksGrad ? Tensor.empty(x.shape, x.device) : null;
    const dgamma = Tensor.empty([c], x.device);
    const dbeta = Tensor.empty([c], x.device);
    const rest = [savedMean.storage, savedVar.storage, eps, dx ? dx.storage : null, dgamma.storage, dbeta.storage] as const;
    if (relu) native.batchNormReluBackwardInfer(shape, x.storage, y.storage, g.storage, gamma.storage, ...rest);
    else native.batchNormBackwardInfer(shape, x.storage, g.storage, gamma.storage, ...rest);
    return [dx, dgamma, dbeta];
  });
}

/**
 * The tutorial's pure_batch_norm: normalize with the batch's own statistics, no moving averages.
 * Accepts 2-D (batch, features) and 4-D (batch, channels, h, w) input.
 */
export function pureBatchNorm(x: Tensor, gamma: Tensor, beta: Tensor, eps = 1e-5): Tensor {
  return batchNorm(x, gamma, beta, { training: true, eps });
}

/** (n, c, oh, ow) of a pooling shape argument [n, c, h, w, kh, kw, sh, sw] without overlap. */
function pooledShape([n, c, h, w, kh, kw]: PoolShapeArg): number[] {
  return [n, c, Math.floor(h / kh), Math.floor(w / kw)];
}
