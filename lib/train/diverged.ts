// Telling the two causes of a non-finite loss apart: a batch whose data is not finite (fix the
// data; the batch is named) or a model that diverged on finite data (lower the learning rate).
import { NonFiniteError, firstNonFiniteIn } from '../non-finite';
import type { Tensor } from '../tensor';

/**
 * The error to report when training step `batch` of `epoch` met a non-finite value: the loss
 * itself (`loss`), or a NonFiniteError raised during the step (`cause`, e.g. from batch norm).
 */
export function nonFiniteStepError(x: Tensor, epoch: number, batch: number, lr: number, what: { loss?: number; cause?: Error }): Error {
  const where = `fit: epoch ${epoch}, batch ${batch}`;
  const found = what.cause ? what.cause.message : `the loss became ${what.loss}`;
  const bad = firstNonFiniteIn(x);
  if (bad !== null) {
    return new NonFiniteError(`${where}: its inputs hold ${bad}; the data is not finite, so check or clean that batch (${found})`, {
      cause: what.cause,
    });
  }
  return new Error(`${where}: ${found}; the inputs are finite, so the model diverged: lower the learning rate (lr ${lr})`, {
    cause: what.cause,
  });
}
