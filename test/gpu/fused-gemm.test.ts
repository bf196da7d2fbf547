// The work the CUDA GEMM does beyond the product, through the raw bindings against float64
// references (test/native/reference.ts): linearForward's bias added in the GEMM's epilogue (or in
// the split-K reduction), the convolution's forward bias likewise, its bias gradient in one
// kernel, its weight gradient summed over the samples inside one GEMM that gathers the patches
// from x, and the bias gradients (convolution and linearBackwardWeight) as that GEMM's row sums. Each is also counted
// in kernel launches, so that a pass that comes back is noticed, and run twice for the same bits.
import * as kg from '../../lib';
import { BinaryOpCode, DeviceCode, native, Storage } from '../../lib/native';
import {
  ConvGeometry, Rng, bitwiseEqual, conv2dBackwardBiasRef, conv2dBackwardWeightRef, conv2dForwardRef, convArg, convOut,
  expectClose, gemmRef,
} from '../native/reference';
import { describeGpu } from './helpers';

const live: Storage[] = [];
afterEach(() => {
  for (const s of live.splice(0)) s.dispose();
});

/** A CUDA storage holding `data` (NaN-filled when only a size is given: outputs must be written). */
function onGpu(data: Float32Array | number): Storage {
  const values = typeof data === 'number' ? new Float32Array(data).fill(NaN) : data;
  const s = new native.Storage(DeviceCode.Cuda, values.length);
  s.write(values);
  live.push(s);
  return s;
}

/** f's output and how many kernels it launched. */
function launches(f: () => Storage): { out: Float32Array; kernels: number } {
  const before = kg.cuda.counters().kernelLaunches;
  const out = f();
  const kernels = kg.cuda.counters().kernelLaunches - before;
  return { out: out.read(), kernels };
}

describeGpu('linearBackwardWeight on CUDA', () => {
  // [m, n, k, kernels]: dw = dyᵀ x in one GEMM whose row sums are db; two launches when its k
  // (the samples) is split, the partial sums added by the split-K reduction.
  const shapes: Array<[number, number, number, number]> = [
    [1, 1, 1, 1], [7, 3, 5, 1], [64, 100, 800, 1], [1000, 10, 100, 2], [33, 200, 9, 1],
  ];
  test.each(shapes)('(%i x %i x %i) against float64, db inside the GEMM, in %i launch(es)', (m, n, k, kernels) => {
    const rng = new Rng(m + 3 * n + 11 * k);
    const dy = rng.array(m * n);
    const x = rng.array(m * k);
    const DY = onGpu(dy), X = onGpu(x);
    let db: Storage | null = null;
    const run = () => launches(() => {
      const dw = onGpu(n * k);
      db = onGpu(n);
      native.linearBackwardWeight(m, n, k, DY, X, dw, db);
      return dw;
    });
    const first = run();
    const firstDb = (db as unknown as Storage).read();
    expect(first.kernels).toBe(kernels);
    const ref = gemmRef(true, false, n, k, m, 1, dy, x, 0, new Float32Array(n * k));
    expectClose(first.out, ref.value, { rtol: 2e-6 * Math.sqrt(m + 1), atol: 1e-6, scale: ref.scale }, 'linearBackwardWeight dw');
    const dbRef = new Float64Array(n), dbScale = new Float64Array(n);
    dy.forEach((v, i) => {
      dbRef[i % n] += v;
      dbScale[i % n] += Math.abs(v);
    });
    expectClose(firstDb, dbRef, { rtol: 2e-6 * Math.sqrt(m + 1), atol: 1e-6, scale: dbScale }, 'linearBackwardWeight db');
    const second = run();
    expect(bitwiseEqual(first.out, second.out)).toBe(true);
    expect(bitwiseEqual(firstDb, (db as unknown as Storage).read())).toBe(true);
    // Without db: the same dw, and no extra kernel.
    const alone = onGpu(n * k);
    native.linearBackwardWeight(m, n, k, DY, X, alone, null);
    expect(bitwiseEqual(first.out, alone.read())).toBe(true);
  });
});

