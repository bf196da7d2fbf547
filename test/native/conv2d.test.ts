// Convolution forward and the three backward parts against float64 references (the backward
// references are the transposes of the forward map, written independently as loops).
import { native } from '../../lib/native';
import {
  ConvGeometry, Rng, bitwiseEqual, conv2dBackwardBiasRef, conv2dBackwardDataRef, conv2dBackwardWeightRef, conv2dForwardRef,
  convArg, convOut, disposeAll, empty, expectClose, store, withThreads,
} from './reference';

afterEach(disposeAll);

function tol(terms: number) {
  return { rtol: 2e-6 * Math.sqrt(terms + 1), atol: 1e-6 };
}

function checkAll(g: ConvGeometry, rng: Rng, withBias = true): void {
  const { oh, ow } = convOut(g);
  const groups = g.groups ?? 1;
  const taps = (g.c / groups) * g.kh * g.kw;  // terms of one output
  const x = rng.array(g.n * g.c * g.h * g.w);
  const w = rng.array(g.k * taps);
  const b = rng.array(g.k);
  const dy = rng.array(g.n * g.k * oh * ow);
  const label = JSON.stringify(g);

  const y = empty(dy.length);
  native.conv2dForward(convArg(g), store(x), store(w), withBias ? store(b) : null, y);
  const yRef = conv2dForwardRef(g, x, w, withBias ? b : null);
  expectClose(y.read(), yRef.value, { ...tol(taps), scale: yRef.scale }, `forward ${label}`);

  const dx = empty(x.length);
  native.conv2dBackwardData(convArg(g), store(dy), store(w), dx);
  const dxRef = conv2dBackwardDataRef(g, dy, w);
  expectClose(dx.read(), dxRef.value, { ...tol((g.k / groups) * g.kh * g.kw), scale: dxRef.scale }, `backward data ${label}`);

  const dw = empty(w.length);
  native.conv2dBackwardWeight(convArg(g), store(x), store(dy), dw, null);
  const dwRef = conv2dBackwardWeightRef(g, x, dy);
  expectClose(dw.read(), dwRef.value, { ...tol(g.n * oh * ow), scale: dwRef.scale }, `backward weight ${label}`);

  const db = empty(g.k);
  native.conv2dBackwardBias(convArg(g), store(dy), db);
  const dbRef = conv2dBackwardBiasRef(g, dy);
  expectClose(db.read(), dbRef.value, { rtol: 1e-6, atol: 1e-6, scale: dbRef.scale }, `backward bias ${label}`);

  // The weight and bias gradients in one call (what the autograd uses when both are wanted).
  const dw2 = empty(w.length), db2 = empty(g.k);
  native.conv2dBackwardWeight(convArg(g), store(x), store(dy), dw2, db2);
  expectClose(dw2.read(), dwRef.value, { ...tol(g.n * oh * ow), scale: dwRef.scale }, `backward weight with bias ${label}`);
  expectClose(db2.read(), dbRef.value, { rtol: 1e-6, atol: 1e-6, scale: dbRef.scale }, `backward bias with weight ${label}`);
}

const base = { sh: 1, sw: 1, ph: 0, pw: 0 };

/** Random kernel, padding, image, batch and strides, with the channels that `channels` draws. */
function randomGeometry(rng: Rng, channels: () => { c: number; k: number; groups?: number }): ConvGeometry {
  const kh = rng.int(1, 5);
  const kw = rng.int(1, 5);
  const ph = rng.int(0, 2);
  const pw = rng.int(0, 2);
  const h = rng.int(Math.max(1, kh - 2 * ph), 12);
  const w = rng.int(Math.max(1, kw - 2 * pw), 12);
  const n = rng.int(1, 4);
  return { n, ...channels(), h, w, kh, kw, sh: rng.int(1, 3), sw: rng.int(1, 3), ph, pw };
}

