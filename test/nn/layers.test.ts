// Max pooling, global average pooling, dropout and residual blocks on the CPU: forward values
// against float64 references and gradients against central differences, on random shapes with odd
// sizes, padding and overlapping windows; bad arguments give errors that name the function.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as kg from '../../lib';
import { native } from '../../lib/native';
import { Random } from '../../lib/random';
import { checkOp } from '../helpers/gradcheck';
import { dropoutRef, dropoutUniform, MaxPoolGeometry, maxPoolOut, maxPoolRef } from '../helpers/layers-reference';

const F = kg.nn.functional;

function randomGeometry(rng: Random): MaxPoolGeometry {
  const kh = 1 + rng.int(3);
  const kw = 1 + rng.int(3);
  const ph = rng.int(Math.floor(kh / 2) + 1);
  const pw = rng.int(Math.floor(kw / 2) + 1);
  return {
    n: 1 + rng.int(2), c: 1 + rng.int(3), h: Math.max(1, kh - 2 * ph) + rng.int(7), w: Math.max(1, kw - 2 * pw) + rng.int(7),
    kh, kw, sh: 1 + rng.int(3), sw: 1 + rng.int(3), ph, pw,
  };
}

function maxPoolCase(g: MaxPoolGeometry, seed: number): void {
  const gy = (x: Float64Array) => maxPoolRef(g, x).y;
  checkOp({
    inputs: [{ shape: [g.n, g.c, g.h, g.w] }],
    ours: ([x]) => F.maxPool2d(x, { kernelSize: [g.kh, g.kw], stride: [g.sh, g.sw], padding: [g.ph, g.pw] }),
    ref: ([x]) => gy(x),
    seed,
  });
}

