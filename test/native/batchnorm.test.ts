// Batch norm: forward (training and inference) and both backward forms against float64
// references, plus the robustness the library is built around: exact statistics when |mean| >> std,
// constant channels, non-negative variance; for 2-D (l = 1) and 4-D (l > 1) inputs.
import { BnRunningUpdateArgs, native } from '../../lib/native';
import { BnGeometry, Rng, bnBackwardRef, bnNormalizeRef, bnStatsRef, disposeAll, empty, expectClose, store } from './reference';

afterEach(disposeAll);

const EPS = 1e-5;
/** The training forward alone: no running statistics, no status words. */
const NO_UPDATE: BnRunningUpdateArgs = [null, null, 0, false, null, false, null, 0];

interface TrainOutputs {
  y: Float32Array;
  mean: Float32Array;
  /** The rest of the mean: mean = mean + meanLo, each rounded to float. */
  meanLo: Float32Array;
  invstd: Float32Array;
  variance: Float32Array;
}

function forwardTrain(g: BnGeometry, x: Float32Array, gamma: Float32Array, beta: Float32Array, eps = EPS): TrainOutputs {
  const y = empty(x.length);
  const mean = empty(g.c);
  const meanLo = empty(g.c);
  const invstd = empty(g.c);
  const variance = empty(g.c);
  native.batchNormForwardTrain([g.n, g.c, g.l], store(x), store(gamma), store(beta), eps, y, mean, meanLo, invstd, variance, ...NO_UPDATE);
  return { y: y.read(), mean: mean.read(), meanLo: meanLo.read(), invstd: invstd.read(), variance: variance.read() };
}

function backwardTrain(
  g: BnGeometry, x: Float32Array, dy: Float32Array, gamma: Float32Array, mean: Float32Array, invstd: Float32Array, withDx = true,
  meanLo: Float32Array = new Float32Array(g.c),
) {
  const dx = withDx ? empty(x.length) : null;
  const dgamma = empty(g.c);
  const dbeta = empty(g.c);
  native.batchNormBackwardTrain([g.n, g.c, g.l], store(x), store(dy), store(gamma), store(mean), store(meanLo), store(invstd), dx, dgamma, dbeta);
  return { dx: dx?.read(), dgamma: dgamma.read(), dbeta: dbeta.read() };
}

/** Shapes: 2-D (l = 1), 4-D (l > 1), odd sizes, and sizes large enough to be split into chunks. */
const shapes: BnGeometry[] = [
  { n: 1, c: 1, l: 1 }, { n: 7, c: 3, l: 1 }, { n: 64, c: 128, l: 1 }, { n: 5000, c: 7, l: 1 }, { n: 9, c: 1500, l: 1 },
  { n: 2, c: 3, l: 13 }, { n: 5, c: 1, l: 33 }, { n: 8, c: 20, l: 169 }, { n: 40, c: 3, l: 1000 },
];

