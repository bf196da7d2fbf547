// Making tensors: from data, filled with a value, or random (seedable).
//
// Values are stored as float32. NaN and the infinities are kept as given, but a finite number that
// float32 cannot hold (|v| > 3.4e38) is rejected rather than silently turned into Infinity.
import { Device, parseDevice } from '../device';
import { native } from '../native';
import { describe, readOptions } from '../options';
import { generator } from '../random';
import { checkShape, formatShape, numelOf, Shape } from '../shape';
import { Tensor } from '../tensor';
import { isFloat32Array } from '../typed-arrays';

export interface CreateOptions {
  device?: Device | string;
}

export interface RandomOptions extends CreateOptions {
  /** A fresh generator with this seed; without one, the global generator (kg.manualSeed). */
  seed?: number;
}

export interface NormalOptions extends RandomOptions {
  mean?: number;
  std?: number;
}

export interface UniformOptions extends RandomOptions {
  low?: number;
  high?: number;
}

type NestedNumbers = number | NestedNumbers[];
type NumericArray = Float32Array | Float64Array | Int8Array | Uint8Array | Uint8ClampedArray | Int16Array | Uint16Array | Int32Array | Uint32Array;

/** PyTorch's limit, and far more than any kernel here takes. */
const MAX_NESTING = 64;

/** Throws a RangeError when the finite `v` becomes infinite as a float32. */
export function checkFloat32(v: number, fn: string, what: string): number {
  if (Number.isFinite(v) && !Number.isFinite(Math.fround(v))) {
    throw new RangeError(`${fn}: ${what} = ${v} overflows float32 (largest finite value ${3.4028234663852886e38})`);
  }
  return v;
}

function isNumericArray(v: unknown): v is NumericArray {
  return ArrayBuffer.isView(v) && !(v instanceof DataView) && !(v instanceof BigInt64Array) && !(v instanceof BigUint64Array);
}

/** Nested arrays as float32 values and their shape; every row must have the same length. */
function flattenNested(data: readonly unknown[], fn: string): { values: Float32Array; shape: number[] } {
  const shape: number[] = [];
  let level: unknown = data;
  while (Array.isArray(level)) {
    shape.push(level.length);
    if (shape.length > MAX_NESTING) throw new RangeError(`${fn}: data is nested more than ${MAX_NESTING} levels deep`);
    level = level[0];
  }
  const values = new Float32Array(numelOf(shape));
  let k = 0;
  // The index of the node being visited; turned into `data[1][2]` only for an error message.
  const at: number[] = [];
  const where = (extra?: number) => `data${[...at, ...(extra === undefined ? [] : [extra])].map((i) => `[${i}]`).join('')}`;
  const first = (depth: number) => `data${'[0]'.repeat(depth)}`;
  const visit = (node: unknown, depth: number): void => {
    if (!Array.isArray(node)) {
      throw new RangeError(`${fn}: nested arrays are ragged: ${where()} is ${describe(node)} where ${first(depth)} is an array`);
    }
    if (node.length !== shape[depth]) {
      throw new RangeError(`${fn}: nested arrays are ragged: ${where()} has length ${node.length} where ${first(depth)} has ${shape[depth]}`);
    }
    const leaves = depth === shape.length - 1;
    for (let i = 0; i < node.length; i++) {
      if (!(i in node)) throw new TypeError(`${fn}: data has a hole at ${where(i)}`);
      const v: unknown = node[i];
      if (!leaves) {
        at.push(i);
        visit(v, depth + 1);
        at.pop();
      } else if (typeof v === 'number') {
        if (Number.isFinite(v) && !Number.isFinite(Math.fround(v))) checkFloat32(v, fn, where(i));
        values[k++] = v;
      } else if (Array.isArray(v)) {
        throw new RangeError(`${fn}: nested arrays are ragged: ${where(i)} is an array where ${first(depth + 1)} is a number`);
      } else {
        throw new TypeError(`${fn}: data must contain only numbers, got ${describe(v)} at ${where(i)}`);
      }
    }
  };
  visit(data, 0);
  return { values, shape };
}

function fromNumericArray(data: NumericArray, fn: string): Float32Array {
  if (isFloat32Array(data)) return data;
  const values = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) values[i] = checkFloat32(data[i], fn, `data[${i}]`);
  return values;
}

/** @internal An uninitialized tensor whose allocation failure, if any, names the function and shape. */
export function allocate(shape: Shape, device: Device, fn: string): Tensor {
  try {
    return Tensor.empty(shape, device);
  } catch (e) {
    const bytes = numelOf(shape) * 4;
    throw new RangeError(`${fn}: cannot allocate shape ${formatShape(shape)} (${formatBytes(bytes)}) on ${device}: ${(e as Error).message}`);
  }
}

