// The MNIST race in a process of its own (bench/cases/race.ts starts it): `kernelgrad train
// --recipe fast` as a loop, timed from the first step to the first evaluation of the test set at
// >= 99% accuracy, evaluations included. Prints one line `RESULT {json}`.
import { RECIPES } from '../../lib/cli/recipes';
import { loadOurs } from './ours';
import { nowMs } from './harness';
import type { Device } from './shapes';
import { RACE } from './shapes';

async function main(): Promise<void> {
  const { device } = JSON.parse(process.argv[2]) as { device: Device };
  const r = loadOurs(device);
  if (!r.ok) throw new Error(r.reason);
  const { kg } = r.ours;
  const dev = r.ours.device;
  const recipe = RECIPES.fast;
  const mnist = kg.data.loadMnist();
  const train = new kg.data.DataLoader(kg.data.mnistDataset(mnist.train), { batchSize: recipe.batchSize, shuffle: true, seed: RACE.seed, device: dev });
  const test = new kg.data.DataLoader(kg.data.mnistDataset(mnist.test), { batchSize: RACE.evalBatch, device: dev });
  const model = kg.models.fastCnn({ device: dev, seed: RACE.seed });
  const optimizer = new kg.optim.Adam(model.parameters(), { lr: recipe.lr });
  const perEpoch = kg.train.stepsPerEpoch(train);
  const schedule = kg.optim.schedules.oneCycle({ maxLr: recipe.lr, steps: recipe.epochs * perEpoch });
  const evals: Array<{ step: number; accuracy: number; ms: number }> = [];
  let step = 0;
  const t0 = nowMs();
  for (let epoch = 0; epoch < recipe.epochs; epoch++) {
    for (const b of train.batches(epoch)) {
      optimizer.lr = schedule(step++);
      kg.train.trainStep(model, optimizer, b.x, b.y, 'mean');
      b.x.dispose();
      b.y.dispose();
      // As fit() does: finalizers of collected tensors run between event-loop turns.
      await new Promise((resolve) => setImmediate(resolve));
    }
    const accuracy = kg.train.evaluateAccuracy(model, test);
    evals.push({ step, accuracy, ms: nowMs() - t0 });
    if (accuracy >= RACE.target) break;
  }
  const reached = evals.find((e) => e.accuracy >= RACE.target);
  process.stdout.write(`RESULT ${JSON.stringify({ reached: reached ?? null, evals, steps: step })}\n`);
}

main().catch((e) => {
  process.stdout.write(`RESULT ${JSON.stringify({ error: e instanceof Error ? e.message : String(e) })}\n`);
  process.exitCode = 1;
});
