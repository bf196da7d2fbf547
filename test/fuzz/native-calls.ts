// Generators of calls to every export of the raw addon (lib/native.ts), sized the way a wrapping
// size check would accept: storages get the int64-wrapped product of the dims whenever that is
// small, so an overflow that slips past a check reaches the kernel, as it would for a user.
import fc from 'fast-check';

import type { Call } from './harness';
import { native } from '../../lib/native';
import { BAD_NUMBERS, dim, dims, f64, fakeStorage, LABELS, mutated, plainObject, scalar, sizeFor, smallDim, st, wrapped, WRAPPING } from './values';

const spare = fc.integer({ min: 0, max: 64 });
const call = (fn: string, ...args: unknown[]): Call => ({ fn, args });

/** (h + 2p - k) / s + 1 in int64, as an output-size computation that trusts its inputs gets it. */
function outSize(h: number, p: number, k: number, s: number): number {
  const w = wrapped(h, 1);
  if (w === null || wrapped(p, 1) === null || wrapped(k, 1) === null || wrapped(s, 1) === null || s === 0) return -1;
  const v = BigInt.asIntN(64, BigInt(h) + 2n * BigInt(p) - BigInt(k)) / BigInt(s) + 1n;
  return Number(BigInt.asIntN(64, v));
}

const gemm = fc
  .tuple(fc.boolean(), fc.boolean(), dims(3), scalar, scalar, spare, spare, spare)
  .map(([ta, tb, [m, n, k], alpha, beta, s1, s2, s3]) =>
    call('gemm', ta, tb, m, n, k, alpha, st(sizeFor(wrapped(m, k), s1)), st(sizeFor(wrapped(k, n), s2)), beta, st(sizeFor(wrapped(m, n), s3))),
  );

// The dense layer: (m, n, k), the bias present or not.
const linear = fc
  .tuple(dims(3), fc.boolean(), spare, spare, spare, spare)
  .map(([[m, n, k], bias, s1, s2, s3, s4]) =>
    call('linearForward', m, n, k, st(sizeFor(wrapped(m, k), s1)), st(sizeFor(wrapped(n, k), s2)), bias ? st(sizeFor(wrapped(n), s3)) : null, st(sizeFor(wrapped(m, n), s4))),
  );

// The dense layer's weight gradient, with its bias gradient or not.
const linearWeight = fc
  .tuple(dims(3), fc.boolean(), spare, spare, spare, spare)
  .map(([[m, n, k], bias, s1, s2, s3, s4]) =>
    call('linearBackwardWeight', m, n, k, st(sizeFor(wrapped(m, n), s1)), st(sizeFor(wrapped(m, k), s2)), st(sizeFor(wrapped(n, k), s3)), bias ? st(sizeFor(wrapped(n), s4)) : null),
  );

// [n, c, h, w, k, kh, kw, sh, sw, ph, pw, groups], mostly small (groups dividing both channel
// counts, so that grouped calls reach the kernels) with one or two hostile entries.
const smallConvShape = fc.tuple(
  smallDim, smallDim, dim, dim, smallDim, dim, smallDim, dim, smallDim, dim, smallDim, fc.constantFrom(1, 1, 2, 3),
).map((v) => {
  const groups = v[11];
  return [v[0], v[1] * groups, v[2], v[3], v[4] * groups, ...v.slice(5)];
});
const convShape = fc.oneof(dims(12), smallConvShape).chain((v) => fc.shuffledSubarray([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], { maxLength: 2 }).chain((at) =>
  fc.tuple(...at.map(() => dim)).map((values) => {
    const out = [...v];
    at.forEach((i, j) => (out[i] = values[j]));
    return out;
  })));

function convSizes(s: number[]): { x: bigint | null; w: bigint | null; y: bigint | null; k: bigint | null } {
  const [n, c, h, w, k, kh, kw, sh, sw, ph, pw, groups] = s;
  const oh = outSize(h, ph, kh, sh), ow = outSize(w, pw, kw, sw);
  // The weight holds c / groups channels per filter; with groups that do not divide c, any size.
  const perGroup = Number.isInteger(groups) && groups > 0 && c % groups === 0 ? c / groups : c;
  return { x: wrapped(n, c, h, w), w: wrapped(k, perGroup, kh, kw), y: oh < 0 || ow < 0 ? null : wrapped(n, k, oh, ow), k: wrapped(k) };
}

