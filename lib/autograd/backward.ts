// Reverse-mode differentiation over the recorded graph. Iterative (deep graphs must not overflow
// the stack), topologically ordered, gradients summed where a tensor feeds several ops, and
// accumulated (+=) into the `grad` of tensors that called attachGrad().
import { native } from '../native';
import { formatShape, sameShape } from '../shape';
import { Tensor } from '../tensor';
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

function sum(a: Tensor, b: Tensor): Tensor {
  const out = Tensor.empty(a.shape, a.device);
  out.storage.copyFrom(a.storage);
  native.axpby(1, b.storage, 1, out.storage);
  return out;
}

function accumulateInto(leaf: Tensor, g: Tensor): void {
  if (leaf.grad === null || leaf.grad.disposed) {
    const copy = Tensor.empty(leaf.shape, leaf.device).keep();
    copy.storage.copyFrom(g.storage);
    leaf.grad = copy;
  } else {
    if (!sameShape(leaf.grad.shape, leaf.shape) || leaf.grad.device !== leaf.device) {
      throw new RangeError(
        `backward: the existing grad ${formatShape(leaf.grad.shape)} on ${leaf.grad.device} does not match ` +
          `its tensor ${formatShape(leaf.shape)} on ${leaf.device}`,
      );
    }
    native.axpby(1, g.storage, 1, leaf.grad.storageForWrite());
  }
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
  let head: Tensor;
  if (headGrad === undefined) {
    head = Tensor.empty(root.shape, root.device);
    native.fill(head.storage, 1);
  } else {
    if (!(headGrad instanceof Tensor)) throw new TypeError('backward: headGrad must be a Tensor');
    if (!sameShape(headGrad.shape, root.shape)) {
      throw new RangeError(
        `backward: headGrad ${formatShape(headGrad.shape)} must have the shape of the output ${formatShape(root.shape)}`,
      );
    }
    if (headGrad.device !== root.device) {
      throw new Error(`backward: headGrad is on ${headGrad.device}, the output on ${root.device}`);
    }
    head = headGrad;
  }

  const order = topologicalOrder(root);
  // Every node is checked before any gradient is accumulated, so a failed backward changes nothing.
  for (const t of order) t.node?.check();
  if (isDetectingAnomaly() || root.node?.anomaly) checkHeadGrad(head);
  const grads = new Map<Tensor, Tensor>([[root, head]]);
  pause(() => {
    for (let i = order.length - 1; i >= 0; i--) {
      const t = order[i];
      const g = grads.get(t);
      if (g === undefined) continue;
      grads.delete(t);
      if (t.requiresGrad) accumulateInto(t, g);
      if (t.node === null) continue;
      const inputGrads = t.node.backward(g);
      if (isDetectingAnomaly() || t.node.anomaly) checkBackward(t.node.op, t.node.inputs, g, inputGrads);
      t.node.inputs.forEach((input, k) => {
        const gi = inputGrads[k];
        if (gi === null || gi === undefined || !input.tracksGrad) return;
        const prev = grads.get(input);
        grads.set(input, prev === undefined ? gi : sum(prev, gi));
      });
    }
  });
  if (!options.retainGraph) {
    // The nodes stay attached, freed, so that a second backward through them says why it fails.
    for (const t of order) t.node?.free();
  }
}