describe('conv2d', () => {
  test('1x1 kernel, single pixel, single channel', () => {
    checkAll({ n: 1, c: 1, h: 1, w: 1, k: 1, kh: 1, kw: 1, ...base }, new Rng(1));
    checkAll({ n: 3, c: 2, h: 4, w: 5, k: 7, kh: 1, kw: 1, ...base }, new Rng(2), false);
  });

  test('stride 2 with padding 1 and 2, odd kernels', () => {
    const rng = new Rng(3);
    checkAll({ n: 2, c: 3, h: 9, w: 7, k: 5, kh: 3, kw: 3, sh: 2, sw: 2, ph: 1, pw: 1 }, rng);
    checkAll({ n: 3, c: 2, h: 8, w: 11, k: 4, kh: 5, kw: 3, sh: 2, sw: 1, ph: 2, pw: 1 }, rng);
    checkAll({ n: 1, c: 5, h: 13, w: 13, k: 7, kh: 5, kw: 5, sh: 2, sw: 2, ph: 2, pw: 2 }, rng, false);
    checkAll({ n: 2, c: 1, h: 6, w: 6, k: 3, kh: 3, kw: 1, sh: 3, sw: 2, ph: 0, pw: 2 }, rng);
  });

  test('padding larger than the image reach (rows and columns entirely in the padding)', () => {
    checkAll({ n: 2, c: 2, h: 3, w: 2, k: 3, kh: 3, kw: 3, sh: 1, sw: 1, ph: 2, pw: 2 }, new Rng(4));
    // Padding many times the image: no padded copy (native/cpu/conv_padding.h), the bounds handling.
    checkAll({ n: 2, c: 3, h: 2, w: 3, k: 2, kh: 3, kw: 2, sh: 2, sw: 3, ph: 11, pw: 9 }, new Rng(5));
  });

  test('random geometries', () => {
    const rng = new Rng(5);
    for (let t = 0; t < 10; t++) {
      checkAll(randomGeometry(rng, () => ({ c: rng.int(1, 4), k: rng.int(1, 9) })), rng, rng.next() < 0.7);
    }
  });

  test('the tutorial network shapes (small batches), crossing GEMM tiles and chunks', () => {
    const rng = new Rng(6);
    checkAll({ n: 8, c: 1, h: 28, w: 28, k: 20, kh: 3, kw: 3, ...base }, rng);
    checkAll({ n: 4, c: 20, h: 13, w: 13, k: 50, kh: 5, kw: 5, ...base }, rng);
  });
});

// Backward data with unit stride and no padding adds the column matrix into dx one input row at a
// time, over all the taps that reach it (for rows up to 16 wide, in each ISA's build); otherwise
// it goes tap by tap through the general path. Both give every element its terms in increasing
// tap order, so they agree bit for bit. An unpadded convolution of an (h + 2) x (w + 2) image
// has the same output size, and the same column matrix gradient, as one of the h x w image inside
// it with padding 1, which takes the general path: dx inside the border must be the same bits.
describe('conv2d backward data, row by row', () => {
  function check(g: ConvGeometry, rng: Rng): void {
    const { oh, ow } = convOut(g);
    const w = rng.array((g.k * g.c * g.kh * g.kw) / (g.groups ?? 1));
    const dy = rng.array(g.n * g.k * oh * ow);
    const label = JSON.stringify(g);
    const run = (geom: ConvGeometry, threads: number) => withThreads(threads, () => {
      const dx = empty(geom.n * geom.c * geom.h * geom.w);
      native.conv2dBackwardData(convArg(geom), store(dy), store(w), dx);
      return dx.read();
    });
    const dx = run(g, 1);
    const ref = conv2dBackwardDataRef(g, dy, w);
    expectClose(dx, ref.value, { ...tol((g.k / (g.groups ?? 1)) * g.kh * g.kw), scale: ref.scale }, `backward data ${label}`);
    expect(bitwiseEqual(run(g, 2), dx)).toBe(true);

    const padded = { ...g, h: g.h - 2, w: g.w - 2, ph: 1, pw: 1 };
    const general = run(padded, 1);
    const inside = new Float32Array(general.length);
    for (let plane = 0; plane < g.n * g.c; plane++)
      for (let y = 0; y < padded.h; y++)
        for (let x = 0; x < padded.w; x++) inside[(plane * padded.h + y) * padded.w + x] = dx[(plane * g.h + y + 1) * g.w + x + 1];
    if (!bitwiseEqual(general, inside)) throw new Error(`row-by-row and general col2im differ for ${label}`);
  }

  test('kernels 1x1 to 7x7, rows 3 to 18 wide (one vector, two, and past 16 the general path)', () => {
    const rng = new Rng(14);
    const kernels = [[1, 1], [3, 3], [5, 5], [7, 7], [2, 4], [5, 3], [1, 6]];
    for (const [kh, kw] of kernels) {
      for (const w of [kw + 2, 8, 9, 13, 16, 17, 18]) {
        if (w < Math.max(3, kw)) continue;
        const h = rng.int(Math.max(3, kh), 15);
        check({ n: rng.int(1, 5), c: rng.int(1, 6), h, w, k: rng.int(1, 9), kh, kw, ...base }, rng);
        disposeAll();
      }
    }
  });

  test('the tutorial layer, groups, and chunks of columns that end inside a sample', () => {
    const rng = new Rng(15);
    check({ n: 5, c: 20, h: 13, w: 13, k: 50, kh: 5, kw: 5, ...base }, rng);
    check({ n: 3, c: 6, h: 11, w: 10, k: 9, kh: 3, kw: 3, ...base, groups: 3 }, rng);
    // 484 * 9 taps make chunks of 240 columns: 30 output rows, while a sample has 64.
    check({ n: 5, c: 484, h: 10, w: 10, k: 4, kh: 3, kw: 3, ...base }, rng);
  });
});