const conv = fc.tuple(convShape, fc.boolean(), spare, spare, spare, spare, fc.constantFrom('forward', 'data', 'weight', 'bias')).map(
  ([s, bias, a, b, c, d, which]) => {
    const z = convSizes(s);
    const x = st(sizeFor(z.x, a)), w = st(sizeFor(z.w, b)), y = st(sizeFor(z.y, c)), kb = st(sizeFor(z.k, d));
    if (which === 'forward') return call('conv2dForward', s, x, w, bias ? kb : null, y);
    if (which === 'data') return call('conv2dBackwardData', s, y, w, x);
    if (which === 'weight') return call('conv2dBackwardWeight', s, x, y, w, bias ? kb : null);
    return call('conv2dBackwardBias', s, y, kb);
  },
);

// The fused inference block: the convolution's shape, a pooling window (or none) and the batch
// norm's four per-channel storages (each present or not, so "all or none" is tested too).
const convBlock = fc.tuple(convShape, fc.option(dims(4), { nil: null }), fc.array(fc.boolean(), { minLength: 5, maxLength: 5 }),
  scalar, fc.boolean(), spare, spare, spare, spare).map(([s, window, present, eps, relu, a, b, c, d]) => {
  const z = convSizes(s);
  const [n, , h, w, k, kh, kw, sh, sw, ph, pw] = s;
  const oh = outSize(h, ph, kh, sh), ow = outSize(w, pw, kw, sw);
  let y = z.y;
  if (window) {
    const poh = outSize(oh, 0, window[0], window[2]), pow = outSize(ow, 0, window[1], window[3]);
    y = poh < 0 || pow < 0 ? null : wrapped(n, k, poh, pow);
  }
  const ch = () => st(sizeFor(z.k, d));
  const [bias, ...bn] = present.map((p) => (p ? ch() : null));
  return call('convBlockInfer', s, window, st(sizeFor(z.x, a)), st(sizeFor(z.w, b)), bias, ...bn, eps, relu, st(sizeFor(y, c)));
});

// The fused dense block: (m, n, k) with the bias and batch norm storages each present or not.
const denseBlock = fc.tuple(dims(3), fc.array(fc.boolean(), { minLength: 5, maxLength: 5 }), scalar, fc.boolean(), spare, spare, spare, spare)
  .map(([[m, n, k], present, eps, relu, a, b, c, d]) => {
    const [bias, ...bn] = present.map((p) => (p ? st(sizeFor(wrapped(n), d)) : null));
    return call('denseBlockInfer', m, n, k, st(sizeFor(wrapped(m, k), a)), st(sizeFor(wrapped(n, k), b)), bias, ...bn, eps, relu, st(sizeFor(wrapped(m, n), c)));
  });

// The inference chain: a spec of one to three convolution or dense steps on a small input, a few
// of its numbers hostile, and the weights each step asks for, sized from the shapes the steps
// compute (so most calls reach the kernels) or from a spare size where a product is out of reach.
const flag = fc.oneof({ weight: 8, arbitrary: fc.constantFrom(0, 1) }, { weight: 1, arbitrary: fc.constantFrom(0.5, 2, -1, NaN) });
const chainConv = fc.tuple(smallDim, fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 3 }),
  fc.integer({ min: 1, max: 3 }), fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 2 }), fc.constantFrom(1, 1, 2),
  flag, flag, scalar, flag, flag, fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 2 })))
  .map(([k, kh, kw, sh, sw, ph, pw, groups, bias, bn, eps, relu, pooled, p]) => [0, k * groups, kh, kw, sh, sw, ph, pw, groups, bias, bn, eps, relu, pooled, ...p]);
