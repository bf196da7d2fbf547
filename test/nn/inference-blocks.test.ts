// Fused inference blocks: a Sequential on the CPU runs Conv2d [-> BatchNorm in inference form]
// [-> ReLU] [-> AvgPool2d], and Linear [-> BatchNorm] [-> ReLU], as one native call each
// (lib/nn/inference-blocks.ts). Checked here: bitwise
// equal to the layers run one by one, close to a float64 reference, chunk and thread counts
// changing nothing, the fusion staying out of the way of gradients and of training-mode batch
// norm, and errors that still name the layer that raises them.
import * as kg from '../../lib';
import { native } from '../../lib/native';
import * as chainOps from '../../lib/ops/inference-chain';
import {
  avgPoolForwardRef, bitwiseEqual, bnNormalizeRef, conv2dForwardRef, convOut, disposeAll, empty, expectClose, gemmRef, Rng, store, withThreads,
} from '../native/reference';

interface Case {
  n: number; c: number; h: number; w: number; k: number; kh: number; kw: number;
  stride: number; padding: number; groups?: number;
  bn: 'affine' | 'plain' | null;
  relu: boolean;
  pool: [number, number, number, number] | null; // kh, kw, sh, sw
}

const base = { stride: 1, padding: 0, bn: 'affine', relu: true } as const;
const CASES: Array<[string, Case]> = [
  ['the tutorial\'s first block (one input channel, 3x3)', { ...base, n: 5, c: 1, h: 28, w: 28, k: 20, kh: 3, kw: 3, pool: [2, 2, 2, 2] }],
  ['the tutorial\'s second block (9x9 map pooled from its first 8x8)', { ...base, n: 3, c: 20, h: 13, w: 13, k: 50, kh: 5, kw: 5, pool: [2, 2, 2, 2] }],
  ['odd sizes, stride and padding, 3x3 pool at stride 2', { ...base, n: 7, c: 3, h: 17, w: 11, k: 5, kh: 3, kw: 2, stride: 2, padding: 1, pool: [3, 3, 2, 2] }],
  ['overlapping 2x2 windows at stride 1', { ...base, n: 2, c: 4, h: 9, w: 10, k: 7, kh: 3, kw: 3, pool: [2, 2, 1, 1] }],
  ['batch norm without affine parameters, no ReLU', { ...base, n: 4, c: 2, h: 8, w: 9, k: 3, kh: 2, kw: 2, bn: 'plain', relu: false, pool: [2, 2, 2, 2] }],
  ['no batch norm: conv, ReLU, pool', { ...base, n: 3, c: 3, h: 10, w: 7, k: 6, kh: 3, kw: 3, bn: null, pool: [2, 3, 2, 1] }],
  ['no pool: conv, batch norm, ReLU', { ...base, n: 3, c: 2, h: 6, w: 9, k: 4, kh: 3, kw: 3, pool: null }],
  ['grouped (3 groups) and depthwise-sized channels', { ...base, n: 4, c: 6, h: 11, w: 10, k: 9, kh: 3, kw: 3, groups: 3, pool: [2, 2, 2, 2] }],
  ['a batch of one', { ...base, n: 1, c: 1, h: 28, w: 28, k: 20, kh: 5, kw: 5, pool: [2, 2, 2, 2] }],
  ['many chunks (one L2-sized chunk holds 4 samples)', { ...base, n: 37, c: 2, h: 32, w: 32, k: 16, kh: 3, kw: 3, pool: [2, 2, 2, 2] }],
];

interface Built {
  model: kg.nn.Sequential;
  x: kg.Tensor;
  params: { w: Float32Array; b: Float32Array; gamma: Float32Array; beta: Float32Array; mean: Float32Array; variance: Float32Array };
  eps: number;
}