describe('batch norm, random data', () => {
  test.each(shapes)('forward train and infer %o', (g) => {
    const rng = new Rng(g.n * 131 + g.c * 7 + g.l);
    const x = rng.array(g.n * g.c * g.l, -3, 5);
    const gamma = rng.array(g.c, 0.5, 2);
    const beta = rng.array(g.c);
    const out = forwardTrain(g, x, gamma, beta);
    const ref = bnStatsRef(g, x);
    expectClose(out.mean, ref.mean, { rtol: 1e-6, atol: 1e-7 }, 'mean');
    expectClose(out.variance, ref.variance, { rtol: 1e-5, atol: 0 }, 'variance');
    expectClose(out.invstd, Array.from(ref.variance, (v) => 1 / Math.sqrt(v + EPS)), { rtol: 1e-6, atol: 0 }, 'invstd');
    expectClose(out.y, bnNormalizeRef(g, x, gamma, beta, ref.mean, ref.variance, EPS), { rtol: 1e-5, atol: 1e-5 }, 'y');

    // Inference with other statistics.
    const mean = rng.array(g.c);
    const variance = rng.array(g.c, 0.1, 3);
    const y = empty(x.length);
    native.batchNormForwardInfer([g.n, g.c, g.l], store(x), store(gamma), store(beta), store(mean), store(variance), EPS, y);
    expectClose(y.read(), bnNormalizeRef(g, x, gamma, beta, mean, variance, EPS), { rtol: 1e-5, atol: 1e-5 }, 'y (infer)');

    // Inference with the batch's own statistics reproduces training's output, up to the part of
    // the mean that a float cannot hold (training also subtracts meanLo).
    const same = empty(x.length);
    native.batchNormForwardInfer([g.n, g.c, g.l], store(x), store(gamma), store(beta), store(out.mean), store(out.variance), EPS, same);
    const shifted = out.y.map((v, i) => v + out.meanLo[Math.floor(i / g.l) % g.c] * gamma[Math.floor(i / g.l) % g.c] * out.invstd[Math.floor(i / g.l) % g.c]);
    expectClose(same.read(), shifted, { rtol: 1e-6, atol: 1e-6 }, 'y (infer with the batch statistics)');
  });

  test.each(shapes)('backward train and infer %o', (g) => {
    const rng = new Rng(g.n * 17 + g.c * 3 + g.l * 11);
    const x = rng.array(g.n * g.c * g.l, -2, 3);
    const dy = rng.array(x.length);
    const gamma = rng.array(g.c, -2, 2);
    const stats = bnStatsRef(g, x);
    const mean = Float32Array.from(stats.mean);
    const invstd = Float32Array.from(stats.variance, (v) => 1 / Math.sqrt(v + EPS));

    const out = backwardTrain(g, x, dy, gamma, mean, invstd);
    const ref = bnBackwardRef(g, x, dy, gamma, mean, invstd, true);
    expectClose(out.dbeta, ref.dbeta.value, { rtol: 1e-6, atol: 1e-6, scale: ref.dbeta.scale }, 'dbeta');
    expectClose(out.dgamma, ref.dgamma.value, { rtol: 1e-6, atol: 1e-6, scale: ref.dgamma.scale }, 'dgamma');
    expectClose(out.dx!, ref.dx.value, { rtol: 1e-5, atol: 1e-6, scale: ref.dx.scale }, 'dx');
    const noDx = backwardTrain(g, x, dy, gamma, mean, invstd, false);
    expect(Array.from(noDx.dgamma)).toEqual(Array.from(out.dgamma));

    // Inference form: statistics are constants given as (mean, var).
    const variance = rng.array(g.c, 0.1, 3);
    const dx = empty(x.length);
    const dgamma = empty(g.c);
    const dbeta = empty(g.c);
    native.batchNormBackwardInfer([g.n, g.c, g.l], store(x), store(dy), store(gamma), store(mean), store(variance), EPS, dx, dgamma, dbeta);
    const invRef = Array.from(variance, (v) => 1 / Math.sqrt(v + EPS));
    const inf = bnBackwardRef(g, x, dy, gamma, mean, invRef, false);
    expectClose(dx.read(), inf.dx.value, { rtol: 1e-5, atol: 1e-7 }, 'dx (infer)');
    expectClose(dgamma.read(), inf.dgamma.value, { rtol: 1e-5, atol: 1e-6, scale: inf.dgamma.scale }, 'dgamma (infer)');
    expectClose(dbeta.read(), inf.dbeta.value, { rtol: 1e-6, atol: 1e-6, scale: inf.dbeta.scale }, 'dbeta (infer)');
  });
});