const chainDense = fc.tuple(smallDim, flag, flag, scalar, flag).map(([out, bias, bn, eps, relu]) => [1, out, bias, bn, eps, relu]);
const chain = fc.tuple(fc.tuple(smallDim, fc.constantFrom(1, 2, 3), fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 12 })),
  fc.array(fc.oneof(chainConv, chainDense), { minLength: 1, maxLength: 3 }), fc.array(fc.tuple(fc.nat({ max: 40 }), dim), { maxLength: 2 }),
  spare, spare).map(([[n, c, h, w], steps, hostileAt, a, b]) => {
  const weights: object[] = [];
  let [cc, hh, ww]: number[] = [c, h, w];
  for (const s of steps) {
    const out = s[1];
    if (s[0] === 0) {
      const [, k, kh, kw, sh, sw, ph, pw, groups] = s;
      weights.push(st(sizeFor(wrapped(k, Number.isInteger(cc / groups) ? cc / groups : cc, kh, kw), a)));
      [cc, hh, ww] = [k, outSize(hh, ph, kh, sh), outSize(ww, pw, kw, sw)];
      if (s[13] === 1) [hh, ww] = [outSize(hh, 0, s[14], s[16]), outSize(ww, 0, s[15], s[17])];
    } else {
      weights.push(st(sizeFor(wrapped(out, cc, hh, ww), a)));
      [cc, hh, ww] = [out, 1, 1];
    }
    const bias = s[0] === 0 ? s[9] : s[2], bn = s[0] === 0 ? s[10] : s[3];
    if (bias === 1) weights.push(st(out));
    if (bn === 1) for (let i = 0; i < 4; i++) weights.push(st(out));
  }
  const spec = [n, c, h, w, steps.length, ...steps.flat()];
  for (const [at, v] of hostileAt) if (at < spec.length) spec[at] = v;
  const y = st(sizeFor(hh < 0 || ww < 0 ? null : wrapped(n, cc, hh, ww), b));
  return call('inferenceChain', f64(spec), st(n * c * h * w), y, ...weights);
});

const pool = fc.tuple(fc.oneof(dims(8), fc.tuple(smallDim, smallDim, dim, dim, dim, smallDim, dim, smallDim)), spare, spare, fc.boolean()).map(([s, a, b, fwd]) => {
  const [n, c, h, w, kh, kw, sh, sw] = s;
  const oh = outSize(h, 0, kh, sh), ow = outSize(w, 0, kw, sw);
  const x = st(sizeFor(wrapped(n, c, h, w), a)), y = st(sizeFor(oh < 0 || ow < 0 ? null : wrapped(n, c, oh, ow), b));
  return fwd ? call('avgPool2dForward', s, x, y) : call('avgPool2dBackward', s, y, x);
});


// [n, c, h, w, kh, kw, sh, sw, ph, pw]; argmax holds anything (NaN, negative, huge, fractional).
const maxPool = fc.tuple(fc.oneof(dims(10), fc.tuple(smallDim, smallDim, dim, dim, smallDim, smallDim, dim, smallDim, smallDim, smallDim)),
  spare, spare, fc.array(fc.constantFrom(...LABELS), { minLength: 1, maxLength: 8 }), fc.boolean()).map(([s, a, b, fill, fwd]) => {
  const [n, c, h, w, kh, kw, sh, sw, ph, pw] = s;
  const oh = outSize(h, ph, kh, sh), ow = outSize(w, pw, kw, sw);
  const out = oh < 0 || ow < 0 ? null : wrapped(n, c, oh, ow);
  const x = st(sizeFor(wrapped(n, c, h, w), a)), y = st(sizeFor(out, b)), arg = st(sizeFor(out, b), { fill });
  return fwd ? call('maxPool2dForward', s, x, y, arg) : call('maxPool2dBackward', s, y, arg, x);
});

const dropout = fc.tuple(fc.constantFrom(0, 0.5, 0.999, 1, -0.5, NaN), fc.oneof(dim, fc.constantFrom(0, 2 ** 53, ...BAD_NUMBERS)), spare, fc.constantFrom(0, 0, 1)).map(
  ([p, seed, n, off]) => call('dropout', p, seed, st(n), st(n + off)),
);