function build(cs: Case, seed: number): Built {
  const rng = new Rng(seed);
  const groups = cs.groups ?? 1;
  const conv = new kg.nn.Conv2d(cs.c, cs.k, [cs.kh, cs.kw], { stride: cs.stride, padding: cs.padding, groups, seed });
  const params = {
    w: rng.array((cs.k * cs.c * cs.kh * cs.kw) / groups, -0.5, 0.5),
    b: rng.array(cs.k, -0.3, 0.3),
    gamma: cs.bn === 'affine' ? rng.array(cs.k, 0.5, 1.5) : new Float32Array(cs.k).fill(1),
    beta: cs.bn === 'affine' ? rng.array(cs.k, -0.5, 0.5) : new Float32Array(cs.k),
    mean: rng.array(cs.k, -0.4, 0.4),
    variance: rng.array(cs.k, 0.2, 2),
  };
  conv.weight.copy_(kg.tensor(params.w, conv.weight.shape));
  conv.bias!.copy_(kg.tensor(params.b, [cs.k]));
  const layers: kg.nn.Module[] = [conv];
  const eps = 1e-3;
  if (cs.bn) {
    const bn = new kg.nn.BatchNorm(cs.k, { eps, affine: cs.bn === 'affine' });
    if (cs.bn === 'affine') {
      bn.gamma.copy_(kg.tensor(params.gamma, [cs.k]));
      bn.beta.copy_(kg.tensor(params.beta, [cs.k]));
    }
    bn.runningMean.copy_(kg.tensor(params.mean, [cs.k]));
    bn.runningVar.copy_(kg.tensor(params.variance, [cs.k]));
    layers.push(bn);
  }
  if (cs.relu) layers.push(new kg.nn.ReLU());
  if (cs.pool) layers.push(new kg.nn.AvgPool2d([cs.pool[0], cs.pool[1]], [cs.pool[2], cs.pool[3]]));
  const model = new kg.nn.Sequential(...layers).eval();
  // Centred near the batch norm's means, so that the ReLU cuts a good share of the values.
  const x = kg.tensor(rng.array(cs.n * cs.c * cs.h * cs.w, -1, 1), [cs.n, cs.c, cs.h, cs.w]);
  return { model, x, params, eps };
}

/** The same layers one at a time (each module's own forward: no fusion of any kind). */
function layerByLayer(model: kg.nn.Sequential, x: kg.Tensor): Float32Array {
  let h = x;
  for (const [, m] of model.children()) h = m.forward(h);
  return h.toArray();
}

/** float64: conv, batch norm, ReLU, pool, with the scale of each output's terms for the tolerance. */
function reference(cs: Case, b: Built): { value: Float64Array; scale: Float64Array } {
  const g = { n: cs.n, c: cs.c, h: cs.h, w: cs.w, k: cs.k, kh: cs.kh, kw: cs.kw, sh: cs.stride, sw: cs.stride, ph: cs.padding, pw: cs.padding, groups: cs.groups };
  const conv = conv2dForwardRef(g, b.x.toArray(), b.params.w, b.params.b);
  const { oh, ow } = convOut(g);
  let value: Float64Array = conv.value;
  // Rounding errors of the convolution pass through batch norm's scale gamma / sqrt(var + eps).
  let scale: Float64Array = conv.scale.map((s, i) => {
    const ch = Math.floor(i / (oh * ow)) % cs.k;
    return cs.bn ? (s * Math.abs(b.params.gamma[ch])) / Math.sqrt(b.params.variance[ch] + b.eps) + Math.abs(b.params.beta[ch]) : s;
  });
  if (cs.bn) value = bnNormalizeRef({ n: cs.n, c: cs.k, l: oh * ow }, value, b.params.gamma, b.params.beta, b.params.mean, b.params.variance, b.eps);
  if (cs.relu) value = value.map((v) => Math.max(v, 0));
  if (cs.pool) {
    const pg = { n: cs.n, c: cs.k, h: oh, w: ow, kh: cs.pool[0], kw: cs.pool[1], sh: cs.pool[2], sw: cs.pool[3] };
    value = avgPoolForwardRef(pg, value);
    scale = avgPoolForwardRef(pg, scale);
  }
  return { value, scale };
}

type BlockCall = 'convBlockInfer' | 'denseBlockInfer' | 'inferenceChain';

function countingBlockCalls(fn: BlockCall = 'convBlockInfer'): { calls: () => number; restore: () => void } {
  const spy = jest.spyOn(native, fn);
  return { calls: () => spy.mock.calls.length, restore: () => spy.mockRestore() };
}

/**
 * model.forward(x), checking that it made the expected block calls and that its result is bitwise
 * that of the layers one by one; returns the result.
 */