describe('maxPool2d', () => {
  test('2x2 stride 2 on even and odd sizes, 3x3 stride 2 padding 1 (the ResNet stem)', () => {
    maxPoolCase({ n: 2, c: 3, h: 8, w: 8, kh: 2, kw: 2, sh: 2, sw: 2, ph: 0, pw: 0 }, 1);
    maxPoolCase({ n: 1, c: 2, h: 9, w: 7, kh: 2, kw: 2, sh: 2, sw: 2, ph: 0, pw: 0 }, 2);
    maxPoolCase({ n: 2, c: 2, h: 11, w: 10, kh: 3, kw: 3, sh: 2, sw: 2, ph: 1, pw: 1 }, 3);
  });

  test('random geometries: overlapping windows, gaps, padding', () => {
    const rng = new Random(7);
    for (let t = 0; t < 25; t++) maxPoolCase(randomGeometry(rng), 100 + t);
  });

  test('argmax positions match the reference, ties go to the first maximum', () => {
    const g: MaxPoolGeometry = { n: 1, c: 2, h: 5, w: 6, kh: 3, kw: 2, sh: 1, sw: 2, ph: 1, pw: 1 };
    const rng = new Random(3);
    // Few distinct values: many windows hold several equal maxima.
    const x = Float32Array.from({ length: 60 }, () => rng.int(3));
    const { oh, ow } = maxPoolOut(g);
    const xs = new native.Storage(0, 60);
    const y = new native.Storage(0, 2 * oh * ow);
    const arg = new native.Storage(0, 2 * oh * ow);
    xs.write(x);
    native.maxPool2dForward([1, 2, 5, 6, 3, 2, 1, 2, 1, 1], xs, y, arg);
    const ref = maxPoolRef(g, x);
    expect(Array.from(arg.read())).toEqual(Array.from(ref.argmax));
    expect(Array.from(y.read())).toEqual(Array.from(ref.y));
    for (const s of [xs, y, arg]) s.dispose();
  });

  test('each tied window sends its whole gradient to its first maximum', () => {
    const x = kg.tensor([[[[1, 1], [1, 1]]]]).attachGrad();
    const y = kg.autograd.record(() => F.maxPool2d(x, { kernelSize: 2 }));
    y.backward(kg.tensor([[[[5]]]]));
    expect(Array.from((x.grad as kg.Tensor).toArray())).toEqual([5, 0, 0, 0]);
  });

  test('NaN propagates: a window holding NaN gives NaN', () => {
    const y = F.maxPool2d(kg.tensor([[[[1, NaN, 3, 4]]]]), { kernelSize: [1, 2] });
    expect(Array.from(y.toArray())).toEqual([NaN, 4]);
  });

  test('bad arguments name the function and the shapes', () => {
    const x = kg.zeros([1, 1, 4, 4]);
    expect(() => F.maxPool2d(x, { kernelSize: 2, padding: 2 })).toThrow(/kg\.nn\.functional\.maxPool2d: padding 2x2 must be at most half/);
    expect(() => F.maxPool2d(x, { kernelSize: 5 })).toThrow(/window 5x5 is larger than the padded input 4x4 \(x \[1, 1, 4, 4\]\)/);
    expect(() => F.maxPool2d(kg.zeros([4, 4]), { kernelSize: 2 })).toThrow(/x must be 4-D/);
    expect(() => F.maxPool2d(x, { kernelSize: 0 })).toThrow(RangeError);
    expect(() => F.maxPool2d(x, { kernelSize: 2, strides: 1 } as never)).toThrow(/unknown option 'strides'/);
    expect(() => F.maxPool2d(kg.zeros([1, 1, 0, 4]), { kernelSize: 2, padding: 1 })).toThrow(/x \[1, 1, 0, 4\] has empty planes, which have no maximum/);
    expect(() => new kg.nn.MaxPool2d(3, 1, 2)).toThrow(/kg\.nn\.MaxPool2d: padding \[2, 2\] must be at most half/);
  });

  test('the raw binding refuses bad shapes and foreign argmax buffers without crashing', () => {
    const s = (n: number) => new native.Storage(0, n);
    expect(() => native.maxPool2dForward([1, 1, 4, 4, 2, 2, 2, 2, 0, 0], s(16), s(4), s(3))).toThrow(/argmax has 3 elements/);
    expect(() => native.maxPool2dForward([1, 1, 4, 4, 2, 2, 2, 2, 2, 0], s(16), s(4), s(4))).toThrow(/at most half/);
    expect(() => native.maxPool2dForward([1, 1, 5000, 5000, 1, 1, 1, 1, 0, 0], s(1), s(1), s(1))).toThrow(/2\^24 pixels/);
    expect(() => native.maxPool2dForward([1, 1, 0, 4, 2, 2, 1, 1, 1, 1], s(0), s(5), s(5))).toThrow(/an empty input plane \(0 x 4\) has no maximum/);
    const arg = s(4);
    arg.write(Float32Array.of(NaN, -1, 1e9, 2.5));
    const dy = s(4);
    dy.write(Float32Array.of(1, 2, 3, 4));
    const dx = s(16);
    native.maxPool2dBackward([1, 1, 4, 4, 2, 2, 2, 2, 0, 0], dy, arg, dx); // positions outside the plane are ignored
    const want = new Float32Array(16);
    want[2] = 4;
    expect(Array.from(dx.read())).toEqual(Array.from(want));
  });

  test('MaxPool2d module', () => {
    const m = new kg.nn.MaxPool2d(3, 2, 1);
    expect(m.forward(kg.zeros([2, 3, 9, 9])).shape).toEqual([2, 3, 5, 5]);
    expect(String(m)).toBe('MaxPool2d(kernelSize=[3, 3], stride=[2, 2], padding=[1, 1])');
  });
});

describe('adaptiveAvgPool2d (global average pooling)', () => {
  test.each([[[2, 3, 5, 7]], [[1, 1, 1, 1]], [[3, 4, 8, 8]]])('%j', (shape) => {
    const [n, c, h, w] = shape;
    checkOp({
      inputs: [{ shape }],
      ours: ([x]) => new kg.nn.AdaptiveAvgPool2d(1).forward(x),
      ref: ([x]) => {
        const out = new Float64Array(n * c);
        for (let p = 0; p < n * c; p++) {
          for (let i = 0; i < h * w; i++) out[p] += x[p * h * w + i];
          out[p] /= h * w;
        }
        return out;
      },
    });
    expect(F.adaptiveAvgPool2d(kg.zeros(shape)).shape).toEqual([n, c, 1, 1]);
  });

  test('only output size 1', () => {
    expect(() => new kg.nn.AdaptiveAvgPool2d(2)).toThrow(/kg\.nn\.AdaptiveAvgPool2d: only outputSize 1/);
    expect(() => F.adaptiveAvgPool2d(kg.zeros([1, 1, 4, 4]), [2, 2])).toThrow(/only outputSize 1/);
  });
});

