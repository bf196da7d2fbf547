// Every differentiable op, forward and gradient, against its float64 reference on random inputs
// with odd sizes.
import * as kg from '../../lib';
import { GROUPED_CONV_CASES, conv2dCase } from '../helpers/conv-cases';
import { checkOp } from '../helpers/gradcheck';
import * as ref from '../helpers/reference';

const F = kg.nn.functional;

describe('elementwise ops with broadcasting', () => {
  const cases: Array<[string, number[], number[]]> = [
    ['same shape', [3, 5], [3, 5]],
    ['row vector', [4, 7], [7]],
    ['channel', [2, 3, 5, 4], [1, 3, 1, 1]],
    ['both sides', [3, 1], [1, 5]],
    ['scalar tensor', [2, 3], []],
  ];
  const ops: Array<[string, (a: kg.Tensor, b: kg.Tensor) => kg.Tensor, (x: number, y: number) => number]> = [
    ['add', kg.add, (x, y) => x + y],
    ['sub', kg.sub, (x, y) => x - y],
    ['mul', kg.mul, (x, y) => x * y],
    ['div', kg.div, (x, y) => x / y],
  ];
  for (const [opName, ours, f] of ops) {
    for (const [caseName, as, bs] of cases) {
      test(`${opName}: ${caseName} ${JSON.stringify(as)} ${JSON.stringify(bs)}`, () => {
        const denominator = opName === 'div' ? Float32Array.from({ length: ref.numel(bs) }, (_, i) => 0.5 + ((i * 7) % 5) * 0.3) : undefined;
        checkOp({
          inputs: [{ shape: as }, { shape: bs, values: denominator }],
          ours: ([a, b]) => ours(a, b),
          ref: ([a, b]) => ref.binary(f, a, as, b, bs),
        });
      });
    }
  }

  test('number operands and scale', () => {
    checkOp({
      inputs: [{ shape: [3, 4] }],
      ours: ([a]) => a.mul(3).add(1).scale(-0.5).sub(2).div(4),
      ref: ([a]) => a.map((v) => ((v * 3 + 1) * -0.5 - 2) / 4),
    });
  });
});

describe('reductions and shapes', () => {
  const shape = [3, 4, 5];
  for (const axes of [[0], [1], [2], [0, 2], [1, 2], [0, 1, 2]]) {
    test(`sum over ${JSON.stringify(axes)}`, () => {
      checkOp({ inputs: [{ shape }], ours: ([x]) => x.sum(axes), ref: ([x]) => ref.sumAxes(x, shape, axes) });
    });
  }
  test('mean over all, keepDims over an axis', () => {
    checkOp({ inputs: [{ shape }], ours: ([x]) => x.mean(), ref: ([x]) => Float64Array.of(x.reduce((a, b) => a + b, 0) / x.length) });
    checkOp({
      inputs: [{ shape }],
      ours: ([x]) => x.mean(1, { keepDims: true }).mul(x),
      ref: ([x]) => ref.binary((a, b) => a * b, ref.sumAxes(x, shape, [1]).map((v) => v / 4), [3, 1, 5], x, shape),
    });
  });
  test('reshape, flatten and broadcastTo', () => {
    checkOp({
      inputs: [{ shape: [2, 3, 2, 2] }, { shape: [2, 12] }],
      ours: ([x, w]) => x.flatten().mul(w).reshape([4, 6]),
      ref: ([x, w]) => x.map((v, i) => v * w[i]),
    });
    checkOp({
      inputs: [{ shape: [3, 1] }],
      ours: ([x]) => kg.broadcastTo(x, [2, 3, 4]),
      ref: ([x]) => ref.binary((a) => a, x, [3, 1], new Float64Array(24), [2, 3, 4]),
    });
  });
});

describe('matrix products', () => {
  test('matmul with odd sizes', () => {
    checkOp({ inputs: [{ shape: [5, 7] }, { shape: [7, 3] }], ours: ([a, b]) => a.matmul(b), ref: ([a, b]) => ref.matmul(a, b, 5, 7, 3) });
  });
  test('linear with and without bias', () => {
    checkOp({
      inputs: [{ shape: [6, 9] }, { shape: [4, 9] }, { shape: [4] }],
      ours: ([x, w, b]) => F.linear(x, w, b),
      ref: ([x, w, b]) => ref.linear(x, w, b, 6, 9, 4),
    });
    checkOp({ inputs: [{ shape: [1, 3] }, { shape: [2, 3] }], ours: ([x, w]) => F.linear(x, w), ref: ([x, w]) => ref.linear(x, w, null, 1, 3, 2) });
  });
});

