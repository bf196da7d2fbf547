// Bad input through the public API: each case gets a TypeError or RangeError that names the public
// function and the argument (and the shapes where there are some), raised in TypeScript before any
// native call; values that are legal are computed faithfully.
import * as kg from '../../lib';
import { collapseDims, stridesOf } from '../../lib/shape';

const F = kg.nn.functional;

describe('kg.tensor data', () => {
  test.each<[string, () => unknown, ErrorConstructor, RegExp]>([
    ['a hole', () => kg.tensor([1, , 3] as number[]), TypeError, /^kg\.tensor: data has a hole at data\[1\]/],
    ['a nested hole', () => kg.tensor([[1, 2], [3, , ]] as number[][]), TypeError, /hole at data\[1\]\[1\]/],
    ['ragged rows', () => kg.tensor([[1, 2], [3]]), RangeError, /^kg\.tensor: nested arrays are ragged: data\[1\] has length 1 where data\[0\] has 2/],
    ['ragged rows with a shape', () => kg.tensor([[1, 2], [3]], [3]), RangeError, /ragged/],
    ['a number where a row belongs', () => kg.tensor([[1, 2], 3] as never), RangeError, /data\[1\] is 3 where data\[0\] is an array/],
    ['a row where a number belongs', () => kg.tensor([1, [2]] as never), RangeError, /data\[1\] is an array where data\[0\] is a number/],
    ['an array-like object', () => kg.tensor({ length: 2, 0: 1, 1: 2 } as never), TypeError, /^kg\.tensor: data must be .* got an object/],
    ['a string', () => kg.tensor('12' as never), TypeError, /^kg\.tensor: data must be/],
    ['a string inside', () => kg.tensor([1, '2'] as never), TypeError, /^kg\.tensor: data must contain only numbers, got "2" at data\[1\]/],
    ['a boolean inside', () => kg.tensor([[true, 1]] as never), TypeError, /got true at data\[0\]\[0\]/],
    ['a value beyond float32', () => kg.tensor([[1, 2], [3, 1e39]]), RangeError, /^kg\.tensor: data\[1\]\[1\] = 1e\+39 overflows float32/],
    ['a Float64Array value beyond float32', () => kg.tensor(new Float64Array([0, -4e38])), RangeError, /data\[1\] = -4e\+38 overflows float32/],
    ['a BigInt64Array', () => kg.tensor(new BigInt64Array(2) as never), TypeError, /got a BigInt64Array/],
    ['values that do not fill the shape', () => kg.tensor([1, 2, 3], [2, 2]), RangeError, /^kg\.tensor: 3 values do not fill shape \[2, 2\]/],
    ['an unknown option', () => kg.tensor([1], [1], { dtype: 'f16' } as never), TypeError, /^kg\.tensor: unknown option 'dtype' \(known options: device\)/],
    ['null options', () => kg.tensor([1], [1], null as never), TypeError, /^kg\.tensor: options must be an object, got null/],
    ['an unknown device', () => kg.tensor([1], [1], { device: 'tpu' }), TypeError, /^kg\.tensor: unknown device "tpu"/],
  ])('rejects %s', (_, make, type, message) => {
    expect(make).toThrow(type);
    expect(make).toThrow(message);
  });

  test('keeps NaN, the infinities and the float32 rounding of what it accepts', () => {
    const t = kg.tensor([[NaN, Infinity], [-Infinity, 0.1]]);
    expect(Array.from(t.toArray())).toEqual([NaN, Infinity, -Infinity, Math.fround(0.1)]);
    expect(kg.tensor(new Int32Array([3, -7]), [2, 1]).shape).toEqual([2, 1]);
    expect(Array.from(kg.tensor(new Float64Array([3.4e38, 1e-50])).toArray())).toEqual([Math.fround(3.4e38), 0]);
    expect(kg.tensor([[], []]).shape).toEqual([2, 0]);
  });
});