// Grouped: each group a convolution over its own slice of channels and filters. Depthwise with
// many groups runs the groups in parallel (one GEMM each), few groups one after another.
describe('conv2d with groups', () => {
  test('random geometries, groups 2, 3 and depthwise, odd sizes, strides and paddings', () => {
    const rng = new Rng(11);
    for (let t = 0; t < 12; t++) {
      const channels = () => {
        if (t % 3 === 2) {  // depthwise: c groups, with a channel multiplier of 1 or 2
          const c = rng.int(1, 7);
          return { c, k: c * rng.int(1, 3), groups: c };
        }
        const groups = 2 + (t % 3);
        return { c: groups * rng.int(1, 3), k: groups * rng.int(1, 3), groups };
      };
      checkAll(randomGeometry(rng, channels), rng, rng.next() < 0.7);
    }
  });

  test('depthwise with many channels, 1x1 grouped, and a batch spread over backward-data tasks', () => {
    const rng = new Rng(12);
    checkAll({ n: 3, c: 33, h: 9, w: 7, k: 33, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1, groups: 33 }, rng);
    checkAll({ n: 2, c: 12, h: 5, w: 7, k: 9, kh: 1, kw: 1, ...base, groups: 3 }, rng);
    checkAll({ n: 37, c: 4, h: 3, w: 3, k: 6, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1, groups: 2 }, rng);
    checkAll({ n: 2, c: 40, h: 13, w: 13, k: 50, kh: 5, kw: 5, ...base, groups: 10 }, rng);
  });
});

