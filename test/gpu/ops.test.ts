// Every op and its gradient on the GPU against the CPU engine, on shapes that include odd sizes,
// sizes that are not multiples of the kernels' tiles and vector widths, and degenerate ones.
// Forward values agree to a relative 1e-5 and gradients to 1e-4 (atol: the same fraction of the
// tensor's largest value, for entries that cancel to near zero).
import * as kg from '../../lib';
import { SGD } from '../../lib/optim/sgd';
import { GROUPED_CONV_CASES, conv2dCase } from '../helpers/conv-cases';
import { checkOp } from '../helpers/gradcheck';
import { bitwiseEqual, describeGpu, expectSameOnDevices, input, mismatch, normal, runOn } from './helpers';

const F = kg.nn.functional;

describeGpu('GPU vs CPU: matmul and linear', () => {
  const shapes: Array<[number, number, number]> = [
    [1, 1, 1], [3, 5, 7], [17, 33, 65], [64, 784, 128], [129, 257, 63], [2, 3000, 5], [300, 1, 2],
  ];
  test.each(shapes)('matmul (%i x %i) @ (%i x n)', (m, k, n) => {
    expectSameOnDevices([input([m, k], 1), input([k, n], 2)], ([a, b]) => a.matmul(b));
  });

  test('linear with bias, and without', () => {
    expectSameOnDevices([input([37, 50], 3), input([19, 50], 4), input([19], 5)], ([x, w, b]) => F.linear(x, w, b));
    expectSameOnDevices([input([8, 3], 6), input([5, 3], 7)], ([x, w]) => F.linear(x, w));
  });
});

describeGpu('GPU vs CPU: broadcasting arithmetic', () => {
  const cases: Array<[number[], number[]]> = [
    [[3, 4, 5], [3, 4, 5]], [[64, 10], [10]], [[64, 1], [1, 10]], [[2, 1, 3], [4, 1]], [[7], [1]],
    [[1], [9]], [[2, 3, 1, 5, 1, 3], [1, 3, 4, 1, 2, 3]], [[1001], [1001]], [[5, 1, 7], [7]],
  ];
  test.each(cases)('add, sub, mul, div: %j with %j', (as, bs) => {
    const a = input(as, 11);
    const b = input(bs, 12, { low: 0.5, high: 2 }); // divisors away from zero
    expectSameOnDevices([a, b], ([x, y]) => x.add(y));
    expectSameOnDevices([a, b], ([x, y]) => x.sub(y));
    expectSameOnDevices([a, b], ([x, y]) => x.mul(y));
    expectSameOnDevices([a, b], ([x, y]) => x.div(y));
  });

  test('with numbers, negation and scaling', () => {
    const a = input([33, 17], 13);
    expectSameOnDevices([a], ([x]) => x.add(2).mul(-3).div(7).sub(1));
    expectSameOnDevices([a], ([x]) => x.neg().scale(0.25));
  });
});

describeGpu('GPU vs CPU: reductions and reshapes', () => {
  test.each([
    [[7, 13, 5], undefined], [[7, 13, 5], 0], [[7, 13, 5], 1], [[7, 13, 5], 2], [[7, 13, 5], [0, 2]],
    [[1000, 3], 0], [[3, 1000], 1], [[2, 1, 4], 1],
  ] as Array<[number[], number | number[] | undefined]>)('sum and mean of %j over %j', (shape, axes) => {
    expectSameOnDevices([input(shape, 21)], ([x]) => x.sum(axes));
    expectSameOnDevices([input(shape, 22)], ([x]) => x.mean(axes));
  });

  test('a full sum of 3 million values (two-stage reduction)', () => {
    const x = input([3_000_000], 23);
    x.values = x.values.map((v) => v + 0.3); // a sum far from zero, so 1e-5 relative is meaningful
    expectSameOnDevices([x], ([t]) => t.sum(), 1e-5, 1e-4);
  });

  test('reshape and flatten keep values and route gradients', () => {
    expectSameOnDevices([input([4, 3, 5, 2], 24)], ([x]) => x.reshape([12, 10]).mul(x.reshape([12, 10])));
    expectSameOnDevices([input([4, 3, 5, 2], 25)], ([x]) => x.flatten().relu());
  });
});