describe('shapes', () => {
  test.each<[string, () => unknown, ErrorConstructor, RegExp]>([
    ['a hole', () => kg.zeros([2, , 3] as number[]), TypeError, /^kg\.zeros: shape has a hole at index 1 \(length 3\)/],
    ['a negative size', () => kg.ones([2, -1]), TypeError, /^kg\.ones: shape must be an array of non-negative integers, got -1 at index 1/],
    ['a fraction', () => kg.full([2.5], 1), TypeError, /^kg\.full: shape .* got 2\.5 at index 0/],
    ['a string size', () => kg.zeros(['2'] as never), TypeError, /got 2 at index 0/],
    ['not an array', () => kg.rand(3 as never), TypeError, /^kg\.rand: shape must be an array .* got 3/],
    ['more than 2^53 elements', () => kg.zeros([1e6, 1e6, 1e6]), RangeError, /^kg\.zeros: shape \[1000000, 1000000, 1000000\] has 1000000000000000000 elements, more than 2\^53/],
    ['more than 2^53 elements in randn', () => kg.randn([2 ** 30, 2 ** 30, 2 ** 30]), RangeError, /^kg\.randn: shape .* more than 2\^53/],
    ['a tensor too large for memory', () => kg.zeros([1e7, 1e7]), RangeError, /^kg\.zeros: cannot allocate shape \[10000000, 10000000\] \(364 TiB\) on cpu/],
    ['a size beyond 2^53', () => kg.zeros([1e300]), TypeError, /^kg\.zeros: shape must be an array of non-negative integers, got 1e\+300 at index 0/],
    ['a broadcast beyond 2^53 elements', () => kg.add(kg.zeros([1e8, 1]), kg.zeros([1, 1e8])), RangeError,
      /^kg\.add: shapes \[100000000, 1\] and \[1, 100000000\] broadcast to \[100000000, 100000000\], more than 2\^53 elements/],
    // 364 TiB: more than a 64-bit process can map, so the allocation fails whatever the overcommit policy.
    ['a broadcast too large for memory', () => kg.mul(kg.zeros([1e7, 1]), kg.zeros([1, 1e7])), RangeError, /^kg\.mul: cannot allocate shape \[10000000, 10000000\] \(364 TiB\) on cpu/],
    ['reshape with a hole', () => kg.ones([4]).reshape([2, , 2] as number[]), TypeError, /^kg\.reshape: shape .* got a hole at index 1/],
    ['broadcastTo with a hole', () => kg.broadcastTo(kg.ones([2]), [3, , 2] as number[]), TypeError, /^kg\.broadcastTo: shape has a hole/],
  ])('rejects %s before any native call', (_, make, type, message) => {
    expect(make).toThrow(type);
    expect(make).toThrow(message);
  });
});

describe('random tensors', () => {
  test.each<[string, () => unknown, RegExp]>([
    ['std NaN', () => kg.randn([2], { std: NaN }), /^kg\.randn: std must be a finite number, got NaN/],
    ['std < 0', () => kg.randn([2], { std: -1 }), /^kg\.randn: std must be >= 0, got -1/],
    ['mean Infinity', () => kg.randn([2], { mean: Infinity }), /^kg\.randn: mean must be a finite number/],
    ['low NaN', () => kg.rand([2], { low: NaN }), /^kg\.rand: low must be a finite number/],
    ['low >= high', () => kg.rand([2], { low: 1, high: 1 }), /^kg\.rand: low must be less than high, got low 1 and high 1/],
    ['a fractional seed', () => kg.randn([2], { seed: 1.5 }), /^kg\.randn: seed must be an integer, got 1\.5/],
    ['an unknown option', () => kg.randn([2], { sigma: 2 } as never), /^kg\.randn: unknown option 'sigma' \(known options: device, seed, mean, std\)/],
    ['manualSeed(NaN)', () => kg.manualSeed(NaN), /^kg\.manualSeed: seed must be an integer/],
    ['fillNormal with std NaN', () => new kg.Random(1).fillNormal(new Float32Array(2), 0, NaN), /^kg\.Random\.fillNormal: std must be a finite number/],
  ])('rejects %s', (_, make, message) => {
    expect(make).toThrow(message);
  });

  test('the same seed still gives the same values', () => {
    expect(Array.from(kg.randn([5], { seed: 3, mean: 1, std: 2 }).toArray())).toEqual(Array.from(kg.randn([5], { seed: 3, mean: 1, std: 2 }).toArray()));
  });
});

