// 2-D convolution as op cases that the CPU and the GPU suites both check against the float64
// reference (test/helpers/reference.ts): forward values directly, the gradients of x, the weight
// and the bias by central differences.
import * as kg from '../../lib';
import { OpCase } from './gradcheck';
import { ConvParams, conv2d } from './reference';

/** Convolution of random x and weight (and bias) with p's geometry, groups included. */
export function conv2dCase(p: ConvParams, bias = true): OpCase {
  const groups = p.groups ?? 1;
  const inputs = [{ shape: [p.n, p.c, p.h, p.w] }, { shape: [p.k, p.c / groups, p.kh, p.kw] }];
  if (bias) inputs.push({ shape: [p.k] });
  return {
    inputs,
    ours: ([x, w, b]) => kg.nn.functional.conv2d(x, w, b ?? null, { stride: [p.sh, p.sw], padding: [p.ph, p.pw], groups: p.groups }),
    ref: ([x, w, b]) => conv2d(x, w, b ?? null, p),
  };
}

/**
 * Grouped: groups 2 and 3, depthwise (groups = c, with channel multipliers 1 and 2), and groups 1
 * spelled out; odd sizes, strides and paddings.
 */
export const GROUPED_CONV_CASES: ConvParams[] = [
  { n: 2, c: 4, h: 7, w: 5, k: 6, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1, groups: 2 },
  { n: 1, c: 6, h: 9, w: 7, k: 3, kh: 3, kw: 2, sh: 2, sw: 1, ph: 0, pw: 1, groups: 3 },
  { n: 3, c: 5, h: 5, w: 6, k: 5, kh: 3, kw: 3, sh: 1, sw: 2, ph: 1, pw: 1, groups: 5 },
  { n: 2, c: 3, h: 6, w: 5, k: 6, kh: 2, kw: 3, sh: 2, sw: 2, ph: 1, pw: 0, groups: 3 },
  { n: 1, c: 3, h: 5, w: 7, k: 5, kh: 3, kw: 1, sh: 1, sw: 1, ph: 2, pw: 0, groups: 1 },
];
