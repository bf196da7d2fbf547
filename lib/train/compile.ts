// kg.train.compileStep: one training step (forward, loss, backward, optimizer update, running
// statistics) that on CUDA is captured once as a CUDA graph and then replayed, so that a step
// costs one graph launch instead of dozens of kernel launches issued from JS, and never waits for
// the GPU: its loss, and the batch-norm checks, come back through page-locked memory a step late.
//
// How a CUDA step runs:
//  1. the first call runs eagerly, so that everything a step creates once (momentum buffers, the
//     running statistics' first-batch start, the learning rate's device copy) exists before the
//     capture: a capture records kernels without running them;
//  2. the next call with a batch of that shape copies the batch into static input tensors and
//     captures the step on them, then replays the graph; later calls copy and replay. A batch of
//     another shape (an epoch's last, smaller batch) gets its own capture, once;
//  3. after each launch the loss and the batch-norm status words (lib/ops/deferred-checks.ts) are
//     queued for a copy to the host, and the previous step's values are read: that read waits for
//     the previous step only.
//
// The rules of capture (CUDA's, and the emulator's, which CI runs):
//  - nothing in the step may read a tensor on the host, synchronize, or copy from host memory:
//    such a call spoils the capture, which is ended and reported as an Error naming the call;
//  - every allocation of the captured step comes from the graph's private memory pool, so replays
//    allocate nothing; the pool is freed by dispose() (or when the step is garbage collected);
//  - values that the host passes to kernels are frozen at capture. The learning rate is not (the
//    SGD update reads it from device memory), but Adam's per-step bias correction and a dropout
//    layer's seed are: with an optimizer that is not capturable (Adam, AdamW) or a model holding
//    kg.nn.Dropout, steps run eagerly, still without a host sync per step;
//  - a custom `loss` and the model's own input checks run at capture only; the labels of the
//    default loss are checked on the host before every step;
//  - a graph holds the memory of the parameters, the optimizer's state and the running
//    statistics: loadStateDict (which copies in place) keeps it valid, replacing those tensors
//    (model.to(), a new optimizer) needs a new compileStep.
// On the CPU the same call runs the step eagerly (the loss is read at once, and returned a step
// late like on the GPU, so that a loop reads the same way on both).
import { backward } from '../autograd/backward';
import { record } from '../autograd/tape';
import { native, type CudaHandle } from '../native';
import { Dropout } from '../nn/dropout';
import { Module } from '../nn/module';
import { checkTensor } from '../ops/check';
import { CheckedLayer, DeferredChecks, withDeferredChecks } from '../ops/deferred-checks';
import { knownLabelBound, labelBound, Labels, softmaxCrossEntropy, trustLabels } from '../ops/loss';
import { Optimizer } from '../optim/optimizer';
import { describe, readOptions } from '../options';
import { formatShape } from '../shape';
import { Tensor } from '../tensor';
import { tidy } from '../tidy';

export interface CompileStepOptions {
  model: Module;
  optimizer: Optimizer;
  /**
   * The loss of a batch as a one-element tensor (default: softmax cross-entropy of the model's
   * output and the labels, summed over the batch, as fit() trains).
   */
  loss?: (output: Tensor, y: Labels) => Tensor;
  /** How the default loss combines the examples: 'sum' (default, as fit() trains) or 'mean'. */
  lossReduction?: 'sum' | 'mean';
  /** Capture steps as a CUDA graph where possible (default true; false: eager steps on CUDA too). */
  graph?: boolean;
}

/** A compiled training step. */
export interface CompiledStep {
  /**
   * Runs one step on the batch (x, y) and returns the loss of the previous step (null on the
   * first call). A NaN, an infinity, or a batch-norm statistics failure of the previous step
   * throws here (NonFiniteError for the latter).
   */
  (x: Tensor, y: Labels): number | null;
  /** Waits for the last step and returns its loss (null when there is none to read). */
  flush(): number | null;
  /** How steps run: 'graph' (captured and replayed), 'eager' (on CUDA without a host sync), 'cpu'. */
  readonly mode: 'graph' | 'eager' | 'cpu';
  /** Frees the graphs, their memory pools and the static inputs. */
  dispose(): void;
}

const FN = 'kg.train.compileStep';
const SLOTS = 2; // readbacks in flight: the step being queued and the one being read

/** A captured step for one shape of batch. */
interface Capture {
  xs: Tensor;
  ys: Tensor;
  /** Logits-shaped, for the label checks' messages. */
  logitsLike: Tensor | null;
  graph: CudaHandle | null;
  loss: Tensor | null;
  layers: readonly CheckedLayer[];
}

/** A step whose loss (and batch-norm status words) are on their way to the host. */
interface Pending {
  slot: number;
  layers: readonly CheckedLayer[];
}

/** Page-locked memory for one step's loss and status words. */
interface Readback {
  handle: CudaHandle;
  floats: number;
}