describe('dropout', () => {
  test('the mask hash matches its float64 reference, and drops about p of the elements', () => {
    const n = 20001;
    const x = kg.ones([n]);
    const y = F.dropout(x, { p: 0.3, seed: 12345 }).toArray();
    const want = dropoutRef(new Float64Array(n).fill(1), 0.3, 12345);
    let dropped = 0;
    for (let i = 0; i < n; i++) {
      expect(y[i]).toBe(Math.fround(want[i]));
      if (y[i] === 0) dropped++;
    }
    expect(Math.abs(dropped / n - 0.3)).toBeLessThan(0.015);
  });

  test.each([[[7, 13]], [[2, 3, 5, 5]], [[1]]])('forward and gradient on %j', (shape) => {
    for (const [p, seed] of [[0.5, 1], [0.1, 2 ** 53 - 1], [0.9, 77]]) {
      checkOp({ inputs: [{ shape }], ours: ([x]) => F.dropout(x, { p, seed }), ref: ([x]) => dropoutRef(x, p, seed) });
    }
  });

  test('the same seed gives the same mask, another seed another', () => {
    const x = kg.ones([1000]);
    const a = F.dropout(x, { p: 0.5, seed: 9 }).toArray();
    expect(Array.from(F.dropout(x, { p: 0.5, seed: 9 }).toArray())).toEqual(Array.from(a));
    expect(Array.from(F.dropout(x, { p: 0.5, seed: 10 }).toArray())).not.toEqual(Array.from(a));
    expect(dropoutUniform(9, 0)).not.toBe(dropoutUniform(10, 0));
  });

  test('NaN and infinities are not hidden by the mask', () => {
    const y = F.dropout(kg.tensor([NaN, NaN, NaN, NaN, NaN, NaN, NaN, NaN]), { p: 0.5, seed: 3 }).toArray();
    expect(y.every((v) => Number.isNaN(v))).toBe(true);
  });

  test('Dropout module: a new mask per training call, reproducible from the seed, identity in eval', () => {
    const x = kg.ones([4, 50]);
    const m1 = new kg.nn.Dropout(0.5, { seed: 4 });
    const m2 = new kg.nn.Dropout(0.5, { seed: 4 });
    const a = m1.forward(x).toArray();
    const b = m1.forward(x).toArray();
    expect(Array.from(b)).not.toEqual(Array.from(a));
    expect(Array.from(m2.forward(x).toArray())).toEqual(Array.from(a));
    expect(Array.from(a).every((v) => v === 0 || v === 2)).toBe(true);
    m1.eval();
    expect(m1.forward(x)).toBe(x);
  });

  test('Dropout module: a checkpoint carries the call count, so a resumed run draws the same masks', () => {
    const x = kg.ones([3, 40]);
    const net = () => new kg.nn.Sequential({ fc: new kg.nn.Linear(40, 40, { seed: 2 }), drop: new kg.nn.Dropout(0.3, { seed: 9 }) });
    const dropOf = (m: kg.nn.Sequential) => m.at(1) as kg.nn.Dropout;
    const through = net();
    const masks = Array.from({ length: 5 }, () => Array.from(through.forward(x).toArray()));
    const first = net();
    for (let i = 0; i < 3; i++) first.forward(x);
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'kg-dropout-')), 'model.safetensors');
    kg.io.saveCheckpoint(file, first);
    const resumed = net();
    kg.io.loadCheckpointInto(file, resumed);
    expect(dropOf(resumed).calls).toBe(3);
    expect(Array.from(resumed.forward(x).toArray())).toEqual(masks[3]);
    expect(Array.from(resumed.forward(x).toArray())).toEqual(masks[4]);
    // Counts past float32's exact integers survive too (two digits of 2^24).
    const big = new kg.nn.Dropout(0.5);
    big.loadStateDict({ calls: kg.tensor([5, 2], [2]) });
    expect(big.calls).toBe(2 * 2 ** 24 + 5);
    big.forward(x);
    expect(Array.from(big.stateDict().calls.toArray())).toEqual([6, 2]);
    expect(() => big.loadStateDict({ calls: kg.tensor([0.5, 0], [2]) })).toThrow(/kg\.nn\.Dropout: the loaded calls buffer \[0\.5, 0\] is not a call count/);
  });

  test('bad arguments', () => {
    const x = kg.ones([3]);
    expect(() => new kg.nn.Dropout(1)).toThrow(/kg\.nn\.Dropout: p must be a number in \[0, 1\), got 1/);
    expect(() => new kg.nn.Dropout(-0.1)).toThrow(RangeError);
    expect(() => new kg.nn.Dropout(0.5, { seed: 1.5 })).toThrow(/seed must be an integer/);
    expect(() => F.dropout(x, { p: 0.5 } as never)).toThrow(/kg\.nn\.functional\.dropout: seed must be a non-negative integer, got undefined/);
    expect(() => F.dropout(x, { p: NaN, seed: 1 })).toThrow(/p must be a number in \[0, 1\), got NaN/);
    expect(() => native.dropout(1, 0, new native.Storage(0, 3), new native.Storage(0, 3))).toThrow(/kernelgrad\.dropout: p must be in \[0, 1\)/);
    expect(() => native.dropout(0.5, -1, new native.Storage(0, 3), new native.Storage(0, 3))).toThrow(/seed must be an integer/);
    expect(() => native.dropout(0.5, 0, new native.Storage(0, 3), new native.Storage(0, 4))).toThrow(/y has 4 elements/);
  });
});