function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} bytes` : `${v.toPrecision(3)} ${units[u]}`;
}

/**
 * A tensor from numbers: a typed array or a (nested) array, with its shape (inferred for nested
 * arrays; a given shape must hold the same number of values).
 */
export function tensor(data: Float32Array | NumericArray | NestedNumbers[], shape?: readonly number[], options?: CreateOptions): Tensor {
  const fn = 'kg.tensor';
  const opts = readOptions(options, fn, ['device']);
  const want = shape === undefined ? undefined : checkShape(shape, fn);
  let values: Float32Array;
  let inferred: number[];
  if (isNumericArray(data)) {
    values = fromNumericArray(data, fn);
    inferred = [values.length];
  } else if (Array.isArray(data)) {
    ({ values, shape: inferred } = flattenNested(data, fn));
  } else {
    throw new TypeError(`${fn}: data must be a Float32Array, another numeric typed array or a (nested) array of numbers, got ${describe(data)}`);
  }
  const finalShape = want ?? inferred;
  if (values.length !== numelOf(finalShape)) {
    throw new RangeError(`${fn}: ${values.length} values do not fill shape ${formatShape(finalShape)} (data ${formatShape(inferred)})`);
  }
  const t = allocate(finalShape, parseDevice(opts.device, fn), fn);
  t.storage.write(values);
  return t;
}

function filled(fn: string, shape: readonly number[], value: number, options: CreateOptions | undefined): Tensor {
  const opts = readOptions(options, fn, ['device']);
  const s = checkShape(shape, fn);
  if (typeof value !== 'number') throw new TypeError(`${fn}: value must be a number, got ${describe(value)}`);
  checkFloat32(value, fn, 'value');
  const t = allocate(s, parseDevice(opts.device, fn), fn);
  fillStorage(t, value);
  return t;
}

/** The native fill takes finite values only; NaN and the infinities are written from here. */
function fillStorage(t: Tensor, value: number): void {
  if (Number.isFinite(value)) native.fill(t.storage, value);
  else t.storage.write(new Float32Array(t.numel).fill(value));
}

/** A tensor of `shape` filled with `value`. */
export function full(shape: readonly number[], value: number, options?: CreateOptions): Tensor {
  return filled('kg.full', shape, value, options);
}

export function zeros(shape: readonly number[], options?: CreateOptions): Tensor {
  return filled('kg.zeros', shape, 0, options);
}

export function ones(shape: readonly number[], options?: CreateOptions): Tensor {
  return filled('kg.ones', shape, 1, options);
}

function finiteOption(v: unknown, fallback: number, fn: string, name: string): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new RangeError(`${fn}: ${name} must be a finite number, got ${describe(v)}`);
  return v;
}

function seedOption(v: unknown, fn: string): number | undefined {
  if (v !== undefined && (typeof v !== 'number' || !Number.isSafeInteger(v))) {
    throw new TypeError(`${fn}: seed must be an integer, got ${describe(v)}`);
  }
  return v;
}

/** Normal samples with the given mean and standard deviation (default 0 and 1). */
export function randn(shape: readonly number[], options?: NormalOptions): Tensor {
  const fn = 'kg.randn';
  const opts = readOptions(options, fn, ['device', 'seed', 'mean', 'std']);
  const s = checkShape(shape, fn);
  const mean = finiteOption(opts.mean, 0, fn, 'mean');
  const std = finiteOption(opts.std, 1, fn, 'std');
  if (std < 0) throw new RangeError(`${fn}: std must be >= 0, got ${std}`);
  const device = parseDevice(opts.device, fn);
  const t = allocate(s, device, fn);
  t.storage.write(generator(seedOption(opts.seed, fn)).fillNormal(new Float32Array(t.numel), mean, std));
  return t;
}

/** Uniform samples in [low, high) (default [0, 1)). */
export function rand(shape: readonly number[], options?: UniformOptions): Tensor {
  const fn = 'kg.rand';
  const opts = readOptions(options, fn, ['device', 'seed', 'low', 'high']);
  const s = checkShape(shape, fn);
  const low = finiteOption(opts.low, 0, fn, 'low');
  const high = finiteOption(opts.high, 1, fn, 'high');
  if (!(low < high)) throw new RangeError(`${fn}: low must be less than high, got low ${low} and high ${high}`);
  const device = parseDevice(opts.device, fn);
  const t = allocate(s, device, fn);
  t.storage.write(generator(seedOption(opts.seed, fn)).fillUniform(new Float32Array(t.numel), low, high));
  return t;
}

/** @internal A one-element tensor of shape [] (broadcasts against anything); NaN and ±Infinity allowed. */
export function scalar(value: number, device: Device): Tensor {
  const t = Tensor.empty([], device);
  fillStorage(t, value);
  return t;
}
