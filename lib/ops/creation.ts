// Making tensors: from data, filled with a value, or random (seedable).
import { Device, parseDevice } from '../device';
import { native } from '../native';
import { generator } from '../random';
import { checkShape, formatShape, numelOf } from '../shape';
import { Tensor } from '../tensor';

export interface CreateOptions {
  device?: Device | string;
}

export interface RandomOptions extends CreateOptions {
  /** A fresh generator with this seed; without one, the global generator (kg.manualSeed). */
  seed?: number;
}

type NestedNumbers = number | NestedNumbers[];

function flatten(data: NestedNumbers[], shape: number[] | undefined): { values: Float32Array; shape: number[] } {
  const inferred: number[] = [];
  let level: NestedNumbers = data;
  while (Array.isArray(level)) {
    inferred.push(level.length);
    level = level[0];
  }
  const flat = (data as unknown[]).flat(Infinity) as unknown[];
  if (!flat.every((v) => typeof v === 'number')) throw new TypeError('tensor: data must contain only numbers');
  if (numelOf(inferred) !== flat.length && shape === undefined) {
    throw new RangeError('tensor: nested arrays are ragged; pass a flat array and a shape');
  }
  return { values: Float32Array.from(flat as number[]), shape: shape ?? inferred };
}

/** A tensor from numbers: a Float32Array or (nested) array, with its shape (inferred for nested arrays). */
export function tensor(data: Float32Array | ArrayLike<number> | NestedNumbers[], shape?: readonly number[], options: CreateOptions = {}): Tensor {
  const device = parseDevice(options.device);
  const want = shape === undefined ? undefined : checkShape(shape);
  let values: Float32Array;
  let finalShape: number[];
  if (data instanceof Float32Array) {
    values = data;
    finalShape = want ?? [data.length];
  } else if (Array.isArray(data)) {
    ({ values, shape: finalShape } = flatten(data, want));
  } else if (data !== null && typeof data === 'object' && typeof (data as ArrayLike<number>).length === 'number') {
    values = Float32Array.from(data as ArrayLike<number>);
    finalShape = want ?? [values.length];
  } else {
    throw new TypeError('tensor: data must be a Float32Array or an array of numbers');
  }
  if (values.length !== numelOf(finalShape)) {
    throw new RangeError(`tensor: ${values.length} values do not fill shape ${formatShape(finalShape)}`);
  }
  const t = Tensor.empty(finalShape, device);
  t.storage.write(values);
  return t;
}

/** A tensor of `shape` filled with `value`. */
export function full(shape: readonly number[], value: number, options: CreateOptions = {}): Tensor {
  if (typeof value !== 'number') throw new TypeError(`full: value must be a number, got ${typeof value}`);
  const t = Tensor.empty(checkShape(shape), parseDevice(options.device));
  if (Number.isFinite(value)) native.fill(t.storage, value);
  else t.storage.write(new Float32Array(t.numel).fill(value));
  return t;
}

export function zeros(shape: readonly number[], options: CreateOptions = {}): Tensor {
  return full(shape, 0, options);
}

export function ones(shape: readonly number[], options: CreateOptions = {}): Tensor {
  return full(shape, 1, options);
}

/** Normal samples with the given mean and standard deviation (default 0 and 1). */
export function randn(shape: readonly number[], options: RandomOptions & { mean?: number; std?: number } = {}): Tensor {
  const s = checkShape(shape);
  const values = generator(options.seed).fillNormal(new Float32Array(numelOf(s)), options.mean ?? 0, options.std ?? 1);
  return tensor(values, s, options);
}

/** Uniform samples in [low, high) (default [0, 1)). */
export function rand(shape: readonly number[], options: RandomOptions & { low?: number; high?: number } = {}): Tensor {
  const s = checkShape(shape);
  const values = generator(options.seed).fillUniform(new Float32Array(numelOf(s)), options.low ?? 0, options.high ?? 1);
  return tensor(values, s, options);
}

/** @internal A one-element tensor of shape [] (broadcasts against anything). */
export function scalar(value: number, device: Device): Tensor {
  const t = Tensor.empty([], device);
  native.fill(t.storage, value);
  return t;
}
