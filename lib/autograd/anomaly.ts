// Anomaly detection: a debug mode that reads back every recorded op's output and every gradient
// and stops at the first NaN or infinity, naming the op that produced it. Without it a NaN shows up
// steps later as a NaN loss, far from its cause.
import { firstNonFiniteIn as firstNonFinite, NonFiniteError } from '../non-finite';
import { formatShape } from '../shape';
import type { Tensor } from '../tensor';

let depth = 0;

/** Runs fn with anomaly detection on (forward ops and the backward passes it runs). Nests. */
export function detectAnomaly<T>(fn: () => T): T {
  if (typeof fn !== 'function') throw new TypeError('kg.autograd.detectAnomaly(fn): fn must be a function');
  depth++;
  try {
    return fn();
  } finally {
    depth--;
  }
}

export function isDetectingAnomaly(): boolean {
  return depth > 0;
}

function shapesOf(tensors: readonly Tensor[]): string {
  return tensors.map((t) => formatShape(t.shape)).join(', ');
}

/** Throws when `output` of `op` holds a NaN or infinity, saying whether its inputs already did. */
export function checkForward(op: string, output: Tensor, inputs: readonly Tensor[]): void {
  const bad = firstNonFinite(output);
  if (bad === null) return;
  for (let k = 0; k < inputs.length; k++) {
    const inputBad = firstNonFinite(inputs[k]);
    if (inputBad !== null) {
      throw new NonFiniteError(
        `detectAnomaly: input ${k} ${formatShape(inputs[k].shape)} of ${op} (forward) already holds ${inputBad}; ` +
          'it was not computed by a recorded op, so check the data or the tensor it came from',
      );
    }
  }
  throw new NonFiniteError(
    `detectAnomaly: ${op} (forward) produced ${bad} in its output ${formatShape(output.shape)} ` +
      `from finite inputs ${shapesOf(inputs)}`,
  );
}

export function checkHeadGrad(head: Tensor): void {
  const bad = firstNonFinite(head);
  if (bad !== null) throw new NonFiniteError(`detectAnomaly: the headGrad ${formatShape(head.shape)} given to backward holds ${bad}`);
}

/** Throws when a gradient computed by the rule of `op` holds a NaN or infinity. */
export function checkBackward(op: string, inputs: readonly Tensor[], gradOutput: Tensor, grads: ReadonlyArray<Tensor | null | undefined>): void {
  grads.forEach((g, k) => {
    if (g === null || g === undefined) return;
    const bad = firstNonFinite(g);
    if (bad === null) return;
    const from = firstNonFinite(gradOutput) === null ? 'a finite output gradient' : 'an output gradient that is already non-finite';
    throw new NonFiniteError(
      `detectAnomaly: ${op} (backward) produced ${bad} in the gradient of its input ${k} ${formatShape(g.shape)}, ` +
        `from ${from} ${formatShape(gradOutput.shape)}; its inputs are ${shapesOf(inputs)}`,
    );
  });
}
