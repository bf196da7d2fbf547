// Host memory of synchronous training loops, which never let the event loop turn: the addon's
// finalizers must run during garbage collection, not from the event loop, or every tensor's
// wrapper (and, without tidy, its memory) stays until the loop ends.
//
// usage: node -r ts-node/register/transpile-only memory-child.js TIDY_STEPS PLAIN_STEPS
// prints JSON: { tidyGrowthMB, plainGrowthMB }
'use strict';
const path = require('path');
const kg = require(path.join(__dirname, '..', '..', 'lib'));

const [tidySteps, plainSteps] = process.argv.slice(2).map(Number);
const rss = () => process.memoryUsage().rss / 2 ** 20;

function setup(batch) {
  const model = kg.models.bnCnn({ device: 'cpu', seed: 1 });
  const sgd = new kg.optim.SGD(model.parameters(), { lr: 0.001 });
  const x = kg.rand([batch, 1, 28, 28], { seed: 2, device: 'cpu' });
  const y = kg.tensor(Float32Array.from({ length: batch }, (_, i) => i % 10), [batch], { device: 'cpu' });
  return { model, sgd, x, y };
}

// The tutorial's step (tidy'd); growth measured after a warm-up of a fifth of the steps.
const t = setup(4);
let warm = 0;
for (let i = 0; i < tidySteps; i++) {
  kg.train.trainStep(t.model, t.sgd, t.x, t.y);
  if (i === Math.floor(tidySteps / 5)) warm = rss();
}
const tidyGrowthMB = rss() - warm;

// The same step without tidy: nothing is disposed, the garbage collector must free it all.
const p = setup(16);
const before = rss();
let peak = before;
for (let i = 0; i < plainSteps; i++) {
  p.sgd.zeroGrad();
  const loss = kg.autograd.record(() => kg.nn.functional.softmaxCrossEntropy(p.model.forward(p.x), p.y, { reduction: 'sum' }));
  kg.autograd.backward(loss);
  p.sgd.step();
  loss.item();
  peak = Math.max(peak, rss());
}
process.stdout.write(JSON.stringify({ tidyGrowthMB, plainGrowthMB: peak - before }));