// One group, and output rows nearly as wide as the (padded, and for a stride split) input: the
// forward reads the taps as shifted views of each prepared sample (conv2d_shifted.cpp). Batches on both
// sides of the per-sample split (2 threads: 4 samples), filters around the 6-row tiles, more taps
// than one k block (576 > 512), widths that leave partial micro-panels, and an unpadded shape.
// (Each shape has its padded width at most 5/4 of its output's, which the path requires.)
describe('conv2d forward, shifted views of the padded input', () => {
  test('geometries of the shifted path against the float64 reference', () => {
    const rng = new Rng(21);
    const same = (n: number, c: number, hw: number, k: number, kk: number) =>
      ({ n, c, h: hw, w: hw, k, kh: kk, kw: kk, sh: 1, sw: 1, ph: (kk - 1) / 2, pw: (kk - 1) / 2 });
    withThreads(2, () => {
      checkAll(same(40, 16, 8, 16, 3), rng);
      checkAll(same(3, 64, 8, 64, 3), rng);
      checkAll(same(2, 3, 11, 7, 3), rng, false);
      checkAll(same(5, 64, 8, 13, 3), rng);
      checkAll(same(3, 5, 16, 6, 5), rng);
      checkAll({ n: 6, c: 4, h: 13, w: 21, k: 8, kh: 3, kw: 2, sh: 1, sw: 1, ph: 2, pw: 1 }, rng);
      checkAll({ n: 4, c: 3, h: 9, w: 20, k: 7, kh: 2, kw: 3, ...base }, rng);
    });
  });

  test('both layouts of the prepared samples: one copy per kernel column (small planes) and the padded planes (copies past 128k floats)', () => {
    // 64 channels of 30x30: three column copies would take 184k floats, so the forward reads the
    // padded planes and drops 2 columns a row; the stride-2 layer with 120 filters on 8x8 planes
    // takes the column copies, which a strided layer takes only with many filters.
    const rng = new Rng(25);
    withThreads(2, () => {
      checkAll({ n: 2, c: 64, h: 30, w: 30, k: 8, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1 }, rng);
      checkAll({ n: 1, c: 70, h: 29, w: 31, k: 7, kh: 3, kw: 3, sh: 2, sw: 2, ph: 1, pw: 1 }, rng);
      checkAll({ n: 3, c: 4, h: 8, w: 8, k: 120, kh: 3, kw: 3, sh: 2, sw: 2, ph: 1, pw: 1 }, rng);
      checkAll({ n: 3, c: 5, h: 9, w: 7, k: 118, kh: 3, kw: 3, sh: 2, sw: 2, ph: 1, pw: 1 }, rng, false);
    });
  });

  test('strided backward data, phase by phase: strides 2 and 3, kernels 2 to 5, paddings 0 to 2, odd sizes, small batches', () => {
    // Each phase of dx is a stride-1 convolution of dy with the taps that reach it (1 to 9 of
    // them here); rows and columns past dy's reach are zero (29 + 2 - 3 = 28, stride 2: x's last
    // row and column get nothing from a 2x2 kernel with no padding).
    const rng = new Rng(26);
    withThreads(2, () => {
      checkAll({ n: 5, c: 6, h: 16, w: 16, k: 8, kh: 3, kw: 3, sh: 2, sw: 2, ph: 1, pw: 1 }, rng);
      checkAll({ n: 1, c: 7, h: 29, w: 23, k: 6, kh: 2, kw: 2, sh: 2, sw: 2, ph: 0, pw: 0 }, rng);
      checkAll({ n: 3, c: 9, h: 17, w: 20, k: 5, kh: 4, kw: 4, sh: 2, sw: 2, ph: 1, pw: 1 }, rng, false);
      checkAll({ n: 2, c: 8, h: 19, w: 19, k: 4, kh: 5, kw: 5, sh: 2, sw: 2, ph: 2, pw: 2 }, rng);
      checkAll({ n: 2, c: 6, h: 20, w: 22, k: 3, kh: 5, kw: 3, sh: 3, sw: 2, ph: 2, pw: 0 }, rng);
      checkAll({ n: 4, c: 7, h: 13, w: 14, k: 6, kh: 3, kw: 5, sh: 3, sw: 3, ph: 0, pw: 2 }, rng);
    });
  });

  test('strided backward data on random geometries (strides 2 to 4, kernels up to 5, paddings below the kernel)', () => {
    const rng = new Rng(27);
    withThreads(2, () => {
      for (let t = 0; t < 16; t++) {
        const kh = rng.int(2, 5), kw = rng.int(2, 5);
        const sh = rng.int(2, Math.min(4, kh)), sw = rng.int(2, Math.min(4, kw));
        const ph = rng.int(0, kh - 1), pw = rng.int(0, kw - 1);
        const h = kh + rng.int(0, 14), w = kw + rng.int(0, 14);
        const g = { n: rng.int(1, 5), c: rng.int(6, 12), h, w, k: rng.int(2, 9), kh, kw, sh, sw, ph, pw };
        const { oh, ow } = convOut(g);
        const dy = rng.array(g.n * g.k * oh * ow);
        const wt = rng.array(g.k * g.c * kh * kw);
        const dx = empty(g.n * g.c * h * w);
        native.conv2dBackwardData(convArg(g), store(dy), store(wt), dx);
        const ref = conv2dBackwardDataRef(g, dy, wt);
        expectClose(dx.read(), ref.value, { ...tol(g.k * kh * kw), scale: ref.scale }, `backward data ${JSON.stringify(g)}`);
      }
    });
  });

  test('strided layers read phase planes: 3x3 with stride 2, odd sizes, stride 3 (and a 1x1 one, whose stride past the kernel keeps the GEMM)', () => {
    const rng = new Rng(24);
    withThreads(2, () => {
      checkAll({ n: 6, c: 8, h: 16, w: 16, k: 16, kh: 3, kw: 3, sh: 2, sw: 2, ph: 1, pw: 1 }, rng);
      checkAll({ n: 4, c: 8, h: 8, w: 8, k: 12, kh: 1, kw: 1, sh: 2, sw: 2, ph: 0, pw: 0 }, rng, false);
      checkAll({ n: 2, c: 6, h: 15, w: 13, k: 7, kh: 3, kw: 3, sh: 2, sw: 2, ph: 1, pw: 1 }, rng);
      checkAll({ n: 2, c: 4, h: 14, w: 14, k: 6, kh: 3, kw: 3, sh: 3, sw: 3, ph: 1, pw: 1 }, rng);
      checkAll({ n: 40, c: 16, h: 16, w: 16, k: 32, kh: 3, kw: 3, sh: 2, sw: 2, ph: 1, pw: 1 }, rng);
    });
  });

  test.each([8, 20])("the filter gradient (%i filters): an inf that a tap never reaches stays out of that tap's gradient", (k) => {
    // 8x8 planes, padding 1: input column 7 is reached by the taps kj = 1 and 2 only, but the wide
    // columns dropped past each output row read it for kj = 0 too: the lane kernel (8 filters)
    // masks their lanes, the GEMM (20) skips them.
    const g = { n: 5, c: 3, h: 8, w: 8, k, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1 };
    const rng = new Rng(23);
    const x = rng.array(g.n * g.c * 64);
    x[((2 * g.c + 1) * 8 + 4) * 8 + 7] = Infinity; // sample 2, channel 1, row 4, column 7
    const dy = rng.array(g.n * g.k * 64);
    const dw = empty(g.k * g.c * 9);
    native.conv2dBackwardWeight(convArg(g), store(x), store(dy), dw, null);
    const got = dw.read();
    for (let k = 0; k < g.k; k++) {
      for (let ci = 0; ci < g.c; ci++) {
        for (let t = 0; t < 9; t++) {
          const v = got[(k * g.c + ci) * 9 + t];
          const reached = ci === 1 && t % 3 !== 0;
          expect(Number.isFinite(v)).toBe(!reached);
        }
      }
    }
  });

  test('each output is bitwise what the GEMM path gives: filters 0-4 of 6 (shifted) against a 5-filter layer (GEMM)', () => {
    const rng = new Rng(22);
    for (const [n, c, hw, kk] of [[7, 8, 8, 3], [2, 70, 8, 3], [3, 6, 16, 5]]) {
      const g6 = { n, c, h: hw, w: hw, k: 6, kh: kk, kw: kk, sh: 1, sw: 1, ph: (kk - 1) / 2, pw: (kk - 1) / 2 };
      const g5 = { ...g6, k: 5 };
      const { oh, ow } = convOut(g6);
      const x = store(rng.array(n * c * hw * hw));
      const w = rng.array(6 * c * kk * kk);
      const b = rng.array(6);
      const y6 = empty(n * 6 * oh * ow), y5 = empty(n * 5 * oh * ow);
      native.conv2dForward(convArg(g6), x, store(w), store(b), y6);
      native.conv2dForward(convArg(g5), x, store(w.subarray(0, 5 * c * kk * kk)), store(b.subarray(0, 5)), y5);
      const six = y6.read(), five = y5.read(), plane = oh * ow;
      const kept = new Float32Array(n * 5 * plane);
      for (let i = 0; i < n; i++) kept.set(six.subarray(i * 6 * plane, (i * 6 + 5) * plane), i * 5 * plane);
      expect(bitwiseEqual(kept, five)).toBe(true);
    }
  });
});

