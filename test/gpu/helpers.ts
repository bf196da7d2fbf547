// Shared by the GPU suite: whether a CUDA device is here, and running one computation on both
// devices (forward under autograd.record, then backward with a fixed head gradient) to compare
// the CUDA kernels against the CPU engine.
import * as kg from '../../lib';
import { Random } from '../../lib/random';
import { closeTo, maxAbs } from '../helpers/gradcheck';
import { numel } from '../helpers/reference';

export const gpu = kg.devices().find((d) => d.type === 'cuda');

/**
 * describe() when a CUDA device is present, otherwise describe.skip() plus one skipped test whose
 * name says why, so `jest test/gpu` on a CPU-only machine reports the suite as skipped, not passed.
 */
export function describeGpu(name: string, body: () => void): void {
  if (gpu) {
    describe(name, body);
  } else {
    describe(name, () => {
      test.skip('no CUDA device: GPU suite skipped', () => undefined);
    });
  }
}

export function normal(n: number, seed: number, mean = 0, std = 1): Float32Array {
  return new Random(seed).fillNormal(new Float32Array(n), mean, std);
}

export function uniform(n: number, seed: number, low: number, high: number): Float32Array {
  return new Random(seed).fillUniform(new Float32Array(n), low, high);
}

export { bitwiseEqual } from '../native/reference';
export { maxAbs, numel };

/**
 * null when |got - want| <= atol + rtol * |want| everywhere, else a description of the first
 * mismatches. atol defaults to rtol * max|want|: values near zero (sums that cancel) are held to
 * the precision of the tensor's scale rather than to their own tiny magnitude.
 */
export function mismatch(got: ArrayLike<number>, want: ArrayLike<number>, rtol: number, atol = rtol * maxAbs(want)): string | null {
  const bad = closeTo(got, want, rtol, atol);
  return bad === null ? null : `${bad} (rtol ${rtol}, atol ${atol.toPrecision(3)})`;
}

export interface Input {
  shape: number[];
  values: Float32Array;
  /** Check this input's gradient (default true). */
  grad?: boolean;
}

export interface Result {
  out: Float32Array;
  grads: Array<Float32Array | null>;
}

/** A random input of `shape` (normal, or uniform in [low, high] for divisors and the like). */
export function input(shape: number[], seed: number, opts: { low?: number; high?: number; grad?: boolean } = {}): Input {
  const n = numel(shape);
  const values = opts.low !== undefined ? uniform(n, seed, opts.low, opts.high ?? opts.low + 1) : normal(n, seed);
  return { shape, values, grad: opts.grad };
}

/**
 * Runs fn on `device`: inputs become tensors there (attachGrad unless grad: false), the output
 * is recorded, and backward() runs with a fixed random head gradient. Everything is freed.
 */
export function runOn(device: kg.Device, inputs: Input[], fn: (xs: kg.Tensor[]) => kg.Tensor, headSeed = 999): Result {
  const xs = inputs.map((s) => {
    const t = kg.tensor(s.values, s.shape, { device });
    return s.grad === false ? t : t.attachGrad();
  });
  try {
    return kg.tidy(() => {
      const y = kg.autograd.record(() => fn(xs));
      const out = y.toArray();
      if (!inputs.some((s) => s.grad !== false)) return { out, grads: [] };
      const head = kg.tensor(normal(y.numel, headSeed), y.shape, { device });
      y.backward(head);
      return { out, grads: xs.map((x, i) => (inputs[i].grad === false || !x.grad ? null : x.grad.toArray())) };
    });
  } finally {
    for (const x of xs) {
      x.grad?.dispose();
      x.dispose();
    }
  }
}

/**
 * Checks fn on the GPU against the CPU engine: forward values to fwdRtol, every input gradient to
 * gradRtol (each with atol = rtol * max|CPU value|).
 */
export function expectSameOnDevices(inputs: Input[], fn: (xs: kg.Tensor[]) => kg.Tensor, fwdRtol = 1e-5, gradRtol = 1e-4): Result {
  const cpu = runOn('cpu', inputs, fn);
  const cuda = runOn('cuda', inputs, fn);
  expect(mismatch(cuda.out, cpu.out, fwdRtol)).toBeNull();
  cpu.grads.forEach((g, i) => {
    if (g === null) return;
    const got = cuda.grads[i];
    expect(got).not.toBeNull();
    const msg = mismatch(got as Float32Array, g, gradRtol);
    if (msg !== null) throw new Error(`gradient of input ${i} ${JSON.stringify(inputs[i].shape)}: ${msg}`);
  });
  return cuda;
}
