// The tape: kg.autograd.record(fn) switches recording on while fn runs. Ops called while recording
// attach a GradNode to their result when any input tracks gradients; outside record() they build
// no graph at all, so inference costs nothing extra.
import type { Tensor } from '../tensor';
import type { GradNode } from './node';

let depth = 0;

/** Runs fn with recording on and returns its result. Nests. */
export function record<T>(fn: () => T): T {
  if (typeof fn !== 'function') throw new TypeError('autograd.record(fn): fn must be a function');
  depth++;
  try {
    return fn();
  } finally {
    depth--;
  }
}

/** Runs fn with recording off, even inside record(). */
export function pause<T>(fn: () => T): T {
  const saved = depth;
  depth = 0;
  try {
    return fn();
  } finally {
    depth = saved;
  }
}

export function isRecording(): boolean {
  return depth > 0;
}

/**
 * Records `output = op(inputs)` when recording and an input tracks gradients. The backward rule
 * receives the output's gradient and returns one gradient (or null) per input.
 */
export function recordOp(
  op: string,
  output: Tensor,
  inputs: readonly Tensor[],
  backward: GradNode['backward'],
): Tensor {
  if (depth > 0 && inputs.some((t) => t.tracksGrad)) {
    output.node = { op, inputs, backward };
  }
  return output;
}