function fusedForward(model: kg.nn.Sequential, x: kg.Tensor, expected: Partial<Record<BlockCall, number>>): Float32Array {
  const spies = (Object.keys(expected) as BlockCall[]).map((fn) => [fn, countingBlockCalls(fn)] as const);
  let fused: Float32Array;
  try {
    fused = model.forward(x).toArray();
    expect(Object.fromEntries(spies.map(([fn, spy]) => [fn, spy.calls()]))).toEqual(expected);
  } finally {
    for (const [, spy] of spies) spy.restore();
  }
  expect(bitwiseEqual(fused, layerByLayer(model, x))).toBe(true);
  return fused;
}

describe('fused inference blocks', () => {
  test.each(CASES)('%s: one native call, bitwise the layers one by one, close to float64', (_, cs) => {
    const b = build(cs, 11);
    const fused = fusedForward(b.model, b.x, { convBlockInfer: 1 });
    const ref = reference(cs, b);
    expectClose(fused, ref.value, { rtol: 2e-6, atol: 1e-6, scale: ref.scale }, 'block output');
    if (cs.relu) expect(fused.some((v) => v === 0) && fused.some((v) => v > 0)).toBe(true); // both sides of the kink
  });

  test('the thread count and the chunking change no bit', () => {
    const cs = CASES[CASES.length - 1][1];
    const b = build(cs, 12);
    const one = withThreads(1, () => b.model.forward(b.x).toArray());
    const two = withThreads(2, () => b.model.forward(b.x).toArray());
    expect(bitwiseEqual(one, two)).toBe(true);
    // Sample by sample (each call one chunk of one sample): the same bits as the whole batch.
    for (const s of [0, 17, 36]) {
      const xs = kg.tensor(b.x.toArray().subarray(s * cs.c * cs.h * cs.w, (s + 1) * cs.c * cs.h * cs.w), [1, cs.c, cs.h, cs.w]);
      const ys = b.model.forward(xs).toArray();
      expect(bitwiseEqual(ys, one.subarray(s * ys.length, (s + 1) * ys.length))).toBe(true);
    }
  });

  test('the tutorial\'s network in eval mode runs as one chain of its four blocks, equal to the layers one by one', () => {
    const model = kg.models.bnCnn({ seed: 3, device: 'cpu' });
    kg.tidy(() => model.forward(kg.rand([16, 1, 28, 28], { seed: 4 }))); // moving statistics from a batch
    model.eval();
    fusedForward(model, kg.rand([9, 1, 28, 28], { seed: 5 }), { inferenceChain: 1, convBlockInfer: 0, denseBlockInfer: 0 });
  });

  test('while gradients are recorded the layers run one by one, and gradients flow', () => {
    const b = build(CASES[2][1], 13);
    const x = kg.tensor(b.x.toArray(), b.x.shape).attachGrad();
    const spy = countingBlockCalls();
    try {
      const y = kg.autograd.record(() => b.model.forward(x));
      expect(spy.calls()).toBe(0);
      y.backward(kg.ones(y.shape));
      expect(x.grad).not.toBeNull();
      expect(x.grad!.toArray().some((v) => v !== 0)).toBe(true);
    } finally {
      spy.restore();
    }
  });

  test('a batch norm in training mode normalizes with the batch and updates its statistics: not fused', () => {
    const b = build(CASES[0][1], 14);
    b.model.train();
    const bn = b.model.at(1) as kg.nn.BatchNorm;
    const before = bn.runningMean.toArray();
    const spy = countingBlockCalls();
    try {
      b.model.forward(b.x);
      expect(spy.calls()).toBe(0);
    } finally {
      spy.restore();
    }
    expect(bitwiseEqual(bn.runningMean.toArray(), before)).toBe(false);
  });

  test('a frozen batch norm uses its moving statistics in training mode too: fused, equal to the layers', () => {
    const b = build(CASES[1][1], 15);
    b.model.train();
    (b.model.at(1) as kg.nn.BatchNorm).freeze();
    fusedForward(b.model, b.x, { convBlockInfer: 1 });
  });

  test('a subclass keeps its own forward: not fused', () => {
    class Doubled extends kg.nn.ReLU {
      override forward(x: kg.Tensor): kg.Tensor {
        return kg.mul(super.forward(x), 2);
      }
    }
    const conv = new kg.nn.Conv2d(2, 3, 3, { seed: 1 });
    const model = new kg.nn.Sequential(conv, new Doubled(), new kg.nn.AvgPool2d(2)).eval();
    const x = kg.rand([2, 2, 8, 8], { seed: 2 });
    const y = model.forward(x).toArray();
    expect(bitwiseEqual(y, layerByLayer(model, x))).toBe(true);
  });

  test('bad input gets the error of the layer that raises it', () => {
    const b = build(CASES[0][1], 16);
    expect(() => b.model.forward(kg.rand([2, 3, 28, 28]))).toThrow(/kg\.nn\.functional\.conv2d: x \[2, 3, 28, 28\] has 3 channels, weight \[20, 1, 3, 3\] expects 1/);
    expect(() => b.model.forward(kg.rand([2, 1, 2, 2]))).toThrow(/kg\.nn\.functional\.conv2d: kernel 3x3 is larger than the padded input 2x2/);
    expect(() => b.model.forward(kg.rand([2, 1, 3, 3]))).toThrow(/kg\.nn\.functional\.avgPool2d: window 2x2 is larger than the input \[2, 20, 1, 1\]/);
  });

  test('the raw binding refuses inconsistent arguments with JS errors', () => {
    const rng = new Rng(17);
    const shape: [number, number, number, number, number, number, number, number, number, number, number, number] = [2, 1, 6, 6, 3, 3, 3, 1, 1, 0, 0, 1];
    const x = store(rng.array(72)), w = store(rng.array(27)), k = () => store(rng.array(3, 0.5, 1));
    try {
      // 4x4 maps, pooled 2x2 to 2x2: y holds 2 * 3 * 2 * 2 = 24 values.
      expect(() => native.convBlockInfer(shape, [2, 2, 2, 2], x, w, null, null, null, null, null, 0, true, empty(96))).toThrow(/y has 96 elements/);
      expect(() => native.convBlockInfer(shape, [2, 2, 2, 2], x, w, null, k(), k(), null, k(), 1e-5, true, empty(24))).toThrow(/all four or not at all/);
      expect(() => native.convBlockInfer(shape, [5, 5, 1, 1], x, w, null, null, null, null, null, 0, true, empty(24))).toThrow(/larger than the convolution's output/);
      expect(() => native.convBlockInfer(shape, [0, 2, 1, 1], x, w, null, null, null, null, null, 0, true, empty(24))).toThrow(/at least 1/);
      expect(() => native.convBlockInfer(shape, null, x, w, null, k(), k(), k(), k(), -1, true, empty(96))).toThrow(/eps/);
      expect(() => native.convBlockInfer(shape, null, x, w, null, k(), k(), k(), store([1, 2]), 1e-5, true, empty(96))).toThrow(/var has 2 elements/);
      const y = empty(24);
      native.convBlockInfer(shape, [2, 2, 2, 2], x, w, k(), k(), k(), k(), k(), 1e-5, true, y);
      expect(y.read().every((v: number) => Number.isFinite(v) && v >= 0)).toBe(true); // every output written, rectified
    } finally {
      disposeAll();
    }
  });

  describe('dense blocks', () => {
    const DENSE: Array<[string, { m: number; k: number; n: number; bn: 'affine' | 'plain' | null; relu: boolean; bias: boolean }]> = [
      ['the tutorial\'s fc1 at batch 1: Linear, BatchNorm, ReLU', { m: 1, k: 800, n: 128, bn: 'affine', relu: true, bias: true }],
      ['batch 2 (the dot-product GEMM), batch norm without affine parameters', { m: 2, k: 37, n: 13, bn: 'plain', relu: true, bias: true }],
      ['batch 67 (the packed GEMM), no ReLU', { m: 67, k: 130, n: 33, bn: 'affine', relu: false, bias: true }],
      ['Linear and ReLU, no batch norm', { m: 5, k: 9, n: 7, bn: null, relu: true, bias: true }],
      ['a Linear alone (its bias in the same call)', { m: 3, k: 128, n: 10, bn: null, relu: false, bias: true }],
      ['no bias, then batch norm', { m: 4, k: 17, n: 6, bn: 'affine', relu: true, bias: false }],
    ];
    test.each(DENSE)('%s: one native call, bitwise the layers one by one, close to float64', (_, cs) => {
      const rng = new Rng(21);
      const fc = new kg.nn.Linear(cs.k, cs.n, { seed: 3, bias: cs.bias });
      const w = rng.array(cs.n * cs.k, -0.3, 0.3);
      const bias = rng.array(cs.n, -0.5, 0.5);
      fc.weight.copy_(kg.tensor(w, [cs.n, cs.k]));
      if (cs.bias) fc.bias!.copy_(kg.tensor(bias, [cs.n]));
      const layers: kg.nn.Module[] = [fc];
      const gamma = cs.bn === 'affine' ? rng.array(cs.n, 0.5, 1.5) : new Float32Array(cs.n).fill(1);
      const beta = cs.bn === 'affine' ? rng.array(cs.n, -0.5, 0.5) : new Float32Array(cs.n);
      const mean = rng.array(cs.n, -0.4, 0.4), variance = rng.array(cs.n, 0.2, 2);
      if (cs.bn) {
        const bn = new kg.nn.BatchNorm(cs.n, { eps: 1e-3, affine: cs.bn === 'affine' });
        if (cs.bn === 'affine') {
          bn.gamma.copy_(kg.tensor(gamma, [cs.n]));
          bn.beta.copy_(kg.tensor(beta, [cs.n]));
        }
        bn.runningMean.copy_(kg.tensor(mean, [cs.n]));
        bn.runningVar.copy_(kg.tensor(variance, [cs.n]));
        layers.push(bn);
      }
      if (cs.relu) layers.push(new kg.nn.ReLU());
      const model = new kg.nn.Sequential(...layers).eval();
      const xd = rng.array(cs.m * cs.k);
      const fused = fusedForward(model, kg.tensor(xd, [cs.m, cs.k]), { denseBlockInfer: 1 });
      const ref = gemmRef(false, true, cs.m, cs.n, cs.k, 1, xd, w, 0, new Float32Array(cs.m * cs.n));
      let value: Float64Array = ref.value.map((v, e) => v + (cs.bias ? bias[e % cs.n] : 0));
      let scale: Float64Array = ref.scale.map((v, e) => v + (cs.bias ? Math.abs(bias[e % cs.n]) : 0));
      if (cs.bn) {
        value = bnNormalizeRef({ n: cs.m, c: cs.n, l: 1 }, value, gamma, beta, mean, variance, 1e-3);
        scale = scale.map((v, e) => (v * Math.abs(gamma[e % cs.n])) / Math.sqrt(variance[e % cs.n] + 1e-3) + Math.abs(beta[e % cs.n]));
      }
      if (cs.relu) value = value.map((v) => Math.max(v, 0));
      expectClose(fused, value, { rtol: 2e-6 * Math.sqrt(cs.k), atol: 1e-6, scale }, 'dense block output');
    });

    test('a Linear without bias and nothing after it is a plain GEMM: not a block', () => {
      const model = new kg.nn.Sequential(new kg.nn.Linear(4, 3, { seed: 1, bias: false })).eval();
      fusedForward(model, kg.rand([2, 4], { seed: 1 }), { denseBlockInfer: 0 });
    });

    test('the tutorial\'s network at batch 1 makes one native call: its four blocks as one chain', () => {
      const model = kg.models.bnCnn({ seed: 3, device: 'cpu' });
      kg.tidy(() => model.forward(kg.rand([16, 1, 28, 28], { seed: 4 })));
      model.eval();
      fusedForward(model, kg.rand([1, 1, 28, 28], { seed: 6 }), { inferenceChain: 1, convBlockInfer: 0, denseBlockInfer: 0 });
    });

    test('the raw binding refuses inconsistent arguments with JS errors', () => {
      const rng = new Rng(22);
      const x = store(rng.array(6)), w = store(rng.array(12)), k = () => store(rng.array(4, 0.5, 1));
      try {
        expect(() => native.denseBlockInfer(2, 4, 3, x, w, null, null, null, null, null, 0, false, empty(6))).toThrow(/y has 6 elements/);
        expect(() => native.denseBlockInfer(2, 4, 3, x, w, k(), k(), null, k(), k(), 1e-5, true, empty(8))).toThrow(/all four or not at all/);
        expect(() => native.denseBlockInfer(2, 4, 4, x, w, null, null, null, null, null, 0, true, empty(8))).toThrow(/x has 6 elements/);
        expect(() => native.denseBlockInfer(2, 4, 3, x, w, store([1, 2]), null, null, null, null, 0, true, empty(8))).toThrow(/bias has 2 elements/);
        const y = empty(8);
        native.denseBlockInfer(2, 4, 3, x, w, k(), k(), k(), k(), k(), 1e-5, true, y);
        expect(y.read().every((v: number) => Number.isFinite(v) && v >= 0)).toBe(true);
      } finally {
        disposeAll();
      }
    });
  });

  describe('chains: a Sequential of blocks alone as one native call', () => {
    /** A BatchNorm in inference form with random moving statistics (and affine parameters). */
    function normalizing(features: number, rng: Rng): kg.nn.BatchNorm {
      const bn = new kg.nn.BatchNorm(features, { eps: 1e-3 });
      bn.gamma.copy_(kg.tensor(rng.array(features, 0.5, 1.5), [features]));
      bn.beta.copy_(kg.tensor(rng.array(features, -0.5, 0.5), [features]));
      bn.runningMean.copy_(kg.tensor(rng.array(features, -0.3, 0.3), [features]));
      bn.runningVar.copy_(kg.tensor(rng.array(features, 0.2, 2), [features]));
      return bn;
    }

    test('strides, padding, groups, a block without batch norm or pool, a Linear without bias: bitwise the layers one by one', () => {
      const rng = new Rng(41);
      const model = new kg.nn.Sequential(
        new kg.nn.Conv2d(3, 4, 3, { stride: 2, padding: 1, seed: 1 }), new kg.nn.ReLU(),
        new kg.nn.Conv2d(4, 6, 2, { groups: 2, seed: 2 }), normalizing(6, rng), new kg.nn.AvgPool2d(2),
        new kg.nn.Flatten(),
        new kg.nn.Linear(6 * 2 * 2, 5, { bias: false, seed: 3 }), normalizing(5, rng), new kg.nn.ReLU(),
        new kg.nn.Linear(5, 3, { seed: 4 }),
      ).eval();
      for (const n of [1, 4, 33]) {
        const y = fusedForward(model, kg.rand([n, 3, 11, 9], { seed: n }), { inferenceChain: 1, convBlockInfer: 0, denseBlockInfer: 0 });
        expect(y.length).toBe(n * 3);
        expect(y.every(Number.isFinite)).toBe(true);
      }
    });

    test('two convolution blocks without Flatten or dense layers: a chain, its output 4-D', () => {
      const rng = new Rng(42);
      const model = new kg.nn.Sequential(
        new kg.nn.Conv2d(2, 5, 3, { seed: 1 }), normalizing(5, rng), new kg.nn.ReLU(),
        new kg.nn.Conv2d(5, 4, 3, { padding: 1, seed: 2 }), new kg.nn.ReLU(), new kg.nn.AvgPool2d(2),
      ).eval();
      const x = kg.rand([3, 2, 10, 10], { seed: 7 });
      fusedForward(model, x, { inferenceChain: 1, convBlockInfer: 0 });
      expect(model.forward(x).shape).toEqual([3, 4, 4, 4]);
    });

    test('a layer that belongs to no block leaves the rest to the blocks one by one', () => {
      const model = new kg.nn.Sequential(
        new kg.nn.Conv2d(1, 4, 3, { seed: 1 }), new kg.nn.ReLU(), new kg.nn.MaxPool2d(2),
        new kg.nn.Conv2d(4, 4, 3, { seed: 2 }), new kg.nn.ReLU(), new kg.nn.Flatten(), new kg.nn.Linear(4 * 3 * 3, 2, { seed: 3 }),
      ).eval();
      fusedForward(model, kg.rand([2, 1, 12, 12], { seed: 8 }), { inferenceChain: 0, convBlockInfer: 2, denseBlockInfer: 1 });
    });

    test('one block alone is a block call, not a chain; while recording, neither', () => {
      const one = new kg.nn.Sequential(new kg.nn.Conv2d(1, 2, 3, { seed: 1 }), new kg.nn.ReLU(), new kg.nn.Flatten()).eval();
      fusedForward(one, kg.rand([2, 1, 5, 5], { seed: 9 }), { inferenceChain: 0, convBlockInfer: 1 });
      const model = kg.models.bnCnn({ seed: 3, device: 'cpu' }).eval();
      const spy = countingBlockCalls('inferenceChain');
      try {
        kg.autograd.record(() => model.forward(kg.rand([2, 1, 28, 28], { seed: 10 }).attachGrad()));
        expect(spy.calls()).toBe(0);
      } finally {
        spy.restore();
      }
    });

    test('bad input still gets the error of the layer that raises it', () => {
      const model = kg.models.bnCnn({ seed: 3, device: 'cpu' }).eval();
      expect(() => model.forward(kg.rand([1, 1, 30, 30]))).toThrow(/kg\.nn\.functional\.linear: x \[1, 1250\]/);
    });

    describe('the chain kept between calls', () => {
      /** Runs f with prepareChain watched; f gets the count of chains prepared so far. */
      function watchingPrepares(f: (prepared: () => number) => void): void {
        const spy = jest.spyOn(chainOps, 'prepareChain');
        try {
          f(() => spy.mock.calls.length);
        } finally {
          spy.mockRestore();
        }
      }

      test('is prepared once, serves other batch sizes, and follows the values of the layers\' tensors', () => {
        const model = kg.models.bnCnn({ seed: 3, device: 'cpu' }).eval();
        watchingPrepares((prepared) => {
          for (const n of [1, 5, 1]) fusedForward(model, kg.rand([n, 1, 28, 28], { seed: n }), { inferenceChain: 1 });
          expect(prepared()).toBe(1);
          // New values in place (an optimizer step, copy_): the same chain reads them.
          const conv1 = model.at('conv1') as kg.nn.Conv2d;
          conv1.weight.copy_(kg.rand(conv1.weight.shape, { seed: 9 }));
          fusedForward(model, kg.rand([2, 1, 28, 28], { seed: 10 }), { inferenceChain: 1 });
          expect(prepared()).toBe(1);
        });
      });

      test('is prepared again when what it depends on changes, and is never stale', () => {
        const model = kg.models.bnCnn({ seed: 3, device: 'cpu' }).eval();
        const bn2 = model.at('bn2') as kg.nn.BatchNorm;
        watchingPrepares((prepared) => {
          fusedForward(model, kg.rand([2, 1, 28, 28], { seed: 1 }), { inferenceChain: 1 });
          // Another image size: a new chain.
          const convs = new kg.nn.Sequential(new kg.nn.Conv2d(2, 3, 3, { seed: 1 }), new kg.nn.ReLU(), new kg.nn.Conv2d(3, 2, 3, { seed: 2 }), new kg.nn.ReLU()).eval();
          for (const size of [10, 12, 10]) fusedForward(convs, kg.rand([2, 2, size, size], { seed: size }), { inferenceChain: 1 });
          expect(convs.forward(kg.rand([1, 2, 12, 12])).shape).toEqual([1, 2, 8, 8]);
          // A batch norm in training mode: no chain; frozen, a chain again.
          bn2.train();
          fusedForward(model, kg.rand([2, 1, 28, 28], { seed: 4 }), { inferenceChain: 0 });
          bn2.freeze();
          fusedForward(model, kg.rand([2, 1, 28, 28], { seed: 5 }), { inferenceChain: 1 });
          bn2.unfreeze().eval();
          // A parameter replaced by another tensor.
          model.loadStateDict(Object.fromEntries(Object.entries(model.stateDict()).map(([k, t]) => [k, kg.mul(t, 1.5)])));
          fusedForward(model, kg.rand([2, 1, 28, 28], { seed: 6 }), { inferenceChain: 1 });
          expect(prepared()).toBe(7);
        });
      });

      test('a disposed parameter is the Tensor\'s error, not the binding\'s', () => {
        const model = kg.models.bnCnn({ seed: 3, device: 'cpu' }).eval();
        model.forward(kg.rand([1, 1, 28, 28], { seed: 1 }));
        (model.at('fc2') as kg.nn.Linear).weight.dispose();
        expect(() => model.forward(kg.rand([1, 1, 28, 28], { seed: 2 }))).toThrow(/kg\.Tensor: this tensor \[10, 128\] was disposed/);
      });

      test('a copy of the model keeps its own chain', () => {
        const model = kg.models.bnCnn({ seed: 3, device: 'cpu' }).eval();
        const x = kg.rand([3, 1, 28, 28], { seed: 7 });
        const before = model.forward(x).toArray();
        const folded = kg.nn.foldBatchNorm(model);
        const y = folded.forward(x).toArray();
        expectClose(y, Float64Array.from(before), { rtol: 1e-4, atol: 1e-5 }, 'folded');
        expect(bitwiseEqual(model.forward(x).toArray(), before)).toBe(true);
      });
    });

    describe('the raw binding', () => {
      // Two steps: conv 1 -> 2 channels 3x3 on 6x6 with batch norm, ReLU and a 2x2 pool (2x2x2 out),
      // then dense 8 -> 3 with bias.
      const spec = (over: Record<number, number> = {}, extra: number[] = []) => {
        const v = [2, 1, 6, 6, 2, 0, 2, 3, 3, 1, 1, 0, 0, 1, 1, 1, 1e-3, 1, 1, 2, 2, 2, 2, 1, 3, 1, 0, 0, 0, ...extra];
        for (const [i, x] of Object.entries(over)) v[Number(i)] = x;
        return Float64Array.from(v);
      };
      const rng = new Rng(43);
      const weights = () => [store(rng.array(18)), store(rng.array(2)), ...[0, 1, 2, 3].map(() => store(rng.array(2, 0.5, 1))),
        store(rng.array(24)), store(rng.array(3))];

      afterEach(disposeAll);

      test('runs the steps as the block bindings do, bit for bit', () => {
        const x = store(rng.array(72, -1, 1)), y = empty(6), w = weights();
        native.inferenceChain(spec(), x, y, ...w);
        const mid = empty(16), y2 = empty(6);
        native.convBlockInfer([2, 1, 6, 6, 2, 3, 3, 1, 1, 0, 0, 1], [2, 2, 2, 2], x, w[0], w[1], w[2], w[3], w[4], w[5], 1e-3, true, mid);
        native.denseBlockInfer(2, 3, 8, mid, w[6], w[7], null, null, null, null, 0, false, y2);
        expect(bitwiseEqual(y.read(), y2.read())).toBe(true);
      });

      test('refuses inconsistent arguments with JS errors', () => {
        const x = store(rng.array(72)), y = empty(6);
        const call = (s: Float64Array, ...rest: unknown[]) => () => (native.inferenceChain as (...a: unknown[]) => void)(s, ...rest);
        expect(call(spec(), x, y, ...weights().slice(1))).toThrow(/TypeError|take 8 weights/);
        expect(() => (native.inferenceChain as (...a: unknown[]) => void)([2, 1, 6, 6, 0], x, y)).toThrow(/spec must be a Float64Array/);
        expect(call(spec({ 5: 2 }), x, y, ...weights())).toThrow(/spec step 0 kind must be 0 \(convolution\) or 1 \(dense\), got 2/);
        expect(call(spec({ 15: 0.5 }), x, y, ...weights())).toThrow(/spec step 0 bn must be 0 or 1, got 0\.5/);
        expect(call(spec({ 16: -1 }), x, y, ...weights())).toThrow(/spec step 0 eps must be a finite number >= 0/);
        expect(call(spec({ 20: 5 }), x, y, ...weights())).toThrow(/step 0: the pooling window is larger than the convolution's output \(4 x 4\)/);
        expect(call(spec({ 13: 2 }), x, y, ...weights())).toThrow(/step 0: groups \(2\) must divide both the input channels \(1\)/);
        expect(call(spec({ 7: 7 }), x, y, ...weights())).toThrow(/step 0: the kernel is larger than the padded input \(6 x 6\)/);
        expect(call(spec({}, [1]), x, y, ...weights())).toThrow(/spec has 30 numbers, its 2 steps take 29/);
        expect(call(spec({ 4: 3 }), x, y, ...weights())).toThrow(/spec step 2 kind is missing/);
        expect(call(spec({ 0: 1.5 }), x, y, ...weights())).toThrow(/spec n must be an integer/);
        expect(call(spec(), x, empty(5), ...weights())).toThrow(/y has 5 elements, the shapes need 6/);
        expect(call(spec(), store(rng.array(71)), y, ...weights())).toThrow(/x has 71 elements/);
        const w = weights();
        w[6] = store(rng.array(23));
        expect(call(spec(), x, y, ...w)).toThrow(/weights\[6\] \(step 1 w\) has 23 elements, the shapes need 24/);
        const gone = weights();
        gone[3].dispose();
        expect(call(spec(), x, y, ...gone)).toThrow(/weights\[3\] \(step 0 beta\) was disposed/);
        expect(call(spec(), x, y, ...weights().slice(0, 7), {})).toThrow(/weights\[7\] \(step 1 bias\) must be a Storage/);
      });
    });
  });
});
