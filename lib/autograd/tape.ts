// The tape: kg.autograd.record(fn) switches recording on while fn runs. Ops called while recording
// attach a GradNode to their result when any input tracks gradients; outside record() they build
// no graph at all, so inference costs nothing extra.
import type { Tensor } from '../tensor';
import { checkForward, detectAnomaly, isDetectingAnomaly } from './anomaly';
import { GradNode, GradRule } from './node';

let depth = 0;

export interface RecordOptions {
  /** Check every op's output and every gradient for NaN and infinity (see detectAnomaly). */
  detectAnomaly?: boolean;
}

/** Runs fn with recording on and returns its result. Nests. */
export function record<T>(fn: () => T, options: RecordOptions = {}): T {
  if (typeof fn !== 'function') throw new TypeError('kg.autograd.record(fn): fn must be a function');
  if (options.detectAnomaly) return detectAnomaly(() => record(fn));
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

/** @internal For ops that skip recordOp when nothing is recorded: the anomaly check of their output. */
export function checkOutput(op: string, output: Tensor, inputs: readonly Tensor[]): void {
  if (isDetectingAnomaly()) checkForward(op, output, inputs);
}

/**
 * Records `output = op(inputs)` when recording and an input tracks gradients. `saved` lists the
 * tensors whose values the rule reads (inputs or the output), `false` standing for one read only
 * when a gradient that is not needed would be computed; the rule receives the output's gradient
 * and returns one gradient (or null) per input.
 */
export function recordOp(
  op: string,
  output: Tensor,
  inputs: readonly Tensor[],
  saved: ReadonlyArray<Tensor | false>,
  rule: GradRule,
): Tensor {
  checkOutput(op, output, inputs);
  if (depth > 0 && inputs.some((t) => t.tracksGrad)) {
    const reads = saved.filter((t): t is Tensor => t !== false);
    output.node = new GradNode(op, inputs, rule, reads, isDetectingAnomaly());
  }
  return output;
}
