// Tensors: creation, reading, devices, disposal, and the errors of misuse.
import * as kg from '../../lib';

describe('creation and reading', () => {
  test('tensor from flat data with a shape, and from nested arrays', () => {
    const a = kg.tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    expect(a.shape).toEqual([2, 3]);
    expect(a.device).toBe('cpu');
    expect(Array.from(a.toArray())).toEqual([1, 2, 3, 4, 5, 6]);
    const b = kg.tensor([[1, 2], [3, 4], [5, 6]]);
    expect(b.shape).toEqual([3, 2]);
    expect(Array.from(b.toArray())).toEqual([1, 2, 3, 4, 5, 6]);
    expect(kg.tensor(new Float32Array([7])).item()).toBe(7);
  });
  test('toArray returns a copy', () => {
    const a = kg.tensor([1, 2, 3]);
    a.toArray()[0] = 100;
    expect(a.toArray()[0]).toBe(1);
  });
  test('zeros, ones, full', () => {
    expect(Array.from(kg.zeros([2, 2]).toArray())).toEqual([0, 0, 0, 0]);
    expect(Array.from(kg.ones([3]).toArray())).toEqual([1, 1, 1]);
    expect(Array.from(kg.full([2], -2.5).toArray())).toEqual([-2.5, -2.5]);
  });
  test('randn is seedable and has the right moments', () => {
    const a = kg.randn([10000], { seed: 42 }).toArray();
    const b = kg.randn([10000], { seed: 42 }).toArray();
    const c = kg.randn([10000], { seed: 43 }).toArray();
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    const m = a.reduce((s, v) => s + v, 0) / a.length;
    const v = a.reduce((s, x) => s + (x - m) ** 2, 0) / a.length;
    expect(Math.abs(m)).toBeLessThan(0.05);
    expect(Math.abs(v - 1)).toBeLessThan(0.05);
    const scaled = kg.randn([10000], { seed: 1, mean: 1, std: 0.01 }).toArray();
    expect(Math.abs(scaled.reduce((s, x) => s + x, 0) / 10000 - 1)).toBeLessThan(1e-3);
    kg.manualSeed(9);
    const d = kg.randn([5]).toArray();
    kg.manualSeed(9);
    expect(kg.randn([5]).toArray()).toEqual(d);
  });
  test('reshape shares memory and keeps it alive after the original is disposed', () => {
    const a = kg.tensor([1, 2, 3, 4], [2, 2]);
    const b = a.reshape([4]);
    a.dispose();
    expect(Array.from(b.toArray())).toEqual([1, 2, 3, 4]);
    expect(a.reshape.bind(a, [4])).toThrow(/disposed/);
  });
});

describe('devices', () => {
  test('devices() lists the CPU first', () => {
    const d = kg.devices();
    expect(d[0].type).toBe('cpu');
    expect(d.every((x) => x.type === 'cpu' || (x.type === 'cuda' && (x.usable ? x.memory > 0 : x.reason !== undefined)))).toBe(true);
  });
  test('to("cpu") is the identity; a CUDA request without a GPU throws clearly', () => {
    const a = kg.ones([2]);
    expect(a.to('cpu')).toBe(a);
    if (!kg.cuda.isAvailable()) {
      expect(() => a.to('cuda')).toThrow(/device 'cuda' requested/);
      expect(() => kg.zeros([2], { device: 'cuda' })).toThrow(/device 'cuda' requested/);
    }
    expect(() => kg.zeros([2], { device: 'tpu' })).toThrow(TypeError);
  });
});

describe('disposal', () => {
  test('a disposed tensor cannot be used, and dispose is idempotent', () => {
    const a = kg.ones([3]);
    a.dispose();
    a.dispose();
    expect(a.disposed).toBe(true);
    expect(() => a.toArray()).toThrow(/kg\.Tensor: this tensor \[3\] was disposed/);
    expect(() => a.add(1)).toThrow(/disposed/);
    expect(() => kg.nn.functional.relu(a)).toThrow(/disposed/);
  });
  test('tidy disposes what was created inside except the result and parameters', () => {
    const w = kg.ones([2]).attachGrad();
    let inner: kg.Tensor | undefined;
    const out = kg.tidy(() => {
      inner = w.mul(2);
      return inner.add(1);
    });
    expect(inner!.disposed).toBe(true);
    expect(Array.from(out.toArray())).toEqual([3, 3]);
    expect(w.disposed).toBe(false);
  });
  test('tidy also cleans up when fn throws', () => {
    let inner: kg.Tensor | undefined;
    expect(() => kg.tidy(() => {
      inner = kg.ones([2]);
      throw new Error('boom');
    })).toThrow('boom');
    expect(inner!.disposed).toBe(true);
  });
});