describe('option objects', () => {
  test.each<[string, () => unknown, RegExp]>([
    ['BatchNorm', () => new kg.nn.BatchNorm(4, { conventon: 'pytorch' } as never), /^kg\.nn\.BatchNorm: unknown option 'conventon' \(known options: convention, momentum, eps, initRunning, runningVariance, averaging, trackRunningStats, affine, device\)/],
    ['BatchNorm with null', () => new kg.nn.BatchNorm(4, null as never), /^kg\.nn\.BatchNorm: options must be an object, got null/],
    ['BatchNorm with a number', () => new kg.nn.BatchNorm(4, 0.9 as never), /^kg\.nn\.BatchNorm: options must be an object, got 0\.9/],
    ['BatchNorm with momentum as a string', () => new kg.nn.BatchNorm(4, { momentum: '0.9' } as never), /^kg\.nn\.BatchNorm: momentum must be a number, got "0\.9"/],
    ['Linear', () => new kg.nn.Linear(2, 3, { biased: false } as never), /^kg\.nn\.Linear: unknown option 'biased' \(known options: device, seed, bias\)/],
    ['Linear bias as a string', () => new kg.nn.Linear(2, 3, { bias: 'no' } as never), /^kg\.nn\.Linear: bias must be true or false, got "no"/],
    ['Conv2d', () => new kg.nn.Conv2d(1, 2, 3, { pad: 1 } as never), /^kg\.nn\.Conv2d: unknown option 'pad' \(known options: device, seed, stride, padding, groups, bias\)/],
    ['Conv2d stride 0', () => new kg.nn.Conv2d(1, 2, 3, { stride: 0 }), /^kg\.nn\.Conv2d: stride must be an integer >= 1/],
    ['Conv2d with a fractional seed', () => new kg.nn.Conv2d(1, 2, 3, { seed: 0.5 }), /^kg\.nn\.Conv2d: seed must be an integer/],
    ['AvgPool2d kernel 0', () => new kg.nn.AvgPool2d(0), /^kg\.nn\.AvgPool2d: kernelSize must be a positive integer/],
    ['conv2d', () => F.conv2d(kg.ones([1, 1, 4, 4]), kg.ones([1, 1, 3, 3]), null, { strides: 2 } as never), /^kg\.nn\.functional\.conv2d: unknown option 'strides' \(known options: stride, padding, groups\)/],
    ['conv2d with null', () => F.conv2d(kg.ones([1, 1, 4, 4]), kg.ones([1, 1, 3, 3]), null, null as never), /options must be an object, got null/],
    ['avgPool2d with null', () => F.avgPool2d(kg.ones([1, 1, 4, 4]), null as never), /^kg\.nn\.functional\.avgPool2d: options must be an object, got null/],
    ['softmaxCrossEntropy', () => F.softmaxCrossEntropy(kg.ones([2, 3]), [0, 1], { reduce: 'sum' } as never), /^kg\.nn\.functional\.softmaxCrossEntropy: unknown option 'reduce' \(known options: reduction\)/],
    ['sum', () => kg.ones([2]).sum(0, { keepdim: true } as never), /^kg\.sum: unknown option 'keepdim' \(known options: keepDims\)/],
    ['mean with null', () => kg.ones([2]).mean(0, null as never), /^kg\.mean: options must be an object, got null/],
    ['two unknown options', () => kg.zeros([2], { dtype: 1, device: 'cpu', grad: true } as never), /^kg\.zeros: unknown options 'dtype', 'grad' \(known options: device\)/],
  ])('%s rejects a bad option object', (_, make, message) => {
    expect(make).toThrow(TypeError);
    expect(make).toThrow(message);
  });

  test('an option set to undefined means its default', () => {
    const bn = new kg.nn.BatchNorm(3, { momentum: undefined, eps: undefined });
    expect([bn.momentum, bn.eps]).toEqual([0.9, 1e-5]);
    expect(kg.ones([2, 3]).sum(1, { keepDims: undefined }).shape).toEqual([2]);
  });
});