describe('convolution and pooling', () => {
  const convCases: ref.ConvParams[] = [
    { n: 2, c: 3, h: 7, w: 6, k: 4, kh: 3, kw: 3, sh: 1, sw: 1, ph: 0, pw: 0 },
    { n: 1, c: 2, h: 9, w: 8, k: 3, kh: 5, kw: 3, sh: 2, sw: 1, ph: 1, pw: 2 },
    { n: 3, c: 1, h: 5, w: 5, k: 2, kh: 1, kw: 1, sh: 1, sw: 1, ph: 0, pw: 0 },
    { n: 2, c: 2, h: 6, w: 7, k: 3, kh: 3, kw: 2, sh: 3, sw: 2, ph: 2, pw: 1 },
  ];
  for (const p of convCases) {
    test(`conv2d ${JSON.stringify(p)}`, () => checkOp(conv2dCase(p)));
  }
  test.each(GROUPED_CONV_CASES.map((p) => [p]))('conv2d grouped %j', (p) => checkOp(conv2dCase(p)));
  test('conv2d grouped, without bias', () => checkOp(conv2dCase(GROUPED_CONV_CASES[0], false)));
  test('conv2d without bias', () => {
    const p = convCases[0];
    checkOp({
      inputs: [{ shape: [p.n, p.c, p.h, p.w] }, { shape: [p.k, p.c, p.kh, p.kw] }],
      ours: ([x, w]) => F.conv2d(x, w),
      ref: ([x, w]) => ref.conv2d(x, w, null, p),
    });
  });
  for (const [h, w, k, s] of [[6, 6, 2, 2], [7, 5, 3, 2], [9, 9, 2, 2], [5, 6, 3, 1]]) {
    test(`avgPool2d ${h}x${w} window ${k} stride ${s}`, () => {
      checkOp({
        inputs: [{ shape: [2, 3, h, w] }],
        ours: ([x]) => F.avgPool2d(x, { kernelSize: k, stride: s }),
        ref: ([x]) => ref.avgPool2d(x, 2, 3, h, w, k, k, s, s),
      });
    });
  }
});

describe('activation and loss', () => {
  test('relu (inputs kept away from the kink)', () => {
    const values = Float32Array.from({ length: 35 }, (_, i) => (i % 2 ? 1 : -1) * (0.1 + ((i * 13) % 7) * 0.3));
    checkOp({ inputs: [{ shape: [5, 7], values }], ours: ([x]) => F.relu(x), ref: ([x]) => x.map((v) => Math.max(v, 0)) });
  });
  const labels = [3, 0, 6, 2, 6];
  for (const reduction of ['none', 'sum', 'mean'] as const) {
    test(`softmaxCrossEntropy reduction ${reduction}`, () => {
      checkOp({
        inputs: [{ shape: [5, 7] }],
        ours: ([x]) => F.softmaxCrossEntropy(x, labels, { reduction }),
        ref: ([x]) => {
          const l = ref.softmaxCrossEntropy(x, labels, 5, 7);
          const total = l.reduce((a, b) => a + b, 0);
          return reduction === 'none' ? l : Float64Array.of(reduction === 'sum' ? total : total / 5);
        },
      });
    });
  }
  for (const reduction of ['sum', 'mean'] as const) {
    test(`softmaxCrossEntropy reduction ${reduction}: backward() from the loss takes the gradient the forward wrote, the same bits as for a headGrad of 1`, () => {
      const values = kg.randn([5, 7], { seed: 12 }).toArray();
      const gradient = (head?: kg.Tensor) => {
        const x = kg.tensor(values, [5, 7]).attachGrad();
        const loss = kg.autograd.record(() => F.softmaxCrossEntropy(x, labels, { reduction }));
        kg.autograd.backward(loss, head);
        return x.grad!.toArray();
      };
      const fromForward = gradient();
      const fromBackward = gradient(kg.tensor([1], []));
      expect(Buffer.from(fromForward.buffer).equals(Buffer.from(fromBackward.buffer))).toBe(true);
      const twice = gradient(kg.tensor([2], []));
      fromForward.forEach((g, i) => expect(twice[i]).toBe(2 * g));
    });
  }
});

describe('batch norm', () => {
  const shapes: number[][] = [[5, 3], [7, 1], [2, 3, 5, 3], [3, 4, 1, 1], [1, 2, 3, 3]];
  for (const shape of shapes) {
    const [n, c] = shape;
    const l = shape.length === 4 ? shape[2] * shape[3] : 1;
    test(`training ${JSON.stringify(shape)}`, () => {
      checkOp({
        inputs: [{ shape }, { shape: [c] }, { shape: [c] }],
        ours: ([x, g, b]) => F.batchNorm(x, g, b, { training: true }),
        ref: ([x, g, b]) => ref.batchNormTrain(x, g, b, n, c, l, 1e-5).y,
        gradRtol: 2e-4,
      });
    });
    test(`inference ${JSON.stringify(shape)}`, () => {
      const mean = Float32Array.from({ length: c }, (_, i) => 0.3 * i - 0.2);
      const variance = Float32Array.from({ length: c }, (_, i) => 0.5 + i);
      checkOp({
        inputs: [{ shape }, { shape: [c] }, { shape: [c] }],
        ours: ([x, g, b]) => F.batchNorm(x, g, b, { training: false, runningMean: kg.tensor(mean), runningVar: kg.tensor(variance) }),
        ref: ([x, g, b]) => ref.batchNormInfer(x, g, b, Float64Array.from(mean), Float64Array.from(variance), n, c, l, 1e-5),
      });
    });
  }
});

test('a composite: the same tensor used twice sums its gradients', () => {
  checkOp({
    inputs: [{ shape: [4, 3] }, { shape: [3, 3] }],
    ours: ([x, w]) => F.relu(x.matmul(w)).add(x).mul(x).sum(1),
    ref: ([x, w]) => {
      const h = ref.matmul(x, w, 4, 3, 3).map((v) => Math.max(v, 0));
      const y = h.map((v, i) => (v + x[i]) * x[i]);
      return ref.sumAxes(y, [4, 3], [1]);
    },
  });
});