class Compiled {
  readonly mode: 'graph' | 'eager' | 'cpu';
  private readonly lossOf: (output: Tensor, y: Labels) => Tensor;
  private readonly customLoss: boolean;
  private readonly captures = new Map<string, Capture>();
  private readonly checks: DeferredChecks | null = null;
  private readonly readbacks: Array<Readback | null> = [];
  private pending: Pending | null = null;
  private cpuLoss: number | null = null;
  private slot = 0;
  private warmed = false;
  private classes = 0;
  private disposed = false;

  constructor(
    private readonly model: Module,
    private readonly optimizer: Optimizer,
    loss: ((output: Tensor, y: Labels) => Tensor) | undefined,
    reduction: 'sum' | 'mean',
    graph: boolean,
  ) {
    this.customLoss = loss !== undefined;
    this.lossOf = loss ?? ((output, y) => softmaxCrossEntropy(output, y, { reduction }));
    const device = optimizer.params[0].device;
    if (device === 'cpu') {
      this.mode = 'cpu';
      return;
    }
    const dropout = model.namedModules().some(([, m]) => m instanceof Dropout);
    this.mode = graph && optimizer.capturable && !dropout ? 'graph' : 'eager';
    this.checks = new DeferredChecks(device);
    for (let i = 0; i < SLOTS; i++) this.readbacks.push(null);
  }

  step(x: Tensor, y: Labels): number | null {
    if (this.disposed) throw new Error(`${FN}: the step was disposed`);
    checkTensor(x, FN, 'x');
    if (x.ndim < 1) throw new RangeError(`${FN}: x needs a batch dimension, got shape ${formatShape(x.shape)}`);
    const device = this.optimizer.params[0].device;
    if (x.device !== device) throw new TypeError(`${FN}: x is on ${x.device}, the parameters on ${device}`);
    if (this.mode === 'cpu') {
      const previous = this.cpuLoss;
      this.cpuLoss = tidy(() => this.body(x, y).item());
      return previous;
    }
    this.optimizer.syncDeviceState();
    const checks = this.checks as DeferredChecks;
    let loss: Tensor;
    let layers: readonly CheckedLayer[];
    const eager = this.mode === 'eager' || !this.warmed;
    if (eager) {
      layers = checks.beginStep();
      loss = withDeferredChecks(checks, () => this.body(x, y));
      this.warmed = true;
    } else {
      const c = this.captureFor(x, y);
      native.cudaGraphReplay(c.graph as CudaHandle);
      loss = c.loss as Tensor;
      layers = c.layers;
    }
    const slot = this.slot;
    this.slot = (slot + 1) % SLOTS;
    const readback = this.readbackFor(slot, 1 + checks.status.numel);
    native.cudaReadbackEnqueue(readback, loss.storage, 0);
    native.cudaReadbackEnqueue(readback, checks.status.storage, 1);
    if (eager) loss.dispose(); // its block is reused only by work queued after the copy
    const previous = this.pending;
    this.pending = { slot, layers };
    return previous === null ? null : this.read(previous);
  }

