// Results must not depend on the number of CPU threads: every kernel, on shapes large enough to
// take its parallel paths, gives bitwise identical outputs with 1 and with 2 (and 3) threads.
import { BinaryOpCode, native, Storage } from '../../lib/native';
import { ConvGeometry, Rng, bitwiseEqual, convArg, convOut, disposeAll, empty, store, withThreads } from './reference';

afterEach(disposeAll);

/** Runs `kernel` (which writes into fresh outputs it returns) at each thread count and compares. */
function expectSameForAnyThreads(label: string, kernel: () => Storage[]): void {
  const results = [1, 2, 3].map((t) => withThreads(t, () => kernel().map((s) => s.read())));
  for (let t = 1; t < results.length; t++) {
    results[t].forEach((out, i) => {
      if (!bitwiseEqual(results[0][i], out)) throw new Error(`${label}: output ${i} differs between 1 and ${t + 1} threads`);
    });
  }
}

const rng = new Rng(42);

describe('thread-count independence', () => {
  test('setCpuThreads takes effect', () => {
    expect(withThreads(1, () => native.cpuThreads())).toBe(1);
    expect(withThreads(3, () => native.cpuThreads())).toBe(3);
  });

  test('gemm', () => {
    const [m, n, k] = [150, 230, 700];
    const A = store(rng.array(m * k));
    const B = store(rng.array(k * n));
    expectSameForAnyThreads('gemm', () => {
      const C = empty(m * n);
      native.gemm(false, true, m, n, k, 1, A, B, 0, C);
      return [C];
    });
  });

  test('conv2d, all parts (tutorial layer 2 at batch 16, a padded strided layer, a one-channel first layer, grouped and depthwise)', () => {
    const geometries: ConvGeometry[] = [
      { n: 16, c: 20, h: 13, w: 13, k: 50, kh: 5, kw: 5, sh: 1, sw: 1, ph: 0, pw: 0 },
      { n: 21, c: 1, h: 28, w: 28, k: 20, kh: 5, kw: 5, sh: 1, sw: 1, ph: 0, pw: 0 },
      { n: 3, c: 3, h: 30, w: 30, k: 8, kh: 3, kw: 3, sh: 2, sw: 2, ph: 1, pw: 1 },
      { n: 16, c: 20, h: 13, w: 13, k: 50, kh: 5, kw: 5, sh: 1, sw: 1, ph: 0, pw: 0, groups: 5 },
      { n: 5, c: 32, h: 15, w: 15, k: 32, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1, groups: 32 },
      // the shifted-view forward (a ResNet's 3x3 layer), batches on both sides of its per-sample split
      { n: 40, c: 16, h: 8, w: 8, k: 16, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1 },
      { n: 3, c: 64, h: 8, w: 8, k: 64, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1 },
      // strided layers' backward data, phase by phase
      { n: 4, c: 16, h: 32, w: 32, k: 32, kh: 3, kw: 3, sh: 2, sw: 2, ph: 1, pw: 1 },
      { n: 13, c: 12, h: 15, w: 15, k: 20, kh: 3, kw: 3, sh: 2, sw: 2, ph: 1, pw: 1 },
      // a filter gradient of 4 blocks of samples (2 samples each): by blocks with 1 and 2 threads,
      // by taps with 3, which must agree bit for bit
      { n: 8, c: 16, h: 32, w: 32, k: 32, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1 },
    ];
    for (const g of geometries) {
      const { oh, ow } = convOut(g);
      const x = store(rng.array(g.n * g.c * g.h * g.w));
      const w = store(rng.array((g.k * g.c * g.kh * g.kw) / (g.groups ?? 1)));
      const b = store(rng.array(g.k));
      const dy = store(rng.array(g.n * g.k * oh * ow));
      expectSameForAnyThreads(`conv2d ${JSON.stringify(g)}`, () => {
        const y = empty(dy.numel);
        const dx = empty(x.numel);
        const dw = empty(w.numel);
        const db = empty(g.k);
        native.conv2dForward(convArg(g), x, w, b, y);
        native.conv2dBackwardData(convArg(g), dy, w, dx);
        native.conv2dBackwardWeight(convArg(g), x, dy, dw, null);
        native.conv2dBackwardBias(convArg(g), dy, db);
        // The bias gradient taken with the filter gradient (as it reads dy) is the same sums.
        const dwWithBias = empty(w.numel);
        const dbWithWeights = empty(g.k);
        native.conv2dBackwardWeight(convArg(g), x, dy, dwWithBias, dbWithWeights);
        if (!bitwiseEqual(dw.read(), dwWithBias.read())) throw new Error(`conv2d ${JSON.stringify(g)}: dw differs when db is asked for`);
        if (!bitwiseEqual(db.read(), dbWithWeights.read())) throw new Error(`conv2d ${JSON.stringify(g)}: db differs between conv2dBackwardWeight and conv2dBackwardBias`);
        return [y, dx, dw, db];
      });
    }
  });

  test('avgpool2d', () => {
    const arg: [number, number, number, number, number, number, number, number] = [16, 20, 26, 26, 3, 3, 2, 2];
    const x = store(rng.array(16 * 20 * 26 * 26));
    const dy = store(rng.array(16 * 20 * 12 * 12));
    expectSameForAnyThreads('avgpool2d', () => {
      const y = empty(dy.numel);
      const dx = empty(x.numel);
      native.avgPool2dForward(arg, x, y);
      native.avgPool2dBackward(arg, dy, dx);
      return [y, dx];
    });
  });

  test.each([
    [64, 20, 676],
    [8192, 33, 1],
  ])('batch norm (%i, %i, %i)', (n, c, l) => {
    const x = store(rng.array(n * c * l, 5, 9));
    const dy = store(rng.array(n * c * l));
    const gamma = store(rng.array(c));
    const beta = store(rng.array(c));
    const variance = store(rng.array(c, 0.5, 2));
    expectSameForAnyThreads(`batch norm ${[n, c, l]}`, () => {
      const outs = [n * c * l, c, c, c, c, n * c * l, c, c, n * c * l, n * c * l, c, c].map((k) => empty(k));
      const [y, mean, meanLo, invstd, bvar, dx, dgamma, dbeta, yInfer, dxInfer, dgammaInfer, dbetaInfer] = outs;
      native.batchNormForwardTrain([n, c, l], x, gamma, beta, 1e-5, y, mean, meanLo, invstd, bvar, null, null, 0, false, null, false, null, 0);
      native.batchNormBackwardTrain([n, c, l], x, dy, gamma, mean, meanLo, invstd, dx, dgamma, dbeta);
      native.batchNormForwardInfer([n, c, l], x, gamma, beta, mean, variance, 1e-5, yInfer);
      native.batchNormBackwardInfer([n, c, l], x, dy, gamma, mean, variance, 1e-5, dxInfer, dgammaInfer, dbetaInfer);
      return outs;
    });
  });

  // Batch norm over planes runs channel by channel (both passes over a channel before the next)
  // when there are at least 4 channels per thread, else pass by pass over the whole batch: with
  // 5 channels, 1 thread takes the first schedule and 2 or 3 threads the second, so this compares
  // the two, through the running statistics' update, the checks' status and the fused kernels.
  test.each([
    [48, 5, 26, 26],
    [64, 10, 9, 9],
  ])('batch norm, fused with ReLU and the 2x2 pool, and the running statistics (%i, %i, %i, %i)', (n, c, h, w) => {
    const l = h * w, oh = Math.floor(h / 2), ow = Math.floor(w / 2);
    const x = store(rng.array(n * c * l, -3, 4));
    const dy = store(rng.array(n * c * l));
    const pdy = store(rng.array(n * c * oh * ow));
    const gamma = store(rng.array(c, 0.5, 2));
    const beta = store(rng.array(c, -1, 1));
    const running = [rng.array(c), rng.array(c, 0.5, 2)];
    expectSameForAnyThreads(`batch norm planes ${[n, c, h, w]}`, () => {
      const outs: Storage[] = [];
      const stats = () => {
        const s = [empty(c), empty(c), empty(c), empty(c)];
        outs.push(...s);
        return s;
      };
      const update = () => {
        const u = [store(running[0]), store(running[1]), store(new Float32Array([3])), empty(c + 2)];
        outs.push(...u);
        return u;
      };
      const out = (k: number) => {
        const s = empty(k);
        outs.push(s);
        return s;
      };
      const [y, ry, py] = [out(n * c * l), out(n * c * l), out(n * c * oh * ow)];
      const [m0, lo0, inv0, var0] = stats();
      const [rm, rv, seen, status] = update();
      native.batchNormForwardTrain([n, c, l], x, gamma, beta, 1e-5, y, m0, lo0, inv0, var0, rm, rv, 0.1, true, seen, false, status, 2);
      native.batchNormBackwardTrain([n, c, l], x, dy, gamma, m0, lo0, inv0, out(n * c * l), out(c), out(c));
      const [m1, lo1, inv1, var1] = stats();
      native.batchNormReluForwardTrain([n, c, l], x, gamma, beta, 1e-5, ry, m1, lo1, inv1, var1, null, null, 0, false, null, false, null, 0);
      native.batchNormReluBackwardTrain([n, c, l], x, ry, dy, gamma, m1, lo1, inv1, out(n * c * l), out(c), out(c));
      const [m2, lo2, inv2, var2] = stats();
      const [rm2, rv2, seen2, status2] = update();
      const pool: [number, number, number, number, number, number, number, number] = [n, c, h, w, 2, 2, 2, 2];
      native.batchNormReluPoolForwardTrain(pool, x, gamma, beta, 1e-5, py, m2, lo2, inv2, var2, rm2, rv2, 0.1, true, seen2, false, status2, 0);
      native.batchNormReluPoolBackwardTrain(pool, x, pdy, gamma, beta, m2, lo2, inv2, out(n * c * l), out(c), out(c));
      native.batchNormReluPoolBackwardTrain(pool, x, pdy, gamma, beta, m2, lo2, inv2, null, out(c), out(c));
      return outs;
    });
  });

  test('elementwise, reductions, loss, argmax, sgd, adam, l2Norm', () => {
    const big = 7 * 42857;
    const a = store(rng.array(big));
    const b = store(rng.array(big));
    const logits = store(rng.array(20000 * 10, -5, 5));
    const labels = store(Float32Array.from({ length: 20000 }, (_, i) => i % 10));
    const dloss = store(rng.array(20000));
    const param0 = rng.array(big);
    expectSameForAnyThreads('elementwise', () => {
      const sum = empty(big);
      const full = empty(1);
      const cols = empty(7);
      const rows = empty(big / 7);
      const loss = empty(20000);
      const dlogits = empty(200000);
      const argmax = empty(20000);
      const p = store(param0);
      const velocity = store(param0);
      const m = store(param0);
      const v = store(param0.map(Math.abs));
      const norm = empty(1);
      native.binary(BinaryOpCode.Mul, [big / 7, 7], [7, 1], [0, 1], a, b, sum);
      native.reduceSum(1, big, 1, 1 / big, a, full);
      native.reduceSum(1, big / 7, 7, 1, a, cols);
      native.reduceSum(big / 7, 7, 1, 1, a, rows);
      native.softmaxXentForward(20000, 10, logits, labels, loss);
      native.softmaxXentBackward(20000, 10, logits, labels, dloss, 1, dlogits);
      native.argmaxRows(20000, 10, logits, argmax);
      native.axpby(0.5, a, 0.25, p);
      native.sgdUpdate(0.1, 0.9, 1e-4, true, p, b, velocity);
      native.adamUpdate(0.9, 0.999, 1e-3, 1e-8, 1e-2, 0, p, b, m, v);
      native.l2Norm(a, norm, 0);
      return [sum, full, cols, rows, loss, dlogits, argmax, p, velocity, m, v, norm];
    });
  });
});
