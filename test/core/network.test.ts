// A tiny conv-BN-relu-pool-dense network learns a fixed random batch: the loss falls with SGD.
import * as kg from '../../lib';

const F = kg.nn.functional;

test('the loss of conv-BN-relu-pool-dense falls over a few SGD steps on random data', () => {
  const x = kg.randn([16, 1, 8, 8], { seed: 1 });
  const labels = Array.from({ length: 16 }, (_, i) => (i * 7) % 4);
  const conv = kg.randn([6, 1, 3, 3], { seed: 2, std: 0.3 }).attachGrad();
  const convBias = kg.zeros([6]).attachGrad();
  const bn = new kg.nn.BatchNorm(6);
  const dense = kg.randn([4, 6 * 3 * 3], { seed: 3, std: 0.1 }).attachGrad();
  const denseBias = kg.zeros([4]).attachGrad();
  const params = [conv, convBias, dense, denseBias, ...bn.parameters()];

  const losses: number[] = [];
  for (let step = 0; step < 30; step++) {
    kg.tidy(() => {
      const loss = kg.autograd.record(() => {
        const h = F.avgPool2d(F.relu(bn.forward(F.conv2d(x, conv, convBias))), { kernelSize: 2 });
        return F.softmaxCrossEntropy(F.linear(F.flatten(h), dense, denseBias), labels, { reduction: 'mean' });
      });
      losses.push(loss.item());
      loss.backward();
      for (const p of params) {
        p.copy_(p.sub(p.grad!.mul(0.5)));
        p.grad = null;
      }
    });
  }
  expect(losses.every(Number.isFinite)).toBe(true);
  expect(losses[losses.length - 1]).toBeLessThan(0.5 * losses[0]);
  // Inference mode uses the moving statistics and still classifies the batch it learned.
  bn.eval();
  const h = F.avgPool2d(F.relu(bn.forward(F.conv2d(x, conv, convBias))), { kernelSize: 2 });
  const predictions = F.linear(F.flatten(h), dense, denseBias).argmax().toArray();
  const correct = labels.filter((l, i) => predictions[i] === l).length;
  expect(correct).toBeGreaterThanOrEqual(12);
});
