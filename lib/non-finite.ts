// NaN and infinity: the error that reports them and the scan that finds them. One class, so that
// the training loop can tell a non-finite value (bad data, or a model that diverged) from a bug.
import type { Tensor } from './tensor';

/** A NaN or infinity where a finite value is needed; `message` names where it was found. */
export class NonFiniteError extends RangeError {
  override name = 'NonFiniteError';
}

/** The first non-finite value of `values` as "NaN at index 3", or null when all are finite. */
export function firstNonFinite(values: ArrayLike<number>): string | null {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) return `${values[i]} at index ${i}`;
  }
  return null;
}

/** firstNonFinite of a tensor's values (reads them back, so it waits for pending GPU work). */
export function firstNonFiniteIn(t: Tensor): string | null {
  return firstNonFinite(t.toArray());
}