describe('bad input', () => {
  test('tensor() checks its data and shape', () => {
    expect(() => kg.tensor([1, 2, 3], [2, 2])).toThrow(/3 values do not fill shape \[2, 2\]/);
    expect(() => kg.tensor([1, 2], [2.5] as number[])).toThrow(TypeError);
    expect(() => kg.tensor('abc' as never)).toThrow(TypeError);
    expect(() => kg.tensor([[1, 2], [3]])).toThrow(RangeError);
    expect(() => kg.zeros([-1])).toThrow(TypeError);
    expect(() => kg.full([2], 'x' as never)).toThrow(TypeError);
  });
  test('item() needs one element', () => {
    expect(() => kg.ones([2]).item()).toThrow(/kg\.Tensor\.item\(\): needs a tensor with one element, got shape \[2\]/);
  });
  test('arithmetic names both shapes when they do not broadcast', () => {
    expect(() => kg.ones([2, 3]).add(kg.ones([4]))).toThrow(/add: shapes \[2, 3\] and \[4\] do not broadcast/);
    expect(() => kg.ones([2, 3]).matmul(kg.ones([2, 3]))).toThrow(/matmul: inner dimensions differ: \[2, 3\] @ \[2, 3\]/);
    expect(() => kg.ones([2, 3]).reshape([4])).toThrow(RangeError);
    expect(() => kg.ones([2, 3]).sum(2)).toThrow(RangeError);
    expect(() => kg.add(1 as never, 2 as never)).toThrow(TypeError);
  });
  test('conv2d, avgPool2d, linear and the loss check their arguments', () => {
    const F = kg.nn.functional;
    expect(() => F.conv2d(kg.ones([1, 2, 5, 5]), kg.ones([3, 4, 3, 3]))).toThrow(/has 2 channels, weight \[3, 4, 3, 3\] expects 4/);
    expect(() => F.conv2d(kg.ones([2, 5, 5]), kg.ones([3, 2, 3, 3]))).toThrow(/4-D/);
    expect(() => F.conv2d(kg.ones([1, 1, 2, 2]), kg.ones([1, 1, 3, 3]))).toThrow(/larger than the padded input/);
    expect(() => F.conv2d(kg.ones([1, 1, 5, 5]), kg.ones([1, 1, 3, 3]), null, { stride: 0 })).toThrow(RangeError);
    expect(() => F.conv2d(kg.ones([1, 1, 5, 5]), kg.ones([2, 1, 3, 3]), kg.ones([3]))).toThrow(/bias must have shape \[2\]/);
    // groups: a positive integer dividing both channel counts, the weight holding c / groups channels.
    const conv = /^kg\.nn\.functional\.conv2d: /;
    for (const groups of [0, 1.5, -2, NaN, '2']) {
      expect(() => F.conv2d(kg.ones([1, 4, 5, 5]), kg.ones([4, 2, 3, 3]), null, { groups } as never)).toThrow(/groups must be a positive integer/);
    }
    expect(() => F.conv2d(kg.ones([1, 3, 5, 5]), kg.ones([4, 1, 3, 3]), null, { groups: 2 })).toThrow(RangeError);
    expect(() => F.conv2d(kg.ones([1, 3, 5, 5]), kg.ones([4, 1, 3, 3]), null, { groups: 2 })).toThrow(/groups \(2\) must divide the 3 channels of x \[1, 3, 5, 5\]/);
    expect(() => F.conv2d(kg.ones([1, 4, 5, 5]), kg.ones([3, 2, 3, 3]), null, { groups: 2 })).toThrow(/groups \(2\) must divide the 3 output channels of weight \[3, 2, 3, 3\]/);
    expect(() => F.conv2d(kg.ones([1, 6, 5, 5]), kg.ones([6, 6, 3, 3]), null, { groups: 3 })).toThrow(
      /weight's second dimension must be c \/ groups = 6 \/ 3 = 2 for x \[1, 6, 5, 5\], but weight is \[6, 6, 3, 3\]/,
    );
    expect(() => F.conv2d(kg.ones([1, 6, 5, 5]), kg.ones([6, 1, 3, 3]), null, { groups: 3 })).toThrow(conv);
    expect(F.conv2d(kg.ones([1, 6, 5, 5]), kg.ones([6, 1, 3, 3]), null, { groups: 6 }).shape).toEqual([1, 6, 3, 3]);
    expect(() => F.avgPool2d(kg.ones([1, 1, 1, 5]), { kernelSize: 2 })).toThrow(/larger than the input/);
    expect(() => F.avgPool2d(kg.ones([1, 1, 4, 4]), {} as never)).toThrow(TypeError);
    expect(() => F.linear(kg.ones([2, 3]), kg.ones([4, 5]))).toThrow(/has 3 features/);
    expect(() => F.softmaxCrossEntropy(kg.ones([2, 3]), [0, 3])).toThrow(/label 1 is 3/);
    expect(() => F.softmaxCrossEntropy(kg.ones([2, 3]), [0])).toThrow(/1 labels for 2 rows/);
    expect(() => F.softmaxCrossEntropy(kg.ones([2, 3]), [0, 0.5])).toThrow(RangeError);
    expect(() => F.softmaxCrossEntropy(kg.ones([2, 3]), [0, 1], { reduction: 'avg' as never })).toThrow(TypeError);
    expect(() => F.relu(null as never)).toThrow(TypeError);
  });
  test('the native layer rejects malformed calls with JS errors instead of crashing', () => {
    const { native } = require('../../lib/native') as typeof import('../../lib/native');
    // Errors made by the addon come from Node's own realm, not jest's: match them by message.
    const s = new native.Storage(0, 4);
    expect(() => (native.gemm as unknown as () => void)()).toThrow(/kernelgrad.gemm: expected 10 arguments, got 0/);
    expect(() => native.gemm(false, false, 2, 2, 2, 1, s, s, 0, {} as never)).toThrow(/C must be a Storage/);
    expect(() => native.gemm(false, false, 3, 3, 3, 1, s, s, 0, s)).toThrow(/A has 4 elements, the shapes need 9/);
    expect(() => native.reluForward(s, new native.Storage(0, 5))).toThrow(/y has 5 elements/);
    expect(() => native.fill(s, Infinity)).toThrow(/value must be finite/);
    expect(() => new native.Storage(0, -1)).toThrow(/non-negative integer/);
    expect(() => new native.Storage(2 as never, 1)).toThrow(/device must be 0/);
    expect(() => native.conv2dForward([1, 1, 2, 2, 1, 3, 3, 1, 1, 0, 0, 1], s, s, null, s)).toThrow(/larger than the padded input/);
    const d = new native.Storage(0, 4);
    d.dispose();
    expect(() => native.reluForward(d, s)).toThrow(/disposed/);
    expect(() => d.read()).toThrow(/disposed/);
  });
});

