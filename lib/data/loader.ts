// DataLoader: mini-batches of an in-memory dataset as tensors on a device, with seeded shuffling.
import { defaultDevice, Device, parseDevice } from '../device';
import { checkPositiveInt } from '../ops/check';
import { describe, readOptions } from '../options';
import { tensor } from '../ops/creation';
import { rememberLabels } from '../ops/loss';
import { checkShape, formatShape } from '../shape';
import { Random } from '../random';
import type { Tensor } from '../tensor';
import type { Cifar10Split } from './cifar10';
import type { MnistSplit } from './mnist';
import { BatchPlan, epochBatches, mixSeed, numBatches } from './sampler';
import { checkTransforms, Transform } from './transforms';
import { isFloat32Array, isInt32Array } from '../typed-arrays';

/** Examples held in host memory: `count` inputs of `sampleShape`, back to back, and their labels. */
export interface ArrayDataset {
  inputs: Float32Array;
  /** Class indices, one per example. */
  labels: ArrayLike<number>;
  count: number;
  /** Shape of one input, e.g. [1, 28, 28]. */
  sampleShape: number[];
}

/** An MNIST split as a dataset of (1, rows, cols) images. */
export function mnistDataset(split: MnistSplit): ArrayDataset {
  if (split === null || typeof split !== 'object' || !isFloat32Array(split.images)) {
    throw new TypeError(`kg.data.mnistDataset: split must be a split from kg.data.loadMnist, got ${describe(split)}`);
  }
  return { inputs: split.images, labels: split.labels, count: split.count, sampleShape: [1, split.rows, split.cols] };
}

/** A CIFAR-10 split as a dataset of (3, 32, 32) images. */
export function cifar10Dataset(split: Cifar10Split): ArrayDataset {
  if (split === null || typeof split !== 'object' || !isFloat32Array(split.images)) {
    throw new TypeError(`kg.data.cifar10Dataset: split must be a split from kg.data.loadCifar10, got ${describe(split)}`);
  }
  return { inputs: split.images, labels: split.labels, count: split.count, sampleShape: [split.channels, split.rows, split.cols] };
}

/** Throws a TypeError naming `fn` unless `ds` has the fields of an ArrayDataset. */
function checkDataset(ds: ArrayDataset, fn: string): void {
  if (ds === null || typeof ds !== 'object') throw new TypeError(`${fn}: dataset must be an object { inputs, labels, count, sampleShape }, got ${describe(ds)}`);
  if (!isFloat32Array(ds.inputs)) throw new TypeError(`${fn}: dataset.inputs must be a Float32Array, got ${describe(ds.inputs)}`);
  if (ds.labels === null || typeof ds.labels !== 'object' || typeof ds.labels.length !== 'number') {
    throw new TypeError(`${fn}: dataset.labels must be an array of class indices, got ${describe(ds.labels)}`);
  }
  checkPositiveInt(ds.count, fn, 'dataset.count', 0);
  checkShape(ds.sampleShape, fn, 'dataset.sampleShape');
}

/** The first `n` examples of a dataset (no copy). */
export function subset(ds: ArrayDataset, n: number): ArrayDataset {
  checkDataset(ds, 'kg.data.subset');
  checkPositiveInt(n, 'kg.data.subset', 'n');
  const count = Math.min(n, ds.count);
  const size = ds.sampleShape.reduce((a, b) => a * b, 1);
  const labels = ds.labels as ArrayLike<number> & { subarray?: (a: number, b: number) => ArrayLike<number> };
  return {
    inputs: ds.inputs.subarray(0, count * size),
    labels: typeof labels.subarray === 'function' ? labels.subarray(0, count) : Array.from({ length: count }, (_, i) => ds.labels[i]),
    count,
    sampleShape: ds.sampleShape,
  };
}

export interface DataLoaderOptions {
  /** Examples per batch (default 64, the tutorial's). */
  batchSize?: number;
  /** Reshuffle the examples every epoch (default false). */
  shuffle?: boolean;
  /** Seed of the shuffling; epoch e uses a permutation derived from (seed, e). Default 0. */
  seed?: number;
  /**
   * Drop the last batch when it is smaller than batchSize (default false: it is kept). Training
   * with batch norm cannot use a batch of ONE example (a variance needs two values), so drop it
   * when `count % batchSize === 1`; the training loop does this for you.
   */
  dropLast?: boolean;
  /** Where the batch tensors are made (default: `kg.defaultDevice()`, cuda when a GPU is present). */
  device?: Device;
  /** Use only the first `limit` examples. */
  limit?: number;
  /**
   * Applied in order to each example of a batch, on the host, for examples of shape (c, h, w):
   * e.g. `[kg.data.randomCrop({ padding: 4 }), kg.data.horizontalFlip(), kg.data.normalize(...)]`.
   * Random ones draw from a generator seeded by (seed, epoch, example index). Default none.
   */
  transforms?: readonly Transform[];
}

/** One mini-batch. The consumer owns `x` and `y` and should dispose them (or use kg.tidy). */
export interface Batch {
  /** Inputs (B, ...sampleShape), e.g. (B, 1, 28, 28). */
  x: Tensor;
  /** Class indices (B) as floats. */
  y: Tensor;
  /** The same labels in host memory (handy for accuracy without a device read). */
  labels: Float32Array;
  /** Positions of the examples in the dataset. */
  indices: Int32Array;
}