// The training forward's update of the running statistics: the running mean and variance both,
// one of them or neither; a momentum in range or not; a count of one element or not (or none,
// with cumulative averaging too); status words of c plus some spare, at an offset that fits or not.
const bnUpdate = fc.tuple(
  fc.constantFrom(0, 1, 2, 2, 2), fc.constantFrom(0, 0.9, 1, NaN, -0.5, 2), fc.boolean(), fc.constantFrom(null, 1, 1, 2), fc.boolean(),
  fc.option(spare, { nil: null }), fc.oneof(smallDim, fc.constantFrom(...WRAPPING, ...BAD_NUMBERS)),
);

// Plain and fused with the ReLU (whose backward takes the output y after x).
const batchNorm = fc.tuple(dims(3), scalar, spare, spare, fc.boolean(), fc.constantFrom(0, 1, 2, 3), fc.boolean(), fc.boolean(), bnUpdate).map(
  ([s, eps, a, b, withDx, which, relu, withVar, [running, momentum, unbiased, count, cumulative, statusSpare, offset]]) => {
    const [n, c, l] = s;
    const full = () => st(sizeFor(wrapped(n, c, l), a));
    const ch = () => st(sizeFor(wrapped(c), b));
    const dx = withDx ? full() : null;
    const name = (op: string) => (relu ? `batchNormRelu${op}` : `batchNorm${op}`);
    const y = relu ? [full()] : [];
    if (which === 0) {
      const update = [
        running > 0 ? ch() : null, running > 1 ? ch() : null, momentum, unbiased, count === null ? null : st(count), cumulative,
        statusSpare === null ? null : st(sizeFor(wrapped(c), b) + statusSpare), offset,
      ];
      return call(name('ForwardTrain'), s, full(), ch(), ch(), eps, full(), ch(), ch(), ch(), withVar ? ch() : null, ...update);
    }
    if (which === 1) return call(name('ForwardInfer'), s, full(), ch(), ch(), ch(), ch(), eps, full());
    if (which === 2) return call(name('BackwardTrain'), s, full(), ...y, full(), ch(), ch(), ch(), ch(), dx, ch(), ch());
    return call(name('BackwardInfer'), s, full(), ...y, full(), ch(), ch(), ch(), eps, dx, ch(), ch());
  },
);

// Batch norm + ReLU + pooling: mostly tiling windows (stride = window), sometimes overlapping or
// one-pixel planes; the forward with batchNorm's running-update tail.
const bnReluPool = fc.tuple(fc.oneof(dims(8), fc.tuple(smallDim, smallDim, dim, dim, smallDim, smallDim).map(([n, c, h, w, kh, kw]) => [n, c, h, w, kh, kw, kh, kw])),
  scalar, spare, spare, spare, fc.boolean(), fc.boolean(), bnUpdate).map(([s, eps, a, b, d, withDx, fwd, [running, momentum, unbiased, count, cumulative, statusSpare, offset]]) => {
  const [n, c, h, w, kh, kw, sh, sw] = s;
  const oh = outSize(h, 0, kh, sh), ow = outSize(w, 0, kw, sw);
  const x = () => st(sizeFor(wrapped(n, c, h, w), a)), y = () => st(sizeFor(oh < 0 || ow < 0 ? null : wrapped(n, c, oh, ow), b));
  const ch = () => st(sizeFor(wrapped(c), d));
  if (!fwd) return call('batchNormReluPoolBackwardTrain', s, x(), y(), ch(), ch(), ch(), ch(), ch(), withDx ? x() : null, ch(), ch());
  const update = [
    running > 0 ? ch() : null, running > 1 ? ch() : null, momentum, unbiased, count === null ? null : st(count), cumulative,
    statusSpare === null ? null : st(sizeFor(wrapped(c), d) + statusSpare), offset,
  ];
  return call('batchNormReluPoolForwardTrain', s, x(), ch(), ch(), eps, y(), ch(), ch(), ch(), ch(), ...update);
});

