// Host memory stays flat over many training steps: every temporary is freed and its memory reused.
// (glibc's memalign'd blocks once made the heap grow by a whole step's worth per step.)
import * as kg from '../../lib';

test('RSS does not grow over 200 CPU training steps on one batch', () => {
  const model = kg.models.bnCnn({ device: 'cpu', seed: 1 });
  const sgd = new kg.optim.SGD(model.parameters(), { lr: 0.001 });
  const x = kg.rand([64, 1, 28, 28], { seed: 2, device: 'cpu' });
  const y = kg.tensor(Float32Array.from({ length: 64 }, (_, i) => i % 10), [64], { device: 'cpu' });
  let warm = 0;
  for (let i = 0; i < 200; i++) {
    kg.train.trainStep(model, sgd, x, y);
    if (i === 50) warm = process.memoryUsage().rss;
  }
  const growth = (process.memoryUsage().rss - warm) / 2 ** 20;
  // One leaked step is ~20 MiB; 150 of them would be ~3 GiB.
  expect(growth).toBeLessThan(64);
});