describe('batch norm robustness', () => {
  // Channel 0: mean 1e4 with std 0.1; channel 1: constant 3.7; channel 2: mean -5e3, std 1e-2;
  // channel 3: ordinary data.
  function hardData(g: BnGeometry, rng: Rng): Float32Array {
    const x = new Float32Array(g.n * g.c * g.l);
    for (let i = 0; i < g.n; i++)
      for (let j = 0; j < g.l; j++) {
        const at = (ch: number) => (i * g.c + ch) * g.l + j;
        x[at(0)] = 1e4 + 0.1 * rng.normal();
        x[at(1)] = 3.7;
        x[at(2)] = -5e3 + 1e-2 * rng.normal();
        x[at(3)] = rng.normal();
      }
    return x;
  }

  test.each([
    { n: 256, c: 4, l: 1 },
    { n: 16, c: 4, l: 49 },
    { n: 4, c: 4, l: 5000 },
  ])('large mean / small spread (normalized output exact to 1e-5 of the spread), constant channel %o', (g) => {
    const rng = new Rng(2024 + g.l);
    const x = hardData(g, rng);
    const gamma = Float32Array.from([1, 1.5, 1, 2]);
    const beta = Float32Array.from([0, 0.25, -1, 0.5]);
    const out = forwardTrain(g, x, gamma, beta);
    const ref = bnStatsRef(g, x);

    expect(Array.from(out.variance).every((v) => v >= 0)).toBe(true);
    expectClose(out.variance, ref.variance, { rtol: 1e-5, atol: 0 }, 'batch variance vs float64 of the same data');
    expectClose(out.mean, ref.mean, { rtol: 1e-7, atol: 0 }, 'mean');
    // The pair holds the mean to far better than float: within 1e-6 of the spread.
    for (const ch of [0, 2, 3]) {
      expect(Math.abs(out.mean[ch] + out.meanLo[ch] - ref.mean[ch]) / Math.sqrt(ref.variance[ch])).toBeLessThan(1e-6);
    }
    // The normalized output, (y - beta) / gamma, is within 1e-5 of the exact one in units of the
    // spread, at mean 1e4 with spread 0.1 too (x - float(mean) alone is off by up to 5e-3 there).
    const exact = bnNormalizeRef(g, x, new Float32Array(g.c).fill(1), new Float32Array(g.c), ref.mean, ref.variance, EPS);
    const normalized = out.y.map((v, i) => (v - beta[Math.floor(i / g.l) % g.c]) / gamma[Math.floor(i / g.l) % g.c]);
    expectClose(normalized, exact, { rtol: 0, atol: 1e-5 }, 'normalized y');

    for (const ch of [0, 2, 3]) {
      // y / gamma has unit variance (up to the eps in the denominator) and zero mean.
      let s = 0;
      let s2 = 0;
      const m = g.n * g.l;
      for (let i = 0; i < g.n; i++)
        for (let j = 0; j < g.l; j++) {
          const v = (out.y[(i * g.c + ch) * g.l + j] - beta[ch]) / gamma[ch];
          s += v;
          s2 += v * v;
        }
      const mean = s / m;
      const variance = s2 / m - mean * mean;
      const want = ref.variance[ch] / (ref.variance[ch] + EPS);
      expect(Math.abs(variance / want - 1)).toBeLessThan(1e-3);
      // Centred on the exact mean, not on the float one (which is off by up to 0.025 std for
      // channel 2, whose values are quantized in steps of 0.05 std).
      expect(Math.abs(mean)).toBeLessThan(1e-5);
    }

    // The constant channel: exact mean, zero variance, output exactly beta.
    expect(out.mean[1]).toBe(Math.fround(3.7));
    expect(out.variance[1]).toBe(0);
    expect(out.invstd[1]).toBe(Math.fround(1 / Math.sqrt(Math.fround(EPS))));
    let notBeta = 0;
    for (let i = 0; i < g.n; i++)
      for (let j = 0; j < g.l; j++) if (out.y[(i * g.c + 1) * g.l + j] !== beta[1]) notBeta++;
    expect(notBeta).toBe(0);

    // Backward through the constant channel: zero dgamma, finite dx.
    const dy = rng.array(x.length);
    const back = backwardTrain(g, x, dy, gamma, out.mean, out.invstd, true, out.meanLo);
    expect(back.dgamma[1]).toBe(0);
    expect(back.dx!.every((v) => Number.isFinite(v))).toBe(true);
    const bref = bnBackwardRef(g, x, dy, gamma, Float64Array.from(out.mean, (v, ch) => v + out.meanLo[ch]), out.invstd, true);
    expectClose(back.dgamma, bref.dgamma.value, { rtol: 1e-5, atol: 1e-6, scale: bref.dgamma.scale }, 'dgamma');
    expectClose(back.dx!, bref.dx.value, { rtol: 1e-4, atol: 1e-6, scale: bref.dx.scale }, 'dx');
  });

  test('an empty batch reports zero statistics', () => {
    const out = forwardTrain({ n: 0, c: 2, l: 3 }, new Float32Array(0), Float32Array.from([1, 1]), Float32Array.from([0, 0]));
    expect(Array.from(out.mean)).toEqual([0, 0]);
    expect(Array.from(out.variance)).toEqual([0, 0]);
  });
});

describe('batch norm near the float32 limit', () => {
  // Channel 0 spans [-3e38, 3e38]: (x - mean)^2 and the variance exceed float32, the normalized
  // values do not. Channel 1 is ordinary data beside it.
  test.each([
    { n: 7, c: 2, l: 1 }, { n: 5000, c: 2, l: 1 }, { n: 3, c: 2, l: 13 }, { n: 3, c: 2, l: 7000 },
  ])('a channel of values near +-1e38 normalizes like the float64 reference %o', (g) => {
    const rng = new Rng(97 + g.n + g.l);
    const x = new Float32Array(g.n * g.c * g.l);
    for (let i = 0; i < g.n; i++)
      for (let j = 0; j < g.l; j++) {
        x[(i * g.c) * g.l + j] = rng.array(1, -3e38, 3e38)[0];
        x[(i * g.c + 1) * g.l + j] = rng.array(1, -2, 2)[0];
      }
    const gamma = Float32Array.from([1.5, 1]);
    const beta = Float32Array.from([0.25, 0]);
    const out = forwardTrain(g, x, gamma, beta);
    const ref = bnStatsRef(g, x);
    expectClose(out.mean, ref.mean, { rtol: 1e-6, atol: 0 }, 'mean');
    expect(out.variance[0]).toBe(Infinity); // beyond float32; the JS layer refuses to keep it as a running variance
    expectClose(out.invstd, Array.from(ref.variance, (v) => 1 / Math.sqrt(v + EPS)), { rtol: 1e-5, atol: 0 }, 'invstd');
    expectClose(out.y, bnNormalizeRef(g, x, gamma, beta, ref.mean, ref.variance, EPS), { rtol: 1e-5, atol: 1e-5 }, 'y');

    const dy = rng.array(x.length);
    const back = backwardTrain(g, x, dy, gamma, out.mean, out.invstd);
    expect(back.dx!.every(Number.isFinite)).toBe(true);
    const bref = bnBackwardRef(g, x, dy, gamma, out.mean, out.invstd, true);
    expectClose(back.dgamma, bref.dgamma.value, { rtol: 1e-5, atol: 1e-6, scale: bref.dgamma.scale }, 'dgamma');
    expectClose(back.dbeta, bref.dbeta.value, { rtol: 1e-6, atol: 1e-6, scale: bref.dbeta.scale }, 'dbeta');
  });
});