// [outer, groups, inner, params, run]: mostly consistent (params * run dividing groups * inner), or hostile.
const normShape = fc.oneof(
  dims(5),
  fc.tuple(smallDim, smallDim, smallDim, smallDim).map(([o, g, k, p]) => [o, g * (p || 1), k * (p || 1), p || 1, k || 1]),
);
const norms = fc.tuple(normShape, scalar, spare, spare, spare, fc.boolean(), fc.constantFrom(0, 1, 2), scalar).map(
  ([s, eps, a, b, c, withDx, which, limit]) => {
    const [o, g, i, p] = s;
    const full = () => st(sizeFor(wrapped(o, g, i), a));
    const grp = () => st(sizeFor(wrapped(g), b));
    const par = () => st(sizeFor(wrapped(p), c));
    if (which === 0) return call('normForward', s, full(), par(), par(), eps, full(), grp(), grp(), grp());
    if (which === 1) return call('renormForward', s, full(), par(), par(), eps, grp(), grp(), limit, limit, full(), grp(), grp(), grp(), grp(), grp(), grp());
    return call('normBackward', s, full(), full(), par(), grp(), grp(), grp(), withDx ? grp() : null, withDx ? grp() : null, withDx ? full() : null, par(), par());
  },
);

// Shapes with strides that may reach past the operands, or wrap.
const binary = fc
  .tuple(fc.constantFrom(0, 1, 2, 3, 3, 7, -1, 1.5), fc.integer({ min: 0, max: 7 }), fc.array(fc.oneof(fc.tuple(dim, dim, dim), dims(3)), { maxLength: 8 }), spare, spare, spare)
  .map(([op, ndim, dims, s1, s2, s3]) => {
    const d = dims.slice(0, ndim);
    const shape = d.map((t) => t[0]), as = d.map((t) => t[1]), bs = d.map((t) => t[2]);
    const extent = (strides: number[]): bigint | null => {
      let e = 1n;
      for (let i = 0; i < shape.length; i++) {
        const p = wrapped(Math.max(shape[i] - 1, 0), strides[i]);
        if (p === null) return null;
        e = BigInt.asIntN(64, e + p);
      }
      return e;
    };
    return call('binary', op, shape, as, bs, st(sizeFor(extent(as), s1)), st(sizeFor(extent(bs), s2)), st(sizeFor(wrapped(...shape), s3)));
  });

const elementwise = fc.tuple(spare, fc.constantFrom(0, 0, 0, 1), scalar, scalar, fc.constantFrom('fill', 'copy', 'axpby', 'reluForward', 'reluBackward')).map(
  ([n, off, alpha, beta, fn]) => {
    const a = st(n), b = st(n + off);
    if (fn === 'fill') return call('fill', a, alpha);
    if (fn === 'copy') return call('copy', a, b);
    if (fn === 'axpby') return call('axpby', alpha, a, beta, b);
    if (fn === 'reluForward') return call('reluForward', a, b);
    return call('reluBackward', a, st(n), b);
  },
);

const reduceSum = fc.tuple(dims(3), scalar, spare, spare).map(([[outer, r, inner], scale, s1, s2]) =>
  call('reduceSum', outer, r, inner, scale, st(sizeFor(wrapped(outer, r, inner), s1)), st(sizeFor(wrapped(outer, inner), s2))),
);

// Labels hold anything: in range, out of range, fractional, NaN, infinite.
const labelled = fc
  .tuple(dims(2), fc.array(fc.constantFrom(...LABELS), { minLength: 1, maxLength: 8 }), spare, spare, fc.constantFrom('fwd', 'sum', 'bwd', 'bwd1', 'argmax'), scalar)
  .map(([[n, k], fill, s1, s2, which, scale]) => {
    const nk = st(sizeFor(wrapped(n, k), s1)), rows = () => st(sizeFor(wrapped(n), s2), { fill });
    if (which === 'fwd') return call('softmaxXentForward', n, k, nk, rows(), rows());
    if (which === 'sum') return call('softmaxXentForwardSum', n, k, nk, rows(), scale, st(sizeFor(1n, s2)), s2 % 2 ? null : st(sizeFor(wrapped(n, k), s1)));
    // dloss per row, or one value for every row
    const dloss = which === 'bwd' ? rows() : st(sizeFor(1n, s2));
    if (which === 'bwd' || which === 'bwd1') return call('softmaxXentBackward', n, k, nk, rows(), dloss, scale, st(sizeFor(wrapped(n, k), s1)));
    return call('argmaxRows', n, k, nk, rows());
  });

