// Runs STEPS synchronous training steps, each in kg.tidy (trainStep's), without ever returning to
// the event loop, and prints the RSS after WARM steps and at the end as JSON.
//
// usage: node -r ts-node/register/transpile-only rss-child.ts STEPS WARM
import * as kg from '../../lib';

const [steps, warm] = process.argv.slice(2).map(Number);
// Small enough for milliseconds a step, with every kind of layer of the tutorial's network: what
// leaks is per tensor, not per byte.
const model = new kg.nn.Sequential([
  ['conv', new kg.nn.Conv2d(1, 4, 3, { seed: 1 })],
  ['bn1', new kg.nn.BatchNorm(4)],
  ['relu1', new kg.nn.ReLU()],
  ['pool', new kg.nn.AvgPool2d(2)],
  ['flatten', new kg.nn.Flatten()],
  ['fc1', new kg.nn.Linear(36, 12, { seed: 2 })],
  ['bn2', new kg.nn.BatchNorm(12)],
  ['relu2', new kg.nn.ReLU()],
  ['fc2', new kg.nn.Linear(12, 3, { seed: 3 })],
]);
const sgd = new kg.optim.SGD(model.parameters(), { lr: 0.001, momentum: 0.9 });
const x = kg.rand([8, 1, 8, 8], { seed: 4, device: 'cpu' });
const y = kg.tensor(Float32Array.from({ length: 8 }, (_, i) => i % 3), [8], { device: 'cpu' });
let rssWarm = 0;
const start = Date.now();
for (let i = 1; i <= steps; i++) {
  kg.train.trainStep(model, sgd, x, y);
  if (i === warm) rssWarm = process.memoryUsage().rss;
}
const ms = (Date.now() - start) / steps;
process.stdout.write(JSON.stringify({ rssWarm, rssEnd: process.memoryUsage().rss, msPerStep: ms }) + '\n');
