// The base class of every layer: a registry of parameters, buffers and sub-modules with PyTorch-style
// dotted names, train/eval mode, state dicts and device moves.
//
// Subclasses keep their tensors ONLY in the registry and reach them through getters, e.g.
//
//   class Scale extends Module {
//     constructor(n: number) { super(); this.registerParameter('weight', ones([n])); }
//     get weight(): Tensor { return this.param('weight'); }
//     forward(x: Tensor): Tensor { return x.mul(this.weight); }
//   }
//
// so that `to(device)` and `loadStateDict` (which may replace or rewrite the tensors) can never leave
// a stale field behind.
import { Device, parseDevice } from '../device';
import { formatShape, sameShape } from '../shape';
import { Tensor } from '../tensor';

type Kind = 'parameter' | 'buffer' | 'module';

export abstract class Module {
  /** True in training mode (the default after construction), false after `eval()`. */
  training = true;

  private readonly _params = new Map<string, Tensor>();
  private readonly _buffers = new Map<string, Tensor>();
  private readonly _modules = new Map<string, Module>();

  /** Computes the module's output. */
  abstract forward(x: Tensor): Tensor;

  // ---------------------------------------------------------------- registration (for subclasses)

  /**
   * Registers a trainable tensor under `name` and calls `t.attachGrad()`. Registering a name again
   * replaces the tensor (the old one is not disposed: the caller owns it). Returns `t`.
   */
  protected registerParameter(name: string, t: Tensor): Tensor {
    this.checkName(name, 'parameter');
    t.attachGrad();
    this._params.set(name, t);
    return t;
  }

  /**
   * Registers a tensor that is saved in the state dict but not trained (e.g. running statistics).
   * Registering a name again replaces the tensor (the old one is not disposed). The tensor is
   * exempted from `kg.tidy()` (like parameters), so it survives the training step. Returns `t`.
   */
  protected registerBuffer(name: string, t: Tensor): Tensor {
    this.checkName(name, 'buffer');
    t.keep();
    this._buffers.set(name, t);
    return t;
  }

  /** Registers a sub-module; its tensors get the prefix `name.` in the dotted names. Returns `m`. */
  protected registerModule<M extends Module>(name: string, m: M): M {
    this.checkName(name, 'module');
    this._modules.set(name, m);
    return m;
  }

  /** The registered parameter `name`; throws if there is none. */
  protected param(name: string): Tensor {
    const t = this._params.get(name);
    if (t === undefined) throw new Error(`${this.constructor.name}: no parameter named '${name}'`);
    return t;
  }

  /** The registered parameter `name`, or null (for optional parameters such as a bias). */
  protected paramOrNull(name: string): Tensor | null {
    return this._params.get(name) ?? null;
  }

  /** The registered buffer `name`; throws if there is none. */
  protected buffer(name: string): Tensor {
    const t = this._buffers.get(name);
    if (t === undefined) throw new Error(`${this.constructor.name}: no buffer named '${name}'`);
    return t;
  }

  /** The registered sub-module `name`; throws if there is none. */
  protected module(name: string): Module {
    const m = this._modules.get(name);
    if (m === undefined) throw new Error(`${this.constructor.name}: no sub-module named '${name}'`);
    return m;
  }

  /** Called on each module after `loadStateDict` has written its values. Default: nothing. */
  protected afterLoadStateDict(): void {}

  /**
   * Buffers a state dict may lack, because files written before they existed lack them
   * (BatchNorm's numBatchesTracked): loadStateDict then leaves them as they are.
   */
  protected optionalStateKeys(): readonly string[] {
    return [];
  }

  /** Layers with moving statistics (batch norm) override this; see `freezeBatchNorm`. */
  protected setStatisticsFrozen(_frozen: boolean): void {}

  // ---------------------------------------------------------------- traversal

  /** Direct sub-modules, in registration order. */
  children(): Array<[string, Module]> {
    return [...this._modules.entries()];
  }

  /** This module (name '') and every descendant, depth first, with dotted names. */
  namedModules(prefix = ''): Array<[string, Module]> {
    const out: Array<[string, Module]> = [[prefix, this]];
    for (const [name, m] of this._modules) out.push(...m.namedModules(join(prefix, name)));
    return out;
  }

  /** Every parameter with its dotted name ('features.0.weight'), own parameters first. */
  namedParameters(): Array<[string, Tensor]> {
    const out: Array<[string, Tensor]> = [];
    for (const [prefix, m] of this.namedModules()) {
      for (const [name, t] of m._params) out.push([join(prefix, name), t]);
    }
    return out;
  }

  /** Every parameter, in the order of `namedParameters()`. */
  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  /** Every buffer with its dotted name ('bn1.runningMean'). */
  namedBuffers(): Array<[string, Tensor]> {
    const out: Array<[string, Tensor]> = [];
    for (const [prefix, m] of this.namedModules()) {
      for (const [name, t] of m._buffers) out.push([join(prefix, name), t]);
    }
    return out;
  }

  /** Total number of trainable values. */
  numParameters(): number {
    return this.parameters().reduce((s, t) => s + t.numel, 0);
  }

  // ---------------------------------------------------------------- modes