describeGpu('GPU vs CPU: relu, conv2d, avgPool2d', () => {
  test('relu', () => {
    expectSameOnDevices([input([1001], 31)], ([x]) => F.relu(x));
    expectSameOnDevices([input([4, 5, 6, 7], 32)], ([x]) => x.relu());
  });

  const convs: Array<[number[], number[], number | [number, number], number | [number, number], boolean]> = [
    [[2, 3, 7, 9], [4, 3, 3, 3], 1, 1, true],
    [[2, 3, 8, 8], [5, 3, 2, 2], 2, 0, false],
    [[3, 5, 11, 13], [6, 5, 5, 5], [2, 3], [2, 1], true],
    [[4, 7, 6, 5], [3, 7, 1, 1], 1, 0, true], // 1x1: the no-im2col path
    [[16, 20, 12, 12], [50, 20, 5, 5], 1, 0, true], // the tutorial's second layer
    [[8, 1, 28, 28], [20, 1, 3, 3], 1, 0, true], // and its first
    [[1, 1, 1, 1], [1, 1, 1, 1], 1, 0, true],
  ];
  test.each(convs)('conv2d x %j w %j stride %j padding %j bias %s', (xs, ws, stride, padding, bias) => {
    const inputs = [input(xs, 41), input(ws, 42)];
    if (bias) inputs.push(input([ws[0]], 43));
    expectSameOnDevices(inputs, ([x, w, b]) => F.conv2d(x, w, b ?? null, { stride, padding }));
  });

  // Grouped: fewer groups than samples (one batched GEMM per group) and more (one per sample),
  // depthwise, 1x1 (no im2col), and the tutorial's second layer split into 10 groups.
  const groupedConvs: Array<[number[], number[], number | [number, number], number | [number, number], number]> = [
    [[5, 6, 9, 7], [9, 2, 3, 3], 1, 1, 3],
    [[1, 6, 9, 7], [4, 3, 3, 2], [2, 1], [1, 0], 2],
    [[3, 8, 10, 11], [8, 1, 3, 3], [1, 2], 1, 8],
    [[2, 5, 7, 7], [10, 1, 5, 5], 2, 2, 5],
    [[4, 6, 5, 6], [9, 2, 1, 1], 1, 0, 3],
    [[16, 20, 12, 12], [50, 2, 5, 5], 1, 0, 10],
  ];
  test.each(groupedConvs)('conv2d x %j w %j stride %j padding %j groups %i', (xs, ws, stride, padding, groups) => {
    const inputs = [input(xs, 44), input(ws, 45), input([ws[0]], 46)];
    expectSameOnDevices(inputs, ([x, w, b]) => F.conv2d(x, w, b, { stride, padding, groups }));
  });
  test.each(GROUPED_CONV_CASES.map((p) => [p]))('conv2d grouped %j against the float64 reference', (p) => {
    checkOp({ ...conv2dCase(p), device: 'cuda' });
  });

  test.each([
    [[2, 3, 8, 8], 2, 2], [[2, 3, 9, 7], 3, 2], [[1, 2, 6, 6], 3, 1], [[2, 2, 10, 9], 2, 3], [[3, 5, 13, 11], [4, 2], [3, 1]],
  ] as Array<[number[], number | [number, number], number | [number, number]]>)(
    'avgPool2d x %j kernel %j stride %j (overlapping windows too)',
    (xs, kernelSize, stride) => {
      expectSameOnDevices([input(xs, 51)], ([x]) => F.avgPool2d(x, { kernelSize, stride }));
    },
  );
});

describeGpu('GPU vs CPU: loss, argmax', () => {
  test.each([[64, 10], [5, 3000], [1, 1], [33, 1025], [1000, 7]])('softmaxCrossEntropy (%i x %i)', (n, k) => {
    const labels = Array.from({ length: n }, (_, i) => (i * 7) % k);
    const logits = input([n, k], 61);
    logits.values = logits.values.map((v) => 3 * v);
    expectSameOnDevices([logits], ([x]) => F.softmaxCrossEntropy(x, labels));
    expectSameOnDevices([logits], ([x]) => F.softmaxCrossEntropy(x, labels, { reduction: 'mean' }));
  });

  test('argmax takes the first maximum', () => {
    const values = normal(5 * 2000, 62);
    values[3] = values[7] = 50; // row 0: a tie, index 3 wins
    values[2000 + 1999] = 60;
    const cpu = kg.tensor(values, [5, 2000], { device: 'cpu' }).argmax().toArray();
    const cuda = kg.tensor(values, [5, 2000], { device: 'cuda' }).argmax().toArray();
    expect(Array.from(cuda)).toEqual(Array.from(cpu));
    expect(cuda[0]).toBe(3);
    expect(cuda[1]).toBe(1999);
    const small = kg.tensor([1, 5, 5, 2, 0, -1], [2, 3], { device: 'cuda' }).argmax().toArray();
    expect(Array.from(small)).toEqual([1, 0]);
  });
});

