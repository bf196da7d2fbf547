// The hostile values the fuzz tests draw from, and the argument markers test/fuzz/child.js turns
// into live objects (a storage, a tensor, a fake storage) inside the child process.
import fc from 'fast-check';

import type { Call } from './harness';

/** A CPU storage of n elements with deterministic non-zero contents (or `fill` repeated), maybe disposed. */
export function st(n: number, options: { fill?: number[]; disposed?: boolean } = {}): object {
  return { $st: { n, ...options } };
}
/** An object that passes `instanceof Storage` but wraps nothing. */
export const fakeStorage = { $fake: 1 };
/** A Float64Array of these numbers (NaN, infinities and -0 included). */
export function f64(values: number[]): object {
  return { $f64: values };
}
export const plainObject = { $obj: 1 };
export function f32(n: number): object {
  return { $f32: n };
}
export function tensorSpec(shape: number[], options: { fill?: number[]; grad?: boolean } = {}): object {
  return { $tensor: { shape, ...options } };
}
export function bytes(values: number[]): object {
  return { $bytes: values };
}

/** Sizes past every 32-bit limit and products that wrap in int64 (2^32 * 2^32, 2^21 cubed). */
export const HUGE = [2 ** 16, 2 ** 21, 2 ** 22, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 32 + 1, 2 ** 33, 2 ** 40, 2 ** 53 - 1, 9e15, 2 ** 62, 1e300];
export const BAD_NUMBERS = [-1, -(2 ** 32), 1.5, NaN, Infinity, -Infinity, -0, 5e-324];
/** Class indices that are valid for some k, and ones that never are. */
export const LABELS = [0, 1, 2, 3, 7, 9, -1, 0.5, 1e9, -1e9, 2 ** 31, 2 ** 63, NaN, Infinity, -Infinity];

export const smallDim = fc.integer({ min: 0, max: 7 });
/** Powers of two whose products reach 2^64 and wrap to 0 in int64. */
export const WRAPPING = [2 ** 11, 2 ** 16, 2 ** 21, 2 ** 22, 2 ** 31, 2 ** 32, 2 ** 33, 2 ** 48, 2 ** 52];
export const dim = fc.oneof(
  { weight: 6, arbitrary: smallDim },
  { weight: 2, arbitrary: fc.constantFrom(...HUGE) },
  { weight: 3, arbitrary: fc.constantFrom(...WRAPPING) },
  { weight: 1, arbitrary: fc.constantFrom(...BAD_NUMBERS) },
);
const wrappingDim = fc.constantFrom(1, 2, ...WRAPPING, ...WRAPPING);
/** n dims: often all independent, sometimes all from WRAPPING so that their products overflow. */
export function dims(n: number): fc.Arbitrary<number[]> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.array(dim, { minLength: n, maxLength: n }) },
    { weight: 1, arbitrary: fc.array(wrappingDim, { minLength: n, maxLength: n }) },
  );
}
export const scalar = fc.oneof(
  { weight: 4, arbitrary: fc.double({ min: -4, max: 4, noNaN: true }) },
  { weight: 1, arbitrary: fc.constantFrom(NaN, Infinity, -Infinity, 1e39, -0) },
);
/** What a caller might pass by mistake anywhere. */
export const hostile = fc.constantFrom<unknown>(
  'x', true, null, undefined, plainObject, f32(4), fakeStorage, st(4, { disposed: true }), st(0), NaN, -1, 2 ** 32, [], [NaN], [1, 2, 3],
);

/**
 * The product of dims as a binding computing in int64 gets it (wrapping), or null when a dim is
 * not an integer such a binding accepts. Sizing storages by it is what slips past a wrapping check.
 */
export function wrapped(...dims: number[]): bigint | null {
  let p = 1n;
  for (const d of dims) {
    if (!Number.isInteger(d) || d < 0 || d > 9e15) return null;
    p = BigInt.asIntN(64, p * BigInt(d));
  }
  return p;
}

/** A storage size: the expected one when it is small enough to allocate, else the spare size. */
export function sizeFor(p: bigint | null, spare: number): number {
  return p !== null && p >= 0n && p <= 65536n ? Number(p) : spare;
}

/** Most calls as generated; some with one argument replaced by a hostile value, one dropped or one added. */
export function mutated(call: fc.Arbitrary<Call>): fc.Arbitrary<Call> {
  return fc.tuple(call, fc.nat(), fc.integer({ min: 0, max: 9 }), hostile).map(([c, at, how, h]) => {
    if (how < 6 || c.args.length === 0) return c;
    const args = [...c.args];
    if (how < 8) args[at % args.length] = h;
    else if (how === 8) args.pop();
    else args.push(h);
    return { fn: c.fn, args };
  });
}

/** n calls drawn from arb, the same ones on every run. */
export function draw(arb: fc.Arbitrary<Call>, n: number, seed: number): Call[] {
  return fc.sample(arb, { numRuns: n, seed });
}