const sgd = fc.tuple(scalar, fc.constantFrom(0, 0.9, NaN), scalar, fc.boolean(), spare, fc.constantFrom(0, 0, 1), fc.boolean()).map(([lr, m, wd, nesterov, n, off, vel]) =>
  call('sgdUpdate', lr, m, wd, nesterov, st(n), st(n), vel ? st(n + off) : null),
);

// Lists of parameters whose lengths, sizes or rate storage may be off by one.
const sgdMany = fc
  .tuple(fc.constantFrom(0, 0.9, NaN), fc.boolean(), fc.array(spare, { minLength: 0, maxLength: 70 }), fc.constantFrom(0, 0, 0, 1), fc.constantFrom(0, 0, 1), fc.boolean(), fc.constantFrom(0, 0.1, NaN))
  .map(([m, nesterov, sizes, off, lrOff, vel, wd]) =>
    call(
      'sgdUpdateMany', m, nesterov, st(1 + lrOff),
      sizes.map((n) => st(n)), sizes.map((n, i) => st(n + (i === 0 ? off : 0))), vel ? sizes.map((n) => st(n)) : null,
      sizes.slice(off).map(() => wd),
    ),
  );

// One of the four buffers off by `off` elements.
const adam = fc.tuple(fc.constantFrom(0.9, 0, NaN), scalar, scalar, fc.constantFrom(1e-8, 0, -1), scalar, scalar, spare, fc.constantFrom(0, 0, 0, 1), fc.integer({ min: 0, max: 3 })).map(
  ([b1, b2, step, eps, l2, decay, n, off, which]) =>
    call('adamUpdate', b1, b2, step, eps, l2, decay, ...[0, 1, 2, 3].map((i) => st(n + (i === which ? off : 0)))),
);

const l2Norm = fc.tuple(dim, spare, fc.integer({ min: -1, max: 66 })).map(([n, len, index]) => call('l2Norm', st(sizeFor(wrapped(n), 0)), st(len), index));

const storage = fc.tuple(fc.constantFrom<unknown>(0, 0, 1, 2, -1, NaN, '0'), dim, spare, fc.constantFrom(0, 1), fc.constantFrom('new', 'read', 'write', 'copyFrom', 'dispose', 'reportToGc')).map(
  ([device, numel, n, off, fn]) => {
    if (fn === 'new') return call('new Storage', device, numel);
    if (fn === 'read') return call('Storage.read', st(n, { disposed: off === 1 }));
    if (fn === 'write') return call('Storage.write', st(n), { $f32: n + off });
    if (fn === 'copyFrom') return call('Storage.copyFrom', st(n), st(n + off));
    if (fn === 'reportToGc') return call('Storage.reportToGc', st(n, { disposed: off === 1 }));
    return call('Storage.dispose', st(n));
  },
);

// setCpuThreads and setGcReporting change the state the later calls of the child run in.
const runtime = fc.tuple(fc.constantFrom('builtWithCuda', 'cudaDevices', 'cudaMemoryStats', 'cudaEmptyCache', 'cudaSynchronize', 'cudaCounters', 'hostMemoryStats', 'hostEmptyCache', 'cpuThreads', 'cpuIsa', 'cpuMultiversioned', 'setCpuThreads', 'setGcReporting'), fc.oneof(dim, fc.constantFrom(1, 2, 3, 1e6, 2 ** 31 - 1, ...BAD_NUMBERS)), fc.constantFrom<unknown>(true, false, 0, 'yes', undefined)).map(
  ([fn, n, flag]) => (fn === 'setCpuThreads' ? call(fn, n) : fn === 'setGcReporting' ? call(fn, flag) : call(fn)),
);

const GRAPH_FUNCTIONS = [
  'cudaCaptureBegin', 'cudaCaptureEnd', 'cudaCaptureAbandon', 'cudaCapturing', 'cudaGraphReplay', 'cudaGraphKernels', 'cudaGraphDispose',
  'cudaReadbackCreate', 'cudaReadbackEnqueue', 'cudaReadbackRead', 'cudaReadbackDispose',
];