describe('arithmetic arguments', () => {
  test('a NaN or infinite scalar operand is computed as PyTorch does, in every op', () => {
    const x = kg.tensor([1, -2, 0]);
    expect(Array.from(x.add(NaN).toArray())).toEqual([NaN, NaN, NaN]);
    expect(Array.from(x.sub(Infinity).toArray())).toEqual([-Infinity, -Infinity, -Infinity]);
    expect(Array.from(x.mul(Infinity).toArray())).toEqual([Infinity, -Infinity, NaN]);
    expect(Array.from(x.div(-Infinity).toArray())).toEqual([-0, 0, -0]);
    expect(Array.from(kg.div(NaN, x).toArray())).toEqual([NaN, NaN, NaN]);
    expect(Array.from(x.scale(NaN).toArray())).toEqual([NaN, NaN, NaN]);
    expect(Array.from(kg.full([2], -Infinity).toArray())).toEqual([-Infinity, -Infinity]);
  });

  test.each<[string, () => unknown, ErrorConstructor, RegExp]>([
    ['a scalar beyond float32', () => kg.ones([2]).add(1e39), RangeError, /^kg\.add: b = 1e\+39 overflows float32/],
    ['a scale beyond float32', () => kg.ones([2]).scale(-1e40), RangeError, /^kg\.scale: alpha = -1e\+40 overflows float32/],
    ['a string operand', () => kg.ones([2]).mul('2' as never), TypeError, /^kg\.mul: b must be a Tensor or a number, got "2"/],
    ['null operand', () => kg.sub(null as never, kg.ones([2])), TypeError, /^kg\.sub: a must be a Tensor or a number, got null/],
    ['two numbers', () => kg.div(1 as never, 2 as never), TypeError, /^kg\.div: at least one operand must be a Tensor, got 1 and 2/],
    ['a disposed operand', () => { const t = kg.ones([3]); t.dispose(); return kg.ones([3]).add(t); }, Error, /^kg\.add: b \[3\] was disposed/],
    ['shapes that do not broadcast', () => kg.ones([2, 3]).add(kg.ones([4])), RangeError, /^kg\.add: shapes \[2, 3\] and \[4\] do not broadcast/],
    ['an axis out of range', () => kg.ones([2, 3]).sum(2), RangeError, /^kg\.sum: axis 2 is out of range for shape \[2, 3\] \(2 dimensions\)/],
    ['an axis that is a string', () => kg.ones([2, 3]).mean('0' as never), TypeError, /^kg\.mean: axes must be a number or an array/],
    ['keepDims as a string', () => kg.ones([2]).sum(0, { keepDims: 'yes' } as never), TypeError, /^kg\.sum: keepDims must be true or false/],
    ['matmul of 1-D', () => kg.ones([3]).matmul(kg.ones([3, 1])), RangeError, /^kg\.matmul: a must be 2-D, got shape \[3\]/],
    ['relu of a number', () => F.relu(3 as never), TypeError, /^kg\.nn\.functional\.relu: x must be a Tensor, got 3/],
    ['linear with mismatched features', () => F.linear(kg.ones([2, 3]), kg.ones([4, 5])), RangeError, /^kg\.nn\.functional\.linear: x \[2, 3\] has 3 features/],
    ['labels as a string', () => F.softmaxCrossEntropy(kg.ones([2, 3]), 'ab' as never), TypeError, /^kg\.nn\.functional\.softmaxCrossEntropy: labels must be .* got "ab"/],
    ['argmax of 3-D', () => kg.argmax(kg.ones([1, 2, 3])), RangeError, /^kg\.argmax: x must be 2-D \(rows, columns\), got shape \[1, 2, 3\]/],
    ['too many separate broadcast runs', () => kg.add(kg.ones([2, 1, 2, 1, 2, 1, 2]), kg.ones([2, 1, 2, 1, 2, 1])), RangeError,
      /^kg\.add: shapes \[2, 1, 2, 1, 2, 1, 2\] and \[2, 1, 2, 1, 2, 1\] broadcast to \[2, 2, 2, 2, 2, 2, 2\], which has 7 separately strided dimensions; at most 6/],
  ])('%s is rejected with the function named', (_, make, type, message) => {
    expect(make).toThrow(type);
    expect(make).toThrow(message);
  });
});