  /** Sets training mode (`true`, the default) or inference mode on this module and all descendants. */
  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  /** Inference mode: same as `train(false)`. Batch norm then uses its moving statistics. */
  eval(): this {
    return this.train(false);
  }

  /**
   * Freezes every batch norm in this module and below (`BatchNorm.freeze()`): they normalize
   * with their moving statistics and leave them alone, while the rest of the model trains.
   */
  freezeBatchNorm(): this {
    for (const [, m] of this.namedModules()) m.setStatisticsFrozen(true);
    return this;
  }

  /** Undoes `freezeBatchNorm()`. */
  unfreezeBatchNorm(): this {
    for (const [, m] of this.namedModules()) m.setStatisticsFrozen(false);
    return this;
  }

  // ---------------------------------------------------------------- state

  /**
   * Parameters then buffers of each module, by dotted name, in registration order. The values are
   * the live tensors (not copies): read them, do not dispose them.
   */
  stateDict(): Record<string, Tensor> {
    const out: Record<string, Tensor> = Object.create(null); // a name such as __proto__ stays a key

    for (const [prefix, m] of this.namedModules()) {
      for (const [name, t] of m._params) out[join(prefix, name)] = t;
      for (const [name, t] of m._buffers) out[join(prefix, name)] = t;
    }
    return out;
  }

  /**
   * Copies values into the module's tensors in place (`t.copy_(src)`; `src` may live on any device).
   * Every key must be present with the same shape (but for the optional buffers of older files,
   * which keep their values) and no extra key is allowed; otherwise nothing is written and the
   * Error names the offending keys and shapes. Then calls `afterLoadStateDict()` on
   * every module.
   */
  loadStateDict(dict: Record<string, Tensor>): void {
    if (dict === null || typeof dict !== 'object') {
      throw new TypeError(`${this.constructor.name}.loadStateDict: dict must be an object of tensors by name, got ${dict === null ? 'null' : typeof dict}`);
    }
    const own = this.stateDict();
    const optional = new Set(this.namedModules().flatMap(([prefix, m]) => m.optionalStateKeys().map((k) => join(prefix, k))));
    const missing = Object.keys(own).filter((k) => !(k in dict) && !optional.has(k));
    const extra = Object.keys(dict).filter((k) => !(k in own));
    const problems: string[] = [];
    if (missing.length > 0) problems.push(`missing keys: ${missing.join(', ')}`);
    if (extra.length > 0) problems.push(`unexpected keys: ${extra.join(', ')}`);
    for (const [k, t] of Object.entries(own)) {
      const src = dict[k];
      if (src !== undefined && !(src instanceof Tensor)) problems.push(`${k} is not a Tensor`);
      else if (src !== undefined && !sameShape(src.shape, t.shape)) {
        problems.push(`shape mismatch for ${k}: expected ${formatShape(t.shape)}, got ${formatShape(src.shape)}`);
      }
    }
    if (problems.length > 0) {
      throw new Error(`${this.constructor.name}.loadStateDict: ${problems.join('; ')}`);
    }
    for (const [k, t] of Object.entries(own)) if (k in dict && dict[k] !== t) t.copy_(dict[k]);
    for (const [, m] of this.namedModules()) m.afterLoadStateDict();
  }

  /**
   * Moves every parameter and buffer to `device`: each tensor is copied to the device, re-registered
   * (parameters get a fresh `attachGrad()`, so gradients are dropped) and the old one is disposed.
   * Tensors already on `device` are left alone. Create optimizers AFTER moving the model: an
   * optimizer made before holds the old (disposed) tensors.
   */
  to(device: Device): this {
    const target = parseDevice(device, `${this.constructor.name}.to`);
    for (const [, m] of this.namedModules()) {
      for (const [name, t] of [...m._params]) {
        if (t.device === target) continue;
        const moved = t.to(target);
        moved.attachGrad();
        m._params.set(name, moved);
        t.dispose();
      }
      for (const [name, t] of [...m._buffers]) {
        if (t.device === target) continue;
        m._buffers.set(name, t.to(target).keep());
        t.dispose();
      }
    }
    return this;
  }

  /** Disposes every parameter and buffer (the module is unusable afterwards). */
  dispose(): void {
    for (const [, m] of this.namedModules()) {
      for (const t of m._params.values()) t.dispose();
      for (const t of m._buffers.values()) t.dispose();
    }
  }

  /** The class name; layers override this with their configuration. */
  toString(): string {
    return `${this.constructor.name}()`;
  }

  // ---------------------------------------------------------------- helpers

  private checkName(name: string, kind: Kind): void {
    if (name === '' || name.includes('.')) {
      throw new Error(`${this.constructor.name}: invalid ${kind} name '${name}' (non-empty, no dots)`);
    }
    const taken: Kind | null = this._params.has(name)
      ? 'parameter'
      : this._buffers.has(name)
        ? 'buffer'
        : this._modules.has(name)
          ? 'module'
          : null;
    if (taken !== null && taken !== kind) {
      throw new Error(`${this.constructor.name}: '${name}' is already registered as a ${taken}`);
    }
  }
}

function join(prefix: string, name: string): string {
  return prefix === '' ? name : `${prefix}.${name}`;
}
