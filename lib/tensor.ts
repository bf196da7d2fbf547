// The Tensor: float32, contiguous, NCHW, on one device. Memory lives in a native Storage; reshapes
// share it (a reference count frees it when the last sharer is disposed). Ops live in lib/ops/ and
// are attached as methods at the bottom of this file's sibling, lib/tensor-methods.ts.
import type { GradNode } from './autograd/node';
import { Device, deviceCode, parseDevice } from './device';
import { native, Storage } from './native';
import { formatShape, numelOf, Shape } from './shape';
import { trackCreated } from './tidy';

/** A storage shared by the tensors that view it (a tensor and its reshapes). */
class SharedStorage {
  private refs = 1;
  /** Bumped by every in-place write (Tensor.storageForWrite), so facts known about the values can be invalidated. */
  version = 0;
  constructor(readonly storage: Storage) {}
  retain(): this {
    this.refs++;
    return this;
  }
  release(): void {
    if (--this.refs === 0) this.storage.dispose();
  }
  /** True while another tensor (a reshape) views the same memory. */
  get viewed(): boolean {
    return this.refs > 1;
  }
}

/** Counts the tensors made so far, so code can tell the tensors it made from older ones. */
let tensorsMade = 0;

export class Tensor {
  readonly shape: readonly number[];
  readonly device: Device;
  /** Gradient accumulated by backward() into tensors that called attachGrad(). */
  grad: Tensor | null = null;
  /** @internal How this tensor was computed, when it was recorded on the autograd tape. */
  node: GradNode | null = null;
  private shared: SharedStorage | null;
  private leaf = false;
  private persistent = false;
  /** @internal The number of tensors made before this one. */
  readonly serial: number = tensorsMade++;

  /** @internal Use kg.tensor/zeros/... to make tensors. */
  constructor(shape: Shape, device: Device, shared: SharedStorage) {
    this.shape = Object.freeze(shape.slice());
    this.device = device;
    this.shared = shared;
    trackCreated(this);
  }

  /** @internal A tensor with uninitialized memory. */
  static empty(shape: Shape, device: Device): Tensor {
    const storage = new native.Storage(deviceCode(device), numelOf(shape));
    return new Tensor(shape, device, new SharedStorage(storage));
  }

  /** @internal A tensor that shares this one's memory under another shape. */
  view(shape: Shape): Tensor {
    return new Tensor(shape, this.device, this.sharedStorage().retain());
  }

  get numel(): number {
    return numelOf(this.shape);
  }

  get ndim(): number {
    return this.shape.length;
  }

  get disposed(): boolean {
    return this.shared === null;
  }

  /**
   * @internal Counts the in-place writes to this tensor's memory (shared with its reshapes), like
   * PyTorch's version counter: a cached check of the values, or a value saved for backward, is
   * valid while the version it saw is current.
   */
  get version(): number {
    return this.sharedStorage().version;
  }

  /** True for tensors that called attachGrad(): backward() accumulates into their `grad`. */
  get requiresGrad(): boolean {
    return this.leaf;
  }

  /** True when gradients flow into this tensor: a leaf that wants them, or a recorded result. */
  get tracksGrad(): boolean {
    return this.leaf || this.node !== null;
  }

  /**
   * @internal The native memory, to read, or to write as the output of the op that just made this
   * tensor; throws if the tensor was disposed. Writes into a tensor that existed before the op go
   * through storageForWrite() instead.
   */
  get storage(): Storage {
    return this.sharedStorage().storage;
  }

  /**
   * @internal The native memory, for a kernel that writes into this existing tensor in place
   * (copy_, an optimizer step, running statistics, gradient accumulation). Bumps the version, so
   * that backward refuses to use the old values it saved and cached label checks are redone.
   */
  storageForWrite(): Storage {
    const shared = this.sharedStorage();
    shared.version++;
    return shared.storage;
  }

  /** @internal True when no other live tensor (a reshape of this one, or this of another) shares the memory. */
  get ownsStorage(): boolean {
    return this.shared !== null && !this.shared.viewed;
  }

  private sharedStorage(): SharedStorage {
    if (this.shared === null) {
      throw new Error(`kg.Tensor: this tensor ${formatShape(this.shape)} was disposed and can no longer be used`);
    }
    return this.shared;
  }

  /** A copy of the values as a Float32Array (waits for pending GPU work). */
  toArray(): Float32Array {
    return this.storage.read();
  }

  /** The value of a one-element tensor. */
  item(): number {
    if (this.numel !== 1) {
      throw new RangeError(`kg.Tensor.item(): needs a tensor with one element, got shape ${formatShape(this.shape)}`);
    }
    return this.toArray()[0];
  }

  /** A copy on `device` (the same tensor when it is already there). */
  to(device: Device | string): Tensor {
    const target = parseDevice(device);
    if (target === this.device) return this;
    const out = Tensor.empty(this.shape, target);
    out.storage.copyFrom(this.storage);
    return out;
  }

  /** Frees the memory now instead of waiting for the garbage collector. Idempotent. */
  dispose(): void {
    if (this.shared === null) return;
    this.shared.release();
    this.shared = null;
    this.node = null;
  }

  /** Marks this tensor as a parameter: backward() accumulates its gradient into `grad`. */
  attachGrad(): this {
    this.sharedStorage();
    this.leaf = true;
    this.persistent = true;
    return this;
  }

  /** @internal Exempts this tensor from kg.tidy(). */
  keep(): this {
    this.persistent = true;
    return this;
  }

  /** @internal */
  get isPersistent(): boolean {
    return this.persistent;
  }

  /**
   * Copies the values of `src` (same shape, any device) into this tensor, in place. The copy is not
   * recorded: no gradient flows to `src`, and a recorded result written this way no longer has the
   * history of the op that made it.
   */
  copy_(src: Tensor): this {
    if (!(src instanceof Tensor)) throw new TypeError('kg.Tensor.copy_: the source must be a Tensor');
    if (src.numel !== this.numel || src.ndim !== this.ndim || src.shape.some((d, i) => d !== this.shape[i])) {
      throw new RangeError(`kg.Tensor.copy_: shapes differ (${formatShape(src.shape)} into ${formatShape(this.shape)})`);
    }
    this.storageForWrite().copyFrom(src.storage);
    this.node = null;
    return this;
  }

  toString(): string {
    const values = this.numel <= 20 ? ` [${Array.from(this.toArray(), (v) => +v.toPrecision(6)).join(', ')}]` : '';
    return `Tensor(${formatShape(this.shape)}, ${this.device})${values}`;
  }
}

/** @internal The serial the next tensor made will get. */
export function nextTensorSerial(): number {
  return tensorsMade;
}

/** @internal */
export function newStorageTensor(shape: Shape, device: Device, storage: Storage): Tensor {
  return new Tensor(shape, device, new SharedStorage(storage));
}