// A handle argument of the wrong kind (a storage, a look-alike, a number) or none at all; the
// readback's size and offset as hostile numbers.
const notAHandle = fc.constantFrom<unknown>(0, -1, NaN, plainObject, fakeStorage, st(3), st(0, { disposed: true }));
const graphs = fc.tuple(fc.constantFrom(...GRAPH_FUNCTIONS), fc.option(notAHandle, { nil: undefined }), fc.oneof(dim, fc.constantFrom(...BAD_NUMBERS)), spare).map(
  ([fn, handle, n, len]) => {
    if (fn === 'cudaReadbackCreate') return call(fn, n);
    if (fn === 'cudaReadbackEnqueue') return call(fn, handle ?? null, st(len), n);
    return handle === undefined ? call(fn) : call(fn, handle);
  },
);

/** Every export of the addon, and the Storage methods, each drawn by its own generator. */
export const NATIVE_FUNCTIONS = [
  'Storage', 'gemm', 'linearForward', 'linearBackwardWeight', 'conv2dForward', 'conv2dBackwardData', 'conv2dBackwardWeight', 'conv2dBackwardBias', 'avgPool2dForward', 'avgPool2dBackward',
  'convBlockInfer', 'denseBlockInfer', 'inferenceChain',
  'batchNormForwardTrain', 'batchNormForwardInfer', 'batchNormBackwardTrain', 'batchNormBackwardInfer',
  'batchNormReluForwardTrain', 'batchNormReluForwardInfer', 'batchNormReluBackwardTrain', 'batchNormReluBackwardInfer',
  'batchNormReluPoolForwardTrain', 'batchNormReluPoolBackwardTrain',
  'normForward', 'renormForward', 'normBackward', 'binary', 'fill', 'copy', 'axpby',
  'reluForward', 'reluBackward', 'reduceSum', 'softmaxXentForward', 'softmaxXentForwardSum', 'softmaxXentBackward', 'argmaxRows', 'sgdUpdate', 'adamUpdate', 'l2Norm', 'builtWithCuda',
  'cudaDevices', 'cudaMemoryStats', 'cudaEmptyCache', 'cudaSynchronize', 'cpuThreads', 'cpuIsa', 'cpuMultiversioned', 'setCpuThreads',
  'maxPool2dForward', 'maxPool2dBackward', 'dropout', 'sgdUpdateMany', 'cudaCounters',
  'hostMemoryStats', 'hostEmptyCache', 'setGcReporting',
  // Built only with CUDA: the graph-capture and readback bindings.
  ...(native.builtWithCuda() ? GRAPH_FUNCTIONS : []),
];

export const nativeCall: fc.Arbitrary<Call> = mutated(
  fc.oneof(
    { weight: 3, arbitrary: gemm },
    { weight: 2, arbitrary: linear },
    { weight: 2, arbitrary: linearWeight },
    { weight: 5, arbitrary: conv },
    { weight: 2, arbitrary: pool },
    { weight: 2, arbitrary: convBlock },
    { weight: 1, arbitrary: denseBlock },
    { weight: 2, arbitrary: chain },
    { weight: 2, arbitrary: maxPool },
    { weight: 1, arbitrary: dropout },
    { weight: 3, arbitrary: batchNorm },
    { weight: 2, arbitrary: bnReluPool },
    { weight: 2, arbitrary: norms },
    { weight: 3, arbitrary: binary },
    { weight: 2, arbitrary: elementwise },
    { weight: 2, arbitrary: reduceSum },
    { weight: 3, arbitrary: labelled },
    { weight: 1, arbitrary: sgd },
    { weight: 1, arbitrary: sgdMany },
    { weight: 1, arbitrary: adam },
    { weight: 1, arbitrary: l2Norm },
    { weight: 2, arbitrary: storage },
    { weight: 2, arbitrary: runtime },
    ...(native.builtWithCuda() ? [{ weight: 1, arbitrary: graphs }] : []),
  ),
);