describeGpu('linearForward on CUDA', () => {
  // [m, n, k, kernels]: one launch, or two when k is split over several blocks (a few output
  // tiles and a long k: the bias is then added by the split-K reduction); k = 0 writes the bias.
  const shapes: Array<[number, number, number, number]> = [
    [1, 1, 1, 1], [3, 5, 7, 1], [37, 19, 50, 1], [2, 300, 5, 1], [129, 67, 130, 1], [1, 10, 800, 2], [64, 10, 5000, 2], [5, 3, 0, 1],
  ];
  test.each(shapes)('(%i x %i x %i) against float64 and bitwise gemm + add, in %i launch(es)', (m, n, k, kernels) => {
    const rng = new Rng(m + 7 * n + 13 * k);
    const x = rng.array(m * k);
    const w = rng.array(n * k);
    const b = rng.array(n, -3, 3);
    const X = onGpu(x), W = onGpu(w), B = onGpu(b);
    for (const withBias of [true, false]) {
      const fused = launches(() => {
        const y = onGpu(m * n);
        native.linearForward(m, n, k, X, W, withBias ? B : null, y);
        return y;
      });
      expect(fused.kernels).toBe(kernels);
      const ref = gemmRef(false, true, m, n, k, 1, x, w, 0, new Float32Array(m * n));
      if (withBias) {
        ref.value.forEach((v, i) => (ref.value[i] = v + b[i % n]));
        ref.scale.forEach((v, i) => (ref.scale[i] = v + Math.abs(b[i % n])));
      }
      expectClose(fused.out, ref.value, { rtol: 2e-6 * Math.sqrt(k + 1), atol: 1e-6, scale: ref.scale }, `linearForward bias=${withBias}`);
      // The bias is added after the product, as the separate addition did.
      const unfused = onGpu(m * n);
      native.gemm(false, true, m, n, k, 1, X, W, 0, unfused);
      if (withBias) native.binary(BinaryOpCode.Add, [m, n], [n, 1], [0, 1], unfused, B, unfused);
      expect(bitwiseEqual(fused.out, unfused.read())).toBe(true);
      const again = onGpu(m * n);
      native.linearForward(m, n, k, X, W, withBias ? B : null, again);
      expect(bitwiseEqual(fused.out, again.read())).toBe(true);
    }
  });

  test('refuses a bias of the wrong size, and storages on two devices', () => {
    const y = onGpu(6);
    expect(() => native.linearForward(2, 3, 2, onGpu(4), onGpu(6), onGpu(2), y)).toThrow(/linearForward: bias has 2 elements/);
    const cpuBias = new native.Storage(DeviceCode.Cpu, 3);
    live.push(cpuBias);
    expect(() => native.linearForward(2, 3, 2, onGpu(4), onGpu(6), cpuBias, y)).toThrow(/linearForward: operands are on different devices/);
  });
});