describeGpu('GPU vs CPU: batch norm', () => {
  // One argument per case (a bare list of shapes would be spread into the test's arguments).
  const shapes = [[64, 20, 26, 26], [64, 50, 9, 9], [64, 128], [7, 3, 5, 1], [3, 10], [33, 7, 6, 6], [4, 5, 1, 2]].map((s) => [s]);
  test.each(shapes)('training forward and backward, x %j', (shape) => {
    const c = shape[1];
    const x = input(shape, 71);
    x.values = x.values.map((v) => 2 * v + 0.5);
    const gamma = input([c], 72, { low: 0.5, high: 1.5 });
    const beta = input([c], 73);
    expectSameOnDevices([x, gamma, beta], ([t, g, b]) => F.pureBatchNorm(t, g, b));
  });

  test.each(shapes)('inference forward and backward, x %j', (shape) => {
    const c = shape[1];
    const mean = input([c], 74, { grad: false });
    const variance = input([c], 75, { low: 0.5, high: 2, grad: false });
    expectSameOnDevices(
      [input(shape, 76), input([c], 77, { low: 0.5, high: 1.5 }), input([c], 78), mean, variance],
      ([t, g, b, m, v]) => F.batchNorm(t, g, b, { training: false, runningMean: m, runningVar: v }),
    );
  });
});

describeGpu('GPU vs CPU: creation, copies, SGD', () => {
  test('zeros, ones, full, to() round trips', () => {
    expect(Array.from(kg.zeros([3], { device: 'cuda' }).toArray())).toEqual([0, 0, 0]);
    expect(Array.from(kg.ones([2, 2], { device: 'cuda' }).toArray())).toEqual([1, 1, 1, 1]);
    expect(Array.from(kg.full([5], -2.5, { device: 'cuda' }).toArray())).toEqual([-2.5, -2.5, -2.5, -2.5, -2.5]);
    const v = normal(1003, 81);
    const t = kg.tensor(v, [1003], { device: 'cuda' });
    expect(t.device).toBe('cuda');
    expect(bitwiseEqual(t.to('cpu').toArray(), v)).toBe(true);
    expect(bitwiseEqual(t.to('cpu').to('cuda').toArray(), v)).toBe(true);
    expect(kg.tensor([4.5], [], { device: 'cuda' }).item()).toBe(4.5);
  });

  test('an SGD step with momentum and weight decay', () => {
    const run = (device: kg.Device) => {
      const p = kg.tensor(normal(1001, 82), [1001], { device }).attachGrad();
      const opt = new SGD([p], { lr: 0.01, momentum: 0.9, weightDecay: 1e-4 });
      for (let i = 0; i < 3; i++) {
        kg.tidy(() => {
          opt.zeroGrad();
          const loss = kg.autograd.record(() => p.mul(p).sum());
          loss.backward();
          opt.step();
        });
      }
      return p.toArray();
    };
    expect(mismatch(run('cuda'), run('cpu'), 1e-5)).toBeNull();
  });

  test('a small network end to end: loss and every parameter gradient', () => {
    const x = input([8, 1, 8, 8], 91, { grad: false });
    const labels = Array.from({ length: 8 }, (_, i) => i % 10);
    // No bias on the convolution: batch norm right after it removes any per-channel constant, so
    // that gradient is exactly zero and both engines would only return rounding noise.
    const params = [
      input([4, 1, 3, 3], 92), input([4], 98, { low: 0.5, high: 1.5 }), input([4], 99),
      input([16, 36], 94), input([16], 95), input([10, 16], 96), input([10], 97),
    ];
    const net = ([t, w1, g, b, w2, b2, w3, b3]: kg.Tensor[]) => {
      let h = F.conv2d(t, w1);
      h = F.relu(F.pureBatchNorm(h, g, b));
      h = F.avgPool2d(h, { kernelSize: 2 }).reshape([8, 36]);
      h = F.relu(F.linear(h, w2, b2));
      return F.softmaxCrossEntropy(F.linear(h, w3, b3), labels, { reduction: 'sum' });
    };
    const r = expectSameOnDevices([x, ...params], net);
    expect(r.out.every(Number.isFinite)).toBe(true);
    // And the same computation twice on the GPU is bitwise the same.
    const again = runOn('cuda', [x, ...params], net);
    expect(bitwiseEqual(again.out, r.out)).toBe(true);
    again.grads.forEach((g, i) => {
      if (g) expect(bitwiseEqual(g, r.grads[i] as Float32Array)).toBe(true);
    });
  });
});