/**
 * Iterates a dataset in mini-batches. `for (const b of loader)` runs one epoch and advances the
 * loader's epoch counter, so each pass is shuffled differently; `loader.batches(e)` gives epoch
 * `e` explicitly (the same batches every time for the same seed and e).
 */
export class DataLoader implements Iterable<Batch> {
  readonly dataset: ArrayDataset;
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly seed: number;
  readonly dropLast: boolean;
  readonly device: Device;
  readonly transforms: readonly Transform[];
  /** The epoch that the next `for ... of` will run. */
  epoch = 0;
  private readonly sampleSize: number;

  constructor(dataset: ArrayDataset, options?: DataLoaderOptions) {
    const fn = 'kg.data.DataLoader';
    const opts = readOptions(options, fn, ['batchSize', 'shuffle', 'seed', 'dropLast', 'device', 'limit', 'transforms']);
    checkDataset(dataset, fn);
    const batchSize = checkPositiveInt(opts.batchSize ?? 64, fn, 'batchSize');
    const seed = opts.seed ?? 0;
    if (typeof seed !== 'number' || !Number.isSafeInteger(seed)) throw new TypeError(`${fn}: seed must be an integer, got ${describe(seed)}`);
    for (const name of ['shuffle', 'dropLast'] as const) {
      if (opts[name] !== undefined && typeof opts[name] !== 'boolean') throw new TypeError(`${fn}: ${name} must be true or false, got ${describe(opts[name])}`);
    }
    if (opts.limit !== undefined) checkPositiveInt(opts.limit, fn, 'limit');
    const device = opts.device === undefined ? defaultDevice() : parseDevice(opts.device, fn);
    this.dataset = opts.limit === undefined ? dataset : subset(dataset, opts.limit);
    this.sampleSize = this.dataset.sampleShape.reduce((a, b) => a * b, 1);
    if (this.dataset.inputs.length < this.dataset.count * this.sampleSize || this.dataset.labels.length < this.dataset.count) {
      throw new RangeError(`${fn}: the dataset holds fewer values than ${this.dataset.count} examples of shape ${formatShape(this.dataset.sampleShape)}`);
    }
    this.transforms = opts.transforms === undefined ? [] : [...checkTransforms(opts.transforms, fn)];
    if (this.transforms.length > 0 && this.dataset.sampleShape.length !== 3) {
      throw new RangeError(`${fn}: transforms need examples of shape (c, h, w), the dataset's are ${formatShape(this.dataset.sampleShape)}`);
    }
    this.batchSize = batchSize;
    this.shuffle = opts.shuffle ?? false;
    this.seed = seed;
    this.dropLast = opts.dropLast ?? false;
    this.device = device;
  }

  /** Number of examples. */
  get size(): number {
    return this.dataset.count;
  }

  /** Number of batches per epoch. */
  get length(): number {
    return numBatches(this.plan());
  }

  private plan(): BatchPlan {
    return { count: this.dataset.count, batchSize: this.batchSize, shuffle: this.shuffle, seed: this.seed, dropLast: this.dropLast };
  }

  /** The example indices of each batch of `epoch`. */
  batchIndices(epoch = 0): Int32Array[] {
    return epochBatches(this.plan(), epoch);
  }

  /** The batches of `epoch`, made one at a time as tensors on the loader's device. */
  *batches(epoch = 0): Generator<Batch> {
    for (const indices of this.batchIndices(epoch)) yield this.gather(indices, epoch);
  }

  /** One batch made of the given example indices; `epoch` seeds the random transforms. */
  gather(indices: Int32Array, epoch = 0): Batch {
    checkPositiveInt(epoch, 'kg.data.DataLoader.gather', 'epoch', 0);
    if (!isInt32Array(indices)) throw new TypeError(`kg.data.DataLoader.gather: indices must be an Int32Array, got ${describe(indices)}`);
    for (let i = 0; i < indices.length; i++) {
      if (indices[i] < 0 || indices[i] >= this.dataset.count) {
        throw new RangeError(`kg.data.DataLoader.gather: index ${indices[i]} at position ${i} is outside the dataset of ${this.dataset.count} examples`);
      }
    }
    const { inputs, labels: allLabels, sampleShape } = this.dataset;
    const size = this.sampleSize;
    const b = indices.length;
    const xs = new Float32Array(b * size);
    const labels = new Float32Array(b);
    for (let i = 0; i < b; i++) {
      const k = indices[i];
      xs.set(inputs.subarray(k * size, (k + 1) * size), i * size);
      labels[i] = allLabels[k];
    }
    this.transformBatch(xs, indices, epoch);
    const x = tensor(xs, [b, ...sampleShape], { device: this.device });
    const y = tensor(labels, [b], { device: this.device });
    rememberLabels(y, labels); // softmaxCrossEntropy trusts y, until an in-place write to it
    return { x, y, labels, indices };
  }

  private transformBatch(xs: Float32Array, indices: Int32Array, epoch: number): void {
    if (this.transforms.length === 0) return;
    const size = this.sampleSize;
    const [c, h, w] = this.dataset.sampleShape;
    const epochSeed = mixSeed(this.seed, epoch);
    for (let i = 0; i < indices.length; i++) {
      const rng = new Random(mixSeed(epochSeed, indices[i]));
      const x = xs.subarray(i * size, (i + 1) * size);
      for (const t of this.transforms) t.apply(x, [c, h, w], rng);
    }
  }

  [Symbol.iterator](): Iterator<Batch> {
    return this.batches(this.epoch++);
  }
}