  flush(): number | null {
    if (this.mode === 'cpu') {
      const last = this.cpuLoss;
      this.cpuLoss = null;
      return last;
    }
    const last = this.pending;
    this.pending = null;
    return last === null ? null : this.read(last);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const c of this.captures.values()) {
      if (c.graph) native.cudaGraphDispose(c.graph);
      for (const t of [c.xs, c.ys, c.logitsLike, c.loss]) t?.dispose();
    }
    this.captures.clear();
    for (const r of this.readbacks) if (r) native.cudaReadbackDispose(r.handle);
    this.checks?.dispose();
  }

  /** Forward, loss, backward and update; returns the loss tensor (everything else is freed). */
  private body(x: Tensor, y: Labels): Tensor {
    return tidy(() => {
      this.optimizer.zeroGrad();
      const loss = record(() => {
        const output = this.model.forward(x);
        if (output.ndim === 2) this.classes = output.shape[1];
        return this.lossOf(output, y);
      });
      if (!(loss instanceof Tensor) || loss.numel !== 1) {
        throw new TypeError(`${FN}: loss must return a one-element tensor, got ${loss instanceof Tensor ? `shape ${formatShape(loss.shape)}` : describe(loss)}`);
      }
      backward(loss);
      this.optimizer.step();
      return loss;
    });
  }

  /** Copies the batch into the static inputs of its shape's capture, capturing it the first time. */
  private captureFor(x: Tensor, y: Labels): Capture {
    const key = formatShape(x.shape);
    let c = this.captures.get(key);
    const fresh = c === undefined;
    if (c === undefined) {
      const n = x.shape[0];
      const ys = y instanceof Tensor ? Tensor.empty(y.shape, x.device).keep() : Tensor.empty([n], x.device).keep();
      c = { xs: Tensor.empty(x.shape, x.device).keep(), ys, logitsLike: null, graph: null, loss: null, layers: [] };
      if (!this.customLoss && this.classes > 0) c.logitsLike = Tensor.empty([n, this.classes], x.device).keep();
      this.captures.set(key, c);
    }
    this.copyInputs(c, x, y);
    if (fresh) this.capture(c);
    return c;
  }

  private copyInputs(c: Capture, x: Tensor, y: Labels): void {
    c.xs.copy_(x);
    if (this.customLoss) {
      if (!(y instanceof Tensor)) throw new TypeError(`${FN}: with a custom loss, y must be a Tensor, got ${describe(y)}`);
      c.ys.copy_(y);
      // Labels a loader checked stay trusted in the copy, so the loss need not read them back.
      const known = knownLabelBound(y);
      if (known !== undefined) trustLabels(c.ys, known);
      return;
    }
    const like = c.logitsLike as Tensor;
    const bound = labelBound(y, x.shape[0], like.shape[1], like);
    if (y instanceof Tensor) c.ys.copy_(y);
    else c.ys.storageForWrite().write(Float32Array.from(y as ArrayLike<number>));
    trustLabels(c.ys, bound);
  }

  private capture(c: Capture): void {
    const checks = this.checks as DeferredChecks;
    native.cudaCaptureBegin();
    let loss: Tensor;
    checks.pinForCapture();
    try {
      c.layers = checks.beginStep();
      loss = withDeferredChecks(checks, () => this.body(c.xs, c.ys));
    } catch (e) {
      native.cudaCaptureAbandon();
      this.captures.delete(formatShape(c.xs.shape));
      for (const t of [c.xs, c.ys, c.logitsLike]) t?.dispose();
      throw captureError(e);
    }
    try {
      c.graph = native.cudaCaptureEnd();
    } catch (e) {
      loss.dispose();
      throw captureError(e);
    }
    c.loss = loss.keep();
  }

  /**
   * The readback of `slot`, holding at least `floats`: the status buffer grows on a loop's first
   * steps. The slot's last values were read by the previous step (or flush), so it may be replaced.
   */
  private readbackFor(slot: number, floats: number): CudaHandle {
    let r = this.readbacks[slot];
    if (r === null || r.floats < floats) {
      if (r) native.cudaReadbackDispose(r.handle);
      r = { handle: native.cudaReadbackCreate(floats), floats };
      this.readbacks[slot] = r;
    }
    return r.handle;
  }

  private read(p: Pending): number {
    const values = native.cudaReadbackRead((this.readbacks[p.slot] as Readback).handle);
    const error = (this.checks as DeferredChecks).errorFor(values.subarray(1), p.layers);
    if (error) throw error;
    return values[0];
  }
}

function captureError(e: unknown): Error {
  const why = e instanceof Error ? e.message : String(e);
  return new Error(`${FN}: the step could not be captured as a CUDA graph: ${why}`, { cause: e });
}

/**
 * Compiles a training step of `model` with `optimizer` (see the rules at the top of this file):
 * returns step(x, y), which trains on one batch and returns the previous step's loss.
 */
export function compileStep(options: CompileStepOptions): CompiledStep {
  if (options === undefined || options === null || typeof options !== 'object') {
    throw new TypeError(`${FN}: options { model, optimizer } are required, got ${describe(options)}`);
  }
  const opts = readOptions(options, FN, ['model', 'optimizer', 'loss', 'lossReduction', 'graph']);
  if (!(opts.model instanceof Module)) throw new TypeError(`${FN}: model must be a kg.nn.Module, got ${describe(opts.model)}`);
  if (!(opts.optimizer instanceof Optimizer)) {
    throw new TypeError(`${FN}: optimizer must be a kg.optim optimizer (SGD, Adam, AdamW), got ${describe(opts.optimizer)}`);
  }
  if (opts.loss !== undefined && typeof opts.loss !== 'function') throw new TypeError(`${FN}: loss must be a function, got ${describe(opts.loss)}`);
  if (opts.lossReduction !== undefined && opts.lossReduction !== 'sum' && opts.lossReduction !== 'mean') {
    throw new TypeError(`${FN}: lossReduction must be 'sum' or 'mean', got ${describe(opts.lossReduction)}`);
  }
  if (opts.loss !== undefined && opts.lossReduction !== undefined) throw new TypeError(`${FN}: lossReduction goes with the default loss, not with loss`);
  if (opts.graph !== undefined && typeof opts.graph !== 'boolean') throw new TypeError(`${FN}: graph must be true or false, got ${describe(opts.graph)}`);
  const compiled = new Compiled(opts.model, opts.optimizer, opts.loss, opts.lossReduction ?? 'sum', opts.graph ?? true);
  const step = ((x: Tensor, y: Labels) => compiled.step(x, y)) as CompiledStep;
  Object.defineProperty(step, 'mode', { get: () => compiled.mode });
  step.flush = () => compiled.flush();
  step.dispose = () => compiled.dispose();
  return step;
}
