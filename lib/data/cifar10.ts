// CIFAR-10 in its standard binary form (https://www.cs.toronto.edu/~kriz/cifar.html): five training
// files data_batch_1.bin ... data_batch_5.bin and test_batch.bin, each a run of 3073-byte records
// (1 label byte, then 1024 red, 1024 green and 1024 blue pixel bytes, rows top to bottom). Images
// come out as float32 NCHW (N, 3, 32, 32) in [0, 1] (pixel / 255), which is the records' own
// channel-major layout, so reading is a scale and no transpose.
import * as fs from 'fs';
import * as path from 'path';
import { checkPositiveInt } from '../ops/check';
import { describe, readOptions } from '../options';

export const CIFAR10_CLASSES = 10;
export const CIFAR10_LABELS = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'] as const;
/** Per-channel mean and standard deviation of the training images, for kg.data.normalize. */
export const CIFAR10_MEAN = [0.4914, 0.4822, 0.4465] as const;
export const CIFAR10_STD = [0.247, 0.2435, 0.2616] as const;

const SIDE = 32;
const PIXELS = 3 * SIDE * SIDE;
export const CIFAR10_RECORD_BYTES = 1 + PIXELS;

export const CIFAR10_TRAIN_FILES = [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`);
export const CIFAR10_TEST_FILES = ['test_batch.bin'];

/** One split of CIFAR-10 held in host memory. */
export interface Cifar10Split {
  /** count * 3 * 32 * 32 values in [0, 1], NCHW. */
  images: Float32Array;
  /** count class indices 0..9 (see CIFAR10_LABELS). */
  labels: Uint8Array;
  count: number;
  channels: 3;
  rows: 32;
  cols: 32;
}

export interface LoadCifar10Options {
  /** Folder with the .bin files, or the folder that holds the archive's cifar-10-batches-bin/. */
  dir: string;
  /** Keep only the first n training / test images (every file is still validated whole). */
  trainLimit?: number;
  testLimit?: number;
}

/** The folder that holds the .bin files: `dir` itself, or its cifar-10-batches-bin/ (as unpacked). */
export function findCifar10Dir(dir: string): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    throw new Error(`CIFAR-10 data folder not found: ${dir}`);
  }
  if (!st.isDirectory()) throw new Error(`CIFAR-10 data path is not a folder: ${dir}`);
  const nested = path.join(dir, 'cifar-10-batches-bin');
  if (!fs.existsSync(path.join(dir, CIFAR10_TEST_FILES[0])) && fs.existsSync(nested)) return nested;
  return dir;
}

/** Checks that `file` is a regular file of whole records; returns its size in records. */
function recordsOf(file: string): number {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Error(`${path.dirname(file)}: missing the CIFAR-10 file ${path.basename(file)}`);
    throw new Error(`${file}: cannot read (${code ?? (e as Error).message})`);
  }
  // A FIFO or a device would block or never end; a folder is a mistake in the layout.
  if (!st.isFile()) throw new Error(`${file}: not a regular file`);
  if (st.size === 0) throw new Error(`${file}: empty, expected records of ${CIFAR10_RECORD_BYTES} bytes`);
  if (st.size % CIFAR10_RECORD_BYTES !== 0) {
    const whole = Math.floor(st.size / CIFAR10_RECORD_BYTES);
    throw new Error(
      `${file}: truncated or not CIFAR-10: ${st.size} bytes is not a whole number of ${CIFAR10_RECORD_BYTES}-byte records ` +
        `(${whole} records and ${st.size - whole * CIFAR10_RECORD_BYTES} bytes left over)`,
    );
  }
  return st.size / CIFAR10_RECORD_BYTES;
}

/**
 * Reads the given files of `dir` in order into one split, keeping the first `limit` images.
 * Every file is checked (regular, whole records, labels 0..9) before anything is decoded.
 */
export function readCifar10Files(dir: string, files: readonly string[], limit?: number): Cifar10Split {
  const paths = files.map((f) => path.join(dir, f));
  const sizes = paths.map(recordsOf);
  const total = sizes.reduce((a, b) => a + b, 0);
  const count = limit === undefined ? total : Math.min(total, limit);
  const images = new Float32Array(count * PIXELS);
  const labels = new Uint8Array(count);
  let at = 0;
  paths.forEach((file, f) => {
    let buf: Buffer;
    try {
      buf = fs.readFileSync(file);
    } catch (e) {
      throw new Error(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    if (buf.length !== sizes[f] * CIFAR10_RECORD_BYTES) throw new Error(`${file}: changed size while being read`);
    for (let r = 0; r < sizes[f]; r++) {
      const off = r * CIFAR10_RECORD_BYTES;
      const label = buf[off];
      if (label >= CIFAR10_CLASSES) throw new Error(`${file}: label ${label} of record ${r} is not a class 0..9`);
      if (at >= count) continue; // past the limit: still validated
      labels[at] = label;
      const dst = at * PIXELS;
      for (let i = 0; i < PIXELS; i++) images[dst + i] = buf[off + 1 + i] / 255;
      at++;
    }
  });
  return { images, labels, count, channels: 3, rows: SIDE, cols: SIDE };
}

/** Both splits of CIFAR-10 from the standard binary files of `dir`. */
export function loadCifar10(options: LoadCifar10Options): { train: Cifar10Split; test: Cifar10Split } {
  const fn = 'kg.data.loadCifar10';
  const opts = readOptions(options, fn, ['dir', 'trainLimit', 'testLimit']);
  if (options === undefined || typeof opts.dir !== 'string') throw new TypeError(`${fn}: options.dir must be the folder of the .bin files, got ${describe(opts.dir)}`);
  if (opts.trainLimit !== undefined) checkPositiveInt(opts.trainLimit, fn, 'trainLimit');
  if (opts.testLimit !== undefined) checkPositiveInt(opts.testLimit, fn, 'testLimit');
  const dir = findCifar10Dir(opts.dir);
  // Both splits' files are checked before either is decoded, so a missing test file fails fast.
  for (const f of [...CIFAR10_TRAIN_FILES, ...CIFAR10_TEST_FILES]) recordsOf(path.join(dir, f));
  return {
    train: readCifar10Files(dir, CIFAR10_TRAIN_FILES, opts.trainLimit),
    test: readCifar10Files(dir, CIFAR10_TEST_FILES, opts.testLimit),
  };
}

/** Builds CIFAR-10 binary records (used by tests and tools): pixels are count * 3072 bytes, NCHW. */
export function encodeCifar10(labels: ArrayLike<number>, pixels: Uint8Array): Buffer {
  if (pixels.length !== labels.length * PIXELS) {
    throw new RangeError(`encodeCifar10: ${labels.length} labels need ${labels.length * PIXELS} pixel bytes, got ${pixels.length}`);
  }
  const out = Buffer.alloc(labels.length * CIFAR10_RECORD_BYTES);
  for (let r = 0; r < labels.length; r++) {
    out[r * CIFAR10_RECORD_BYTES] = labels[r];
    out.set(pixels.subarray(r * PIXELS, (r + 1) * PIXELS), r * CIFAR10_RECORD_BYTES + 1);
  }
  return out;
}