describe('label checks', () => {
  test('a label tensor is checked again after copy_ writes to it', () => {
    const F = kg.nn.functional;
    const logits = kg.randn([3, 4], { seed: 1 });
    const labels = kg.tensor([0, 3, 1]);
    expect(F.softmaxCrossEntropy(logits, labels).shape).toEqual([3]);
    labels.copy_(kg.tensor([0, 4, 1]));
    expect(() => F.softmaxCrossEntropy(logits, labels)).toThrow(/label 1 is 4/);
    labels.reshape([3, 1]).copy_(kg.tensor([2, 2, 2], [3, 1])); // through a view that shares the memory
    expect(F.softmaxCrossEntropy(logits, labels).shape).toEqual([3]);
    expect(() => F.softmaxCrossEntropy(kg.randn([3, 2], { seed: 2 }), labels)).toThrow(/label 0 is 2/);
  });

  test("a loader's label tensors are trusted for enough classes and checked against fewer", () => {
    const F = kg.nn.functional;
    const dataset = { inputs: new Float32Array(4 * 2), labels: Float32Array.from([0, 5, 2, 1]), count: 4, sampleShape: [2] };
    const loader = new kg.data.DataLoader(dataset, { batchSize: 4, device: 'cpu' });
    const [batch] = [...loader.batches(0)];
    expect(F.softmaxCrossEntropy(kg.randn([4, 6], { seed: 3 }), batch.y).shape).toEqual([4]);
    expect(() => F.softmaxCrossEntropy(kg.randn([4, 5], { seed: 3 }), batch.y)).toThrow(/label 1 is 5/);
  });
});