describe('more than 6 dimensions', () => {
  /** a + b with NumPy broadcasting in float64, the reference for the collapsed kernel call. */
  function referenceAdd(a: Float32Array, as: number[], b: Float32Array, bs: number[], out: number[]): Float64Array {
    const n = out.length;
    const sa = stridesOf(as);
    const sb = stridesOf(bs);
    const result = new Float64Array(out.reduce((p, d) => p * d, 1));
    const idx = new Array<number>(n).fill(0);
    for (let k = 0; k < result.length; k++) {
      let ia = 0;
      let ib = 0;
      for (let i = 0; i < n; i++) {
        const ja = i - (n - as.length);
        const jb = i - (n - bs.length);
        if (ja >= 0 && as[ja] !== 1) ia += idx[i] * sa[ja];
        if (jb >= 0 && bs[jb] !== 1) ib += idx[i] * sb[jb];
      }
      result[k] = a[ia] + b[ib];
      for (let i = n - 1; i >= 0 && ++idx[i] === out[i]; i--) idx[i] = 0;
    }
    return result;
  }

  test('broadcasts of up to 6 separate runs at ranks 7 and 8 match a float64 reference', () => {
    const random = new kg.Random(7);
    const cases: Array<[number[], number[]]> = [
      [[2, 3, 1, 1, 5, 3, 2], [1, 1, 4, 3, 5, 1, 1]],
      [[3, 1, 1, 1, 1, 1, 7, 2], [1, 5, 2, 3, 1, 1, 1, 1]],
      [[1, 1, 1, 1, 1, 1, 1], [3, 2, 1, 5, 1, 1, 1]],
      [[2, 3, 2, 3, 2, 3, 5], [5]],
      [[7, 1, 3, 1, 1, 2, 1], [1, 2, 3, 1, 1, 2, 3]],
    ];
    for (const [as, bs] of cases) {
      const a = kg.randn(as, { seed: random.int(1000) });
      const b = kg.randn(bs, { seed: random.int(1000) });
      const y = kg.add(a, b);
      const want = referenceAdd(a.toArray(), as, b.toArray(), bs, [...y.shape]);
      const got = y.toArray();
      expect(got.length).toBe(want.length);
      let worst = 0;
      for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / (1e-6 + Math.abs(want[i])));
      expect(worst).toBeLessThan(1e-6);
    }
  });

  test('the backward of a 7-D sum and a 7-D broadcast work', () => {
    const x = kg.randn([2, 3, 2, 1, 3, 2, 3], { seed: 1 }).attachGrad();
    kg.autograd.record(() => x.sum()).backward();
    expect(Array.from(x.grad!.toArray())).toEqual(new Array(x.numel).fill(1));
    const b = kg.randn([3, 1, 1, 1, 1, 1, 3], { seed: 2 }).attachGrad();
    kg.autograd.record(() => kg.mul(kg.ones([3, 2, 2, 2, 2, 2, 3]), b).sum()).backward();
    expect(Array.from(b.grad!.toArray())).toEqual(new Array(9).fill(32));
  });

  test('collapseDims keeps the element order and merges only what every operand walks as one', () => {
    const shape = [2, 3, 1, 4];
    expect(collapseDims(shape, [stridesOf(shape), [0, 0, 0, 1]])).toEqual({ shape: [6, 4], strides: [[4, 1], [0, 1]] });
    expect(collapseDims([1, 1], [[0, 0]])).toEqual({ shape: [], strides: [[]] });
  });
});
