import { AccuracyCounter, formatEpochLine, MovingAverage } from '../../lib/train/metrics';
import { trainingPlotSpec } from '../../lib/train/plot';

describe('metrics', () => {
  test("the tutorial's moving average: first value as is, then .99/.01", () => {
    const m = new MovingAverage();
    expect(Number.isNaN(m.value)).toBe(true);
    expect(m.update(2)).toBe(2);
    expect(m.update(1)).toBeCloseTo(0.99 * 2 + 0.01 * 1, 12);
    m.reset();
    expect(m.update(5)).toBe(5);
  });

  test('accuracy counter', () => {
    const c = new AccuracyCounter();
    c.update([1, 2, 3], Float32Array.from([1, 0, 3]));
    c.update([4], [4]);
    expect(c.value).toBe(0.75);
    expect(() => c.update([1], [1, 2])).toThrow(/1 predictions for 2 labels/);
  });

  test("the tutorial's epoch line", () => {
    expect(formatEpochLine({ epoch: 0, loss: 0.0604, trainAccuracy: 0.988017, testAccuracy: 0.9883 })).toBe(
      'Epoch 0. Loss: 0.0604, Train_acc 0.988017, Test_acc 0.9883',
    );
  });

  test('plot spec: loss and accuracy panels with every epoch', () => {
    const epochs = [0, 1].map((e) => ({ epoch: e, loss: 0.1, trainAccuracy: 0.9, testAccuracy: 0.8, seconds: 1, imagesPerSecond: 1, device: 'cpu' }));
    const spec = trainingPlotSpec(epochs) as { hconcat: Array<{ title: string; data: { values: unknown[] } }> };
    expect(spec.hconcat.map((p) => p.title)).toEqual(['Loss', 'Accuracy']);
    expect(spec.hconcat[0].data.values).toHaveLength(2);
    expect(spec.hconcat[1].data.values).toHaveLength(4);
  });
});
