// Reverse-mode differentiation over the recorded graph. Iterative (deep graphs must not overflow
// the stack), topologically ordered, gradients summed where a tensor feeds several ops, and
// accumulated (+=) into the `grad` of tensors that called attachGrad().
import type { Device } from '../device';
import { native } from '../native';
import { formatShape, sameShape } from '../shape';
import { nextTensorSerial, Tensor } from '../tensor';
import { checkBackward, checkHeadGrad, isDetectingAnomaly } from './anomaly';
import { pause } from './tape';

/** Tensors reachable from root through recorded nodes, inputs before the ops that use them. */
function topologicalOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>([root]);
  const stack: Array<[Tensor, number]> = [[root, 0]];
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const [t, next] = top;
    const inputs = t.node?.inputs ?? [];
    if (next < inputs.length) {
      top[1]++;
      const input = inputs[next];
      if (input.tracksGrad && !visited.has(input)) {
        visited.add(input);
        stack.push([input, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }
  return order;
}

/**
 * The gradients of one backward pass, and which of them the pass may hand over or overwrite
 * instead of copying. A gradient is the pass's own when the pass made it (not the caller's
 * headGrad, nor a forward tensor a rule passed through), no other tensor views its memory, and it
 * is held in one place only: a rule may return the same tensor for two inputs (add's [g, g]), and
 * a leaf that took a gradient keeps it. Anything else is copied where it is taken.
 */
class Gradients {
  private readonly pending = new Map<Tensor, Tensor>();
  /** How many pending entries hold each gradient tensor. */
  private readonly holders = new Map<Tensor, number>();
  /** Gradients that became a leaf's grad: never written or handed over again. */
  private readonly kept = new Set<Tensor>();

  constructor(private readonly firstSerial: number) {}

  /** Removes and returns the gradient waiting for `t`. */
  take(t: Tensor): Tensor | undefined {
    const g = this.pending.get(t);
    if (g === undefined) return undefined;
    this.pending.delete(t);
    this.holders.set(g, (this.holders.get(g) as number) - 1);
    return g;
  }

  /** Adds `g` to the gradient waiting for `t`: in place when one of the two is ours to write. */
  add(t: Tensor, g: Tensor): void {
    const prev = this.pending.get(t);
    if (prev === undefined) return this.set(t, g);
    if (prev !== g && this.owned(prev, 1)) {
      native.axpby(1, g.storage, 1, prev.storageForWrite());
    } else if (prev !== g && this.owned(g, 0)) {
      native.axpby(1, prev.storage, 1, g.storageForWrite());
      this.set(t, g);
    } else {
      const out = Tensor.empty(prev.shape, prev.device);
      out.storage.copyFrom(prev.storage);
      native.axpby(1, g.storage, 1, out.storage);
      this.set(t, out);
    }
  }

  /**
   * Accumulates `g` into `leaf.grad`. A leaf without one takes `g` itself when it is ours (no
   * copy); it is a copy otherwise, so that a later in-place update of either never shows in the other.
   */
  accumulate(leaf: Tensor, g: Tensor): void {
    if (leaf.grad !== null && !leaf.grad.disposed) {
      if (!sameShape(leaf.grad.shape, leaf.shape) || leaf.grad.device !== leaf.device) {
        throw new RangeError(
          `backward: the existing grad ${formatShape(leaf.grad.shape)} on ${leaf.grad.device} does not match ` +
            `its tensor ${formatShape(leaf.shape)} on ${leaf.device}`,
        );
      }
      native.axpby(1, g.storage, 1, leaf.grad.storageForWrite());
      return;
    }
    if (this.owned(g, 0) && sameShape(g.shape, leaf.shape)) {
      this.kept.add(g);
      leaf.grad = g.keep();
      return;
    }
    const copy = Tensor.empty(leaf.shape, leaf.device).keep();
    copy.storage.copyFrom(g.storage);
    leaf.grad = copy;
  }

  /** Frees `g` once its node has used it, unless it is held elsewhere or is not ours. */
  release(g: Tensor): void {
    if (this.owned(g, 0)) g.dispose();
  }

  private set(t: Tensor, g: Tensor): void {
    const prev = this.pending.get(t);
    if (prev !== undefined) this.holders.set(prev, (this.holders.get(prev) as number) - 1);
    this.pending.set(t, g);
    this.holders.set(g, (this.holders.get(g) ?? 0) + 1);
  }

  /** True when `g` is this pass's own and held by exactly `holders` pending entries. */
  private owned(g: Tensor, holders: number): boolean {
    return g.serial >= this.firstSerial && !this.kept.has(g) && g.ownsStorage && (this.holders.get(g) ?? 0) === holders;
  }
}

/**
 * The default head gradient of a one-element root (a loss): the constant 1, made once per device
 * and never written (the pass treats it as the caller's headGrad, which it never owns), so that a
 * training step does not launch a fill for it.
 */
const unitHeads = new Map<Device, Tensor>();
function unitHead(root: Tensor): Tensor {
  let one = unitHeads.get(root.device);
  if (one === undefined || one.disposed) {
    one = Tensor.empty([], root.device).keep();
    native.fill(one.storage, 1);
    unitHeads.set(root.device, one);
  }
  return root.ndim === 0 ? one : one.view(root.shape);
}

/** True when `g` is the unit head backward() started from: an op may then use a gradient it precomputed for 1. */
export function isUnitHead(g: Tensor): boolean {
  return unitHeads.get(g.device) === g;
}

export interface BackwardOptions {
  /** Keep the graph so backward can run through it again (default false: it is freed). */
  retainGraph?: boolean;
}

/**
 * Backpropagates from `root`. `headGrad` is the gradient of the final objective with respect to
 * root; it defaults to ones, so a vector root is treated as the sum of its elements.
 */
export function backward(root: Tensor, headGrad?: Tensor, options: BackwardOptions = {}): void {
  if (!root.tracksGrad) {
    throw new Error(
      'backward: this tensor does not depend on any tensor that called attachGrad() inside autograd.record()',
    );
  }
  // The unit head is made before the pass's first serial: it is never the pass's own.
  const unit = headGrad === undefined && root.numel === 1 ? unitHead(root) : null;
  const firstSerial = nextTensorSerial();
  let head: Tensor;
  if (unit !== null) {
    head = unit;
  } else if (headGrad === undefined) {
    head = Tensor.empty(root.shape, root.device);
    native.fill(head.storage, 1);
  } else {
    if (!(headGrad instanceof Tensor)) throw new TypeError('kg.Tensor.backward: headGrad must be a Tensor');
    if (!sameShape(headGrad.shape, root.shape)) {
      throw new RangeError(
        `backward: headGrad ${formatShape(headGrad.shape)} must have the shape of the output ${formatShape(root.shape)}`,
      );
    }
    if (headGrad.device !== root.device) {
      throw new Error(`kg.Tensor.backward: headGrad is on ${headGrad.device}, the output on ${root.device}`);
    }
    head = headGrad;
  }

  const order = topologicalOrder(root);
  // Every node is checked before any gradient is accumulated, so a failed backward changes nothing.
  for (const t of order) t.node?.check();
  if (isDetectingAnomaly() || root.node?.anomaly) checkHeadGrad(head);
  const grads = new Gradients(firstSerial);
  grads.add(root, head);
  pause(() => {
    for (let i = order.length - 1; i >= 0; i--) {
      const t = order[i];
      const g = grads.take(t);
      if (g === undefined) continue;
      if (t.requiresGrad) grads.accumulate(t, g);
      if (t.node === null) continue;
      const inputGrads = t.node.backward(g);
      if (isDetectingAnomaly() || t.node.anomaly) checkBackward(t.node.op, t.node.inputs, g, inputGrads);
      t.node.inputs.forEach((input, k) => {
        const gi = inputGrads[k];
        if (gi === null || gi === undefined || !input.tracksGrad) return;
        grads.add(input, gi);
      });
      grads.release(g);
    }
  });
  if (!options.retainGraph) {
    // The nodes stay attached, freed, so that a second backward through them says why it fails.
    for (const t of order) t.node?.free();
  }
}