describeGpu('convolution kernels on CUDA', () => {
  const base = { sh: 1, sw: 1, ph: 0, pw: 0 };
  const data = (g: ConvGeometry, seed: number) => {
    const { oh, ow } = convOut(g);
    const rng = new Rng(seed);
    const groups = g.groups ?? 1;
    return {
      x: rng.array(g.n * g.c * g.h * g.w),
      w: rng.array((g.k * g.c * g.kh * g.kw) / groups),
      b: rng.array(g.k, -2, 2),
      dy: rng.array(g.n * g.k * oh * ow),
    };
  };

  // [geometry, kernels]: one GEMM that gathers its patches from x (no im2col pass) and adds the
  // bias, plus the split-K reduction where k (c * kh * kw = 576) is split.
  const forward: Array<[string, ConvGeometry, number]> = [
    ['3x3, padding 1', { n: 2, c: 3, h: 7, w: 9, k: 4, kh: 3, kw: 3, ...base, ph: 1, pw: 1 }, 1],
    ['strided 5x5', { n: 3, c: 5, h: 11, w: 13, k: 6, kh: 5, kw: 5, sh: 2, sw: 3, ph: 2, pw: 1 }, 1],
    ['1x1', { n: 4, c: 7, h: 6, w: 5, k: 3, kh: 1, kw: 1, ...base }, 1],
    ['k split', { n: 1, c: 64, h: 6, w: 6, k: 8, kh: 3, kw: 3, ...base, ph: 1, pw: 1 }, 2],
    ['groups batched (more groups than samples)', { n: 1, c: 6, h: 9, w: 7, k: 4, kh: 3, kw: 2, sh: 2, sw: 1, ph: 1, pw: 0, groups: 2 }, 1],
  ];
  test.each(forward)('forward with its bias in the GEMM: %s', (_, g, kernels) => {
    const { x, w, b } = data(g, 1);
    const { oh, ow } = convOut(g);
    const run = () => launches(() => {
      const y = onGpu(g.n * g.k * oh * ow);
      native.conv2dForward(convArg(g), onGpu(x), onGpu(w), onGpu(b), y);
      return y;
    });
    const first = run();
    expect(first.kernels).toBe(kernels);
    const ref = conv2dForwardRef(g, x, w, b);
    const taps = (g.c / (g.groups ?? 1)) * g.kh * g.kw;
    expectClose(first.out, ref.value, { rtol: 2e-6 * Math.sqrt(taps + 1), atol: 1e-6, scale: ref.scale }, 'conv2d forward');
    expect(bitwiseEqual(first.out, run().out)).toBe(true);
  });

  // One kernel for typical sizes, with float4 loads (planes of a multiple of 4 pixels) or not;
  // two reductions (each of one or more launches) past 2^18 values per channel.
  const bias: Array<[string, ConvGeometry, number | 'several']> = [
    ['26x26 planes (the tutorial\'s first layer)', { n: 5, c: 1, h: 28, w: 28, k: 3, kh: 3, kw: 3, ...base }, 1],
    ['5x7 planes', { n: 3, c: 2, h: 7, w: 9, k: 5, kh: 3, kw: 3, ...base }, 1],
    ['one pixel', { n: 9, c: 2, h: 1, w: 1, k: 4, kh: 1, kw: 1, ...base }, 1],
    ['many channels', { n: 2, c: 1, h: 4, w: 4, k: 300, kh: 1, kw: 1, ...base }, 1],
    ['more than 2^18 values per channel', { n: 3, c: 1, h: 300, w: 300, k: 2, kh: 1, kw: 1, ...base }, 'several'],
  ];
  test.each(bias)('bias gradient: %s', (_, g, kernels) => {
    const { dy } = data(g, 2);
    const run = () => launches(() => {
      const db = onGpu(g.k);
      native.conv2dBackwardBias(convArg(g), onGpu(dy), db);
      return db;
    });
    const first = run();
    if (kernels === 'several') expect(first.kernels).toBeGreaterThan(1);
    else expect(first.kernels).toBe(kernels);
    const ref = conv2dBackwardBiasRef(g, dy);
    const { oh, ow } = convOut(g);
    expectClose(first.out, ref.value, { rtol: 2e-6 * Math.sqrt(g.n * oh * ow), atol: 1e-6, scale: ref.scale }, 'conv2d bias gradient');
    expect(bitwiseEqual(first.out, run().out)).toBe(true);
  });

  // [geometry, kernels]: one GEMM over all samples that gathers their patches from x (no im2col
  // pass), plus the reduction of the partial tiles where the work is split: whole samples per
  // block for many small samples, pixel ranges of one sample for a few large ones.
  const weight: Array<[string, ConvGeometry, number]> = [
    ['many small samples', { n: 40, c: 3, h: 6, w: 6, k: 5, kh: 3, kw: 3, ...base, ph: 1, pw: 1 }, 2],
    ['one large image', { n: 1, c: 2, h: 40, w: 40, k: 3, kh: 3, kw: 3, ...base, ph: 1, pw: 1 }, 2],
    ['two odd images, strided', { n: 2, c: 3, h: 37, w: 41, k: 5, kh: 3, kw: 3, sh: 2, sw: 1, ph: 0, pw: 1 }, 2],
    ['1x1, grouped, read in place', { n: 33, c: 6, h: 7, w: 5, k: 6, kh: 1, kw: 1, ...base, groups: 2 }, 2],
    ['depthwise', { n: 3, c: 8, h: 10, w: 11, k: 8, kh: 3, kw: 3, sh: 1, sw: 2, ph: 1, pw: 1, groups: 8 }, 1],
    ['a few pixels', { n: 2, c: 3, h: 5, w: 5, k: 2, kh: 5, kw: 5, ...base, ph: 2, pw: 2 }, 1],
  ];
  test.each(weight)('weight gradient, the samples summed inside the GEMM: %s', (_, g, kernels) => {
    const { x, w, dy } = data(g, 3);
    const run = (db: Storage | null) => launches(() => {
      const dw = onGpu(w.length);
      native.conv2dBackwardWeight(convArg(g), onGpu(x), onGpu(dy), dw, db);
      return dw;
    });
    const first = run(null);
    expect(first.kernels).toBe(kernels);
    const ref = conv2dBackwardWeightRef(g, x, dy);
    const { oh, ow } = convOut(g);
    expectClose(first.out, ref.value, { rtol: 2e-6 * Math.sqrt(g.n * oh * ow + 1), atol: 1e-6, scale: ref.scale }, 'conv2d weight gradient');
    expect(bitwiseEqual(first.out, run(null).out)).toBe(true);
    // The bias gradient as the GEMM's row sums: no launch more, the same dw.
    const db = onGpu(g.k), db2 = onGpu(g.k);
    const withBias = run(db);
    expect(withBias.kernels).toBe(kernels);
    expect(bitwiseEqual(first.out, withBias.out)).toBe(true);
    const dbRef = conv2dBackwardBiasRef(g, dy);
    expectClose(db.read(), dbRef.value, { rtol: 2e-6 * Math.sqrt(g.n * oh * ow), atol: 1e-6, scale: dbRef.scale }, 'conv2d bias gradient in the GEMM');
    run(db2);
    expect(bitwiseEqual(db.read(), db2.read())).toBe(true);
  });
});