// One input channel, unit stride, no padding, kw <= 7: the direct kernels of
// conv2d_single_channel.cpp. Widths around the vector lengths (4, 8, 16 lanes), filter counts
// around the register tiles, batches around the 8-sample chunks of the weight gradient.
describe('conv2d, direct path for one input channel', () => {
  test('random geometries', () => {
    const rng = new Rng(7);
    for (let t = 0; t < 14; t++) {
      const kh = rng.int(1, 7);
      const kw = rng.int(1, 7);
      checkAll({ n: rng.int(1, 18), c: 1, h: kh - 1 + rng.int(1, 8), w: kw - 1 + rng.int(1, 40), k: rng.int(1, 23), kh, kw, ...base }, rng, rng.next() < 0.7);
    }
  });

  test("the race network's first layer (LeNet's 1->20 5x5), an odd batch", () => {
    checkAll({ n: 9, c: 1, h: 28, w: 28, k: 20, kh: 5, kw: 5, ...base }, new Rng(8));
    checkAll({ n: 3, c: 1, h: 31, w: 33, k: 17, kh: 7, kw: 7, ...base }, new Rng(9));
  });

  test("an inf in one filter's output gradient stays out of the other filters' gradients", () => {
    // Vectors run along whole planes (7 x 5 = 35 positions: 16-lane vectors end 13 lanes past a
    // plane, in the next filter's), so a plane's last vector must not pick up its neighbour's.
    const g = { n: 3, c: 1, h: 9, w: 7, k: 3, kh: 3, kw: 3, ...base };
    const { oh, ow } = convOut(g);
    const P = oh * ow;
    const rng = new Rng(11);
    const x = rng.array(g.n * g.h * g.w);
    const dy = rng.array(g.n * g.k * P);
    for (let n = 0; n < g.n; n++) dy.fill(Infinity, (n * g.k + 1) * P, (n * g.k + 2) * P);
    const dw = empty(g.k * g.kh * g.kw);
    native.conv2dBackwardWeight(convArg(g), store(x), store(dy), dw, null);
    const got = dw.read();
    const ref = conv2dBackwardWeightRef(g, x, dy);
    const T = g.kh * g.kw;
    for (let i = 0; i < got.length; i++) {
      if (Math.floor(i / T) === 1) expect(Number.isFinite(got[i])).toBe(false);
      else expect(Math.abs(got[i] - ref.value[i])).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(ref.value[i])));
    }
  });

  test('an inf outside a tap\'s reach stays out of that tap\'s gradient', () => {
    // Column w - 1 is read by the last tap of each kernel row only, and the last row of dy is the
    // buffer's end: the vectors that run past either must not pick up what lies there.
    const g = { n: 2, c: 1, h: 9, w: 21, k: 3, kh: 3, kw: 4, ...base };
    const { oh, ow } = convOut(g);
    const rng = new Rng(10);
    const x = rng.array(g.n * g.h * g.w);
    for (let r = 0; r < g.n * g.h; r++) x[r * g.w + g.w - 1] = Infinity;
    const dy = rng.array(g.n * g.k * oh * ow);
    const dw = empty(g.k * g.kh * g.kw);
    native.conv2dBackwardWeight(convArg(g), store(x), store(dy), dw, null);
    const got = dw.read();
    const ref = conv2dBackwardWeightRef(g, x, dy);
    for (let i = 0; i < got.length; i++) {
      const lastTap = i % g.kw === g.kw - 1;
      if (lastTap) expect(Number.isFinite(got[i])).toBe(false);
      else expect(Math.abs(got[i] - ref.value[i])).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(ref.value[i])));
    }
  });
});
