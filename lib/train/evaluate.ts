// Accuracy in inference mode, like the tutorial's evaluate_accuracy(..., is_training=False).
import { DataLoader } from '../data/loader';
import { Module } from '../nn/module';
import { describe } from '../options';
import { argmax } from '../ops/loss';
import { tidy } from '../tidy';
import { AccuracyCounter } from './metrics';

/**
 * Fraction of the loader's examples whose arg-max logit is the label. The model runs in inference
 * mode (`model.eval()`: batch norm uses its moving statistics and updates nothing), outside
 * autograd recording; its previous mode is restored afterwards. Uses epoch 0 of the loader (the
 * loader's epoch counter is not advanced).
 */
export function evaluateAccuracy(model: Module, loader: DataLoader): number {
  const fn = 'kg.train.evaluateAccuracy';
  if (!(model instanceof Module)) throw new TypeError(`${fn}: model must be a kg.nn.Module, got ${describe(model)}`);
  if (!(loader instanceof DataLoader)) throw new TypeError(`${fn}: loader must be a kg.data.DataLoader, got ${describe(loader)}`);
  const wasTraining = model.training;
  model.eval();
  const counter = new AccuracyCounter();
  try {
    for (const batch of loader.batches(0)) {
      try {
        const predicted = tidy(() => argmax(model.forward(batch.x)).toArray());
        counter.update(predicted, batch.labels);
      } finally {
        batch.x.dispose();
        batch.y.dispose();
      }
    }
  } finally {
    model.train(wasTraining);
  }
  return counter.value;
}