describe('Residual', () => {
  test('identity shortcut: y = body(x) + x, gradients through both paths', () => {
    const conv = new kg.nn.Conv2d(3, 3, 3, { padding: 1, seed: 5 });
    checkOp({
      inputs: [{ shape: [2, 3, 5, 4] }],
      ours: ([x]) => new kg.nn.Residual(new kg.nn.Sequential(conv, new kg.nn.ReLU())).forward(x),
      ref: ([x]) => {
        const w = Float64Array.from(conv.weight.toArray());
        const b = Float64Array.from((conv.bias as kg.Tensor).toArray());
        const out = new Float64Array(x.length);
        for (let n = 0; n < 2; n++) {
          for (let k = 0; k < 3; k++) {
            for (let i = 0; i < 5; i++) {
              for (let j = 0; j < 4; j++) {
                let s = b[k];
                for (let c = 0; c < 3; c++) {
                  for (let p = 0; p < 3; p++) {
                    for (let q = 0; q < 3; q++) {
                      const r = i + p - 1;
                      const cc = j + q - 1;
                      if (r >= 0 && r < 5 && cc >= 0 && cc < 4) s += x[((n * 3 + c) * 5 + r) * 4 + cc] * w[((k * 3 + c) * 3 + p) * 3 + q];
                    }
                  }
                }
                const at = ((n * 3 + k) * 5 + i) * 4 + j;
                out[at] = Math.max(s, 0) + x[at];
              }
            }
          }
        }
        return out;
      },
    });
  });

  test('a shortcut module, state dict names, and shape errors', () => {
    const block = new kg.nn.Residual(new kg.nn.Conv2d(2, 4, 3, { stride: 2, padding: 1, seed: 1 }), new kg.nn.Conv2d(2, 4, 1, { stride: 2, seed: 2 }));
    expect(Object.keys(block.stateDict())).toEqual(['body.weight', 'body.bias', 'shortcut.weight', 'shortcut.bias']);
    expect(block.forward(kg.zeros([1, 2, 7, 7])).shape).toEqual([1, 4, 4, 4]);
    const bad = new kg.nn.Residual(new kg.nn.Conv2d(2, 4, 1, { seed: 1 }));
    expect(() => bad.forward(kg.zeros([1, 2, 3, 3]))).toThrow(/kg\.nn\.Residual: the body gives \[1, 4, 3, 3\] but the identity shortcut .* gives \[1, 2, 3, 3\]/);
    expect(() => new kg.nn.Residual({} as never)).toThrow(/body must be a Module, got an object/);
  });
});
