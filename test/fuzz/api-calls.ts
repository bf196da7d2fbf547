// Generators of calls to the main functions of the public API: well-formed tensors of small random
// shapes (which often do not fit together), with hostile shapes, axes, options and labels.
import fc from 'fast-check';

import type { Call } from './harness';
import { bytes, dim, hostile, LABELS, mutated, scalar, tensorSpec } from './values';

const call = (fn: string, ...args: unknown[]): Call => ({ fn, args });

const shape = fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 4 });
const shape4 = fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 4, maxLength: 4 });
const tensor = fc.tuple(shape, fc.boolean()).map(([s, grad]) => tensorSpec(s, { grad }));
const tensor4 = fc.tuple(shape4, fc.boolean()).map(([s, grad]) => tensorSpec(s, { grad }));
// Hostile shapes, but none a valid request for gigabytes: that would be the machine's limit, not a bug.
const hostileShape = fc.oneof(shape, fc.array(dim, { maxLength: 5 })).filter((s) => {
  const p = s.reduce((a, b) => a * b, 1);
  return !(p > 4096 && p <= 2 ** 53 && s.every((d) => Number.isInteger(d) && d >= 0));
});
const pair = fc.oneof(dim, fc.tuple(dim, dim), hostile);

const creation = fc.tuple(fc.constantFrom('tensor', 'zeros', 'full', 'randn', 'rand'), hostileShape, fc.integer({ min: 0, max: 64 }), scalar).map(
  ([fn, s, n, v]) => {
    if (fn === 'tensor') return call(fn, { $f32: n }, s);
    if (fn === 'full') return call(fn, s, v);
    return call(fn, s);
  },
);

const arith = fc.tuple(fc.constantFrom('add', 'sub', 'mul', 'div', 'matmul'), tensor, fc.oneof(tensor, scalar)).map(([fn, a, b]) => call(fn, a, b));

const reduce = fc.tuple(fc.constantFrom('sum', 'mean'), tensor, fc.oneof(fc.constant(undefined), dim, fc.array(dim, { maxLength: 3 })), fc.boolean()).map(
  ([fn, t, axes, keepDims]) => call(fn, t, axes, { keepDims }),
);

const reshaping = fc.tuple(fc.constantFrom('reshape', 'broadcastTo', 'flatten', 'argmax', 'nn.functional.relu'), tensor, hostileShape).map(([fn, t, s]) =>
  fn === 'flatten' || fn === 'argmax' || fn === 'nn.functional.relu' ? call(fn, t) : call(fn, t, s),
);

const groups = fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 2, arbitrary: fc.integer({ min: 1, max: 3 }) }, dim, hostile);
const conv = fc.tuple(tensor4, tensor4, fc.oneof(fc.constant(null), tensor), pair, pair, groups).map(([x, w, b, stride, padding, g]) =>
  call('nn.functional.conv2d', x, w, b, { stride, padding, groups: g }),
);

const pool = fc.tuple(tensor4, pair, fc.oneof(fc.constant(undefined), pair)).map(([x, kernelSize, stride]) =>
  call('nn.functional.avgPool2d', x, { kernelSize, stride }),
);

// Labels as a tensor or an array, holding anything.
const xent = fc
  .tuple(fc.integer({ min: 0, max: 6 }), fc.integer({ min: 0, max: 12 }), fc.array(fc.constantFrom(...LABELS), { minLength: 1, maxLength: 6 }), fc.boolean(), fc.constantFrom('none', 'sum', 'mean', 'max'))
  .map(([n, k, fill, asTensor, reduction]) =>
    call('nn.functional.softmaxCrossEntropy', tensorSpec([n, k], { grad: true }), asTensor ? tensorSpec([n], { fill }) : Array.from({ length: n }, (_, i) => fill[i % fill.length]), { reduction }),
  );

const batchNorm = fc.tuple(tensor4, fc.integer({ min: 0, max: 6 }), fc.boolean(), scalar, scalar).map(([x, c, training, eps, momentum]) =>
  call('nn.functional.batchNorm', x, tensorSpec([c], { grad: true }), tensorSpec([c]), { training, eps, momentum, runningMean: tensorSpec([c]), runningVar: tensorSpec([c], { fill: [1] }) }),
);

const linear = fc.tuple(tensor, tensor, fc.oneof(fc.constant(null), tensor)).map(([x, w, b]) => call('nn.functional.linear', x, w, b));

// File formats parsed from bytes: headers that claim huge sizes, truncated data.
const u32 = (v: number) => [(v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255];
const idx = fc.tuple(fc.constantFrom(8, 9, 13), fc.integer({ min: 0, max: 5 }), fc.array(fc.constantFrom(0, 1, 28, 60000, 2 ** 31, 2 ** 32 - 1), { maxLength: 5 }), fc.integer({ min: 0, max: 64 })).map(
  ([type, ndim, ds, extra]) => call('data.parseIdx', bytes([0, 0, type, ndim, ...ds.flatMap(u32), ...new Array(extra).fill(7)])),
);
const safetensors = fc.tuple(fc.constantFrom(0, 2, 16, 2 ** 31, 2 ** 40), fc.string({ maxLength: 40 }), fc.constantFrom('', '{"a":{"dtype":"F32","shape":[1e9,1e9],"data_offsets":[0,4]}}', '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'))
  .map(([len, junk, header]) => {
    const text = Buffer.from(header || junk);
    const n = header ? text.length : len;
    return call('io.decodeSafetensors', bytes([n & 255, (n >>> 8) & 255, (n >>> 16) & 255, (n >>> 24) & 255, Math.floor(n / 2 ** 32) & 255, 0, 0, 0, ...text, 0, 0, 128, 63, 0, 0, 0, 64]));
  });

export const API_FUNCTIONS = [
  'tensor', 'zeros', 'full', 'randn', 'rand', 'add', 'sub', 'mul', 'div', 'matmul', 'sum', 'mean', 'reshape', 'broadcastTo', 'flatten', 'argmax',
  'nn.functional.relu', 'nn.functional.conv2d', 'nn.functional.avgPool2d', 'nn.functional.softmaxCrossEntropy', 'nn.functional.batchNorm',
  'nn.functional.linear', 'data.parseIdx', 'io.decodeSafetensors',
];

export const apiCall: fc.Arbitrary<Call> = mutated(
  fc.oneof(
    { weight: 2, arbitrary: creation },
    { weight: 3, arbitrary: arith },
    { weight: 2, arbitrary: reduce },
    { weight: 2, arbitrary: reshaping },
    { weight: 3, arbitrary: conv },
    { weight: 2, arbitrary: pool },
    { weight: 3, arbitrary: xent },
    { weight: 2, arbitrary: batchNorm },
    { weight: 1, arbitrary: linear },
    { weight: 1, arbitrary: idx },
    { weight: 1, arbitrary: safetensors },
  ),
);
