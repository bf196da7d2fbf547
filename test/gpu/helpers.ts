// Shared by the GPU suite: whether a CUDA device is here (a GPU, or the CPU emulator of CUDA with
// KG_EMULATED_CUDA=1), the sizes to use on it, and running one computation on both devices
// (forward under autograd.record, then backward with a fixed head gradient) to compare the CUDA
// kernels against the CPU engine.
import * as kg from '../../lib';
import { Random } from '../../lib/random';
import { closeTo, maxAbs } from '../helpers/gradcheck';
import { numel } from '../helpers/reference';

export const gpu = kg.devices().find((d): d is kg.CudaDeviceInfo => d.type === 'cuda' && d.usable);

/**
 * True when the CUDA device is the CPU emulator (`npm run test:emu`): every CUDA thread is a
 * coroutine there, thousands of times slower than a GPU, so the suite shrinks its largest sizes.
 */
export const emulated = gpu?.emulated === true;

/** `onGpu` on a real GPU, `underEmulation` under the emulator: the one place sizes shrink. */
export function sized<T>(onGpu: T, underEmulation: T): T {
  return emulated ? underEmulation : onGpu;
}

/**
 * Where the GPU suite must run rather than skip: KG_REQUIRE_CUDA=1 (a GPU machine, where a missing
 * device is a failure to report) and KG_EMULATED_CUDA=1 (the emulated build always has one).
 */
export const cudaRequired = process.env.KG_REQUIRE_CUDA === '1' || process.env.KG_EMULATED_CUDA === '1';

function noDeviceError(): Error {
  const why = kg.cuda.unavailableReason();
  const env = process.env.KG_REQUIRE_CUDA === '1' ? 'KG_REQUIRE_CUDA=1' : 'KG_EMULATED_CUDA=1';
  return new Error(`${env}: the GPU suite needs a CUDA device, but ${why}`);
}

/**
 * describe() when a CUDA device is present. Without one: a failing test naming the reason when
 * a device is required (see cudaRequired), else describe.skip() plus one skipped test whose name
 * says why, so `jest test/gpu` on a CPU-only machine reports the suite as skipped, not passed.
 */
export function describeGpu(name: string, body: () => void): void {
  if (gpu) {
    describe(name, body);
  } else if (cudaRequired) {
    describe(name, () => {
      test('a CUDA device is required', () => {
        throw noDeviceError();
      });
    });
  } else {
    describe(name, () => {
      test.skip('no CUDA device: GPU suite skipped', () => undefined);
    });
  }
}

/** test() on a CUDA device; without one, skipped, or failing with the reason when required. */
export function gpuTest(name: string, fn: () => void, timeout?: number): void {
  if (gpu) test(name, fn, timeout);
  else if (cudaRequired) {
    test(name, () => {
      throw noDeviceError();
    });
  } else test.skip(name, fn);
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
