// What every optimizer of kg.optim shares, so that fit(), trainStep() and the CLI take any of them:
// the checked parameter list, a learning rate that schedules may change between steps, weight
// decay with its exemptions, per-parameter state created on a parameter's first update, and
// zeroGrad / dispose. A subclass says how one parameter is updated from its gradient.
import { describe } from '../options';
import { formatShape } from '../shape';
import { Tensor } from '../tensor';

/** Options every optimizer understands. */
export interface OptimizerOptions {
  /** L2 penalty (Adam, SGD) or decoupled decay rate (AdamW) (default 0, AdamW 0.01). */
  weightDecay?: number;
  /** Parameters exempt from weight decay, e.g. batch-norm gamma and beta, or biases. */
  noDecay?: Iterable<Tensor>;
}

/** `v` when it is a finite number for which `ok` holds, else a RangeError naming `fn` and `name`. */
export function checkNumber(v: unknown, fn: string, name: string, ok: (x: number) => boolean, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) {
    throw new RangeError(`${fn}: ${name} must be ${what}, got ${describe(v)}`);
  }
  return v;
}

export abstract class Optimizer<State extends object = object> {
  readonly params: readonly Tensor[];
  /** The public name, e.g. 'kg.optim.Adam', that starts every message. */
  protected readonly fn: string;
  private learningRate: number;
  private readonly noDecay: Set<Tensor>;
  private readonly state = new Map<Tensor, State>();
  private disposed = false;

  protected constructor(fn: string, params: Iterable<Tensor>, lr: unknown, noDecay: Iterable<Tensor> | undefined) {
    this.fn = fn;
    if (params === null || typeof params !== 'object' || typeof (params as Iterable<Tensor>)[Symbol.iterator] !== 'function') {
      throw new TypeError(`${fn}: params must be an array (or iterable) of tensors, got ${describe(params)}`);
    }
    this.params = [...params];
    if (this.params.length === 0) throw new RangeError(`${fn}: got an empty parameter list`);
    this.params.forEach((p, i) => {
      if (!(p instanceof Tensor)) throw new TypeError(`${fn}: parameter ${i} is not a Tensor, got ${describe(p)}`);
      if (!p.requiresGrad) throw new TypeError(`${fn}: parameter ${i} ${formatShape(p.shape)} did not call attachGrad()`);
    });
    if (new Set(this.params).size !== this.params.length) throw new RangeError(`${fn}: a parameter appears more than once`);
    this.learningRate = checkNumber(lr, fn, 'lr', (x) => x > 0, 'a positive number');
    this.noDecay = new Set();
    if (noDecay !== undefined) {
      if (noDecay === null || typeof (noDecay as Iterable<Tensor>)[Symbol.iterator] !== 'function') {
        throw new TypeError(`${fn}: noDecay must be an array of parameters, got ${describe(noDecay)}`);
      }
      for (const t of noDecay) {
        if (!this.params.includes(t)) {
          throw new RangeError(`${fn}: noDecay holds ${t instanceof Tensor ? `a tensor ${formatShape(t.shape)}` : describe(t)} that is not one of the parameters`);
        }
        this.noDecay.add(t);
      }
    }
  }

  /**
   * The learning rate of the next step. Settable between steps (that is what schedules do); 0 is
   * allowed there (a step that changes nothing), a negative or non-finite rate is an error.
   */
  get lr(): number {
    return this.learningRate;
  }
  set lr(value: number) {
    this.learningRate = checkNumber(value, this.fn, 'lr', (x) => x >= 0, 'a finite number >= 0');
  }

  /**
   * Updates every parameter that has a gradient, in place. Parameters whose `grad` is null (not
   * reached by the last backward) are skipped, as in PyTorch, and their state does not advance.
   */
  step(): void {
    if (this.disposed) throw new Error(`${this.fn}: step() after dispose(): the optimizer's state was freed`);
    const pairs: Array<[Tensor, Tensor]> = [];
    for (const p of this.params) {
      const g = p.grad;
      if (g === null) continue;
      if (g.device !== p.device || g.numel !== p.numel) {
        throw new Error(`${this.fn}: the gradient ${formatShape(g.shape)} on ${g.device} does not match its parameter ${formatShape(p.shape)} on ${p.device}`);
      }
      pairs.push([p, g]);
    }
    this.updateAll(pairs);
  }

  /**
   * @internal Writes what the device reads of the host's settings (the learning rate), so that a
   * captured step replays with the current ones. Called before each replay and before a capture,
   * during which no host-to-device write is possible.
   */
  syncDeviceState(): void {}

  /**
   * @internal Whether a captured step (kg.train.compileStep) replays this optimizer's update
   * correctly: false when the update depends on host values that change every step.
   */
  get capturable(): boolean {
    return false;
  }

  /** Updates each (parameter, gradient) pair; one update() each unless a subclass batches them. */
  protected updateAll(pairs: ReadonlyArray<[Tensor, Tensor]>): void {
    for (const [p, g] of pairs) this.update(p, g);
  }

  /** Drops every gradient (`p.grad = null`, memory freed), so the next backward starts from zero. */
  zeroGrad(): void {
    for (const p of this.params) {
      if (p.grad !== null) {
        p.grad.dispose();
        p.grad = null;
      }
    }
  }

  /** Frees the optimizer's state (momentum, moments); the optimizer cannot step afterwards. */
  dispose(): void {
    for (const s of this.state.values()) {
      for (const v of Object.values(s)) if (v instanceof Tensor) v.dispose();
    }
    this.state.clear();
    this.disposed = true;
  }

  /** Updates one parameter from its gradient (same device and size, checked). */
  protected abstract update(param: Tensor, grad: Tensor): void;

  /** The state of `p`, made by `create` on its first update. Tensors in it are freed by dispose(). */
  protected stateOf(p: Tensor, create: () => State): State {
    let s = this.state.get(p);
    if (s === undefined) {
      s = create();
      this.state.set(p, s);
    }
    return s;
  }

  /** `weightDecay`, or 0 for a parameter in noDecay. */
  protected decayOf(p: Tensor, weightDecay: number): number {
    return this.noDecay.has(p) ? 0 : weightDecay;
  }
}
