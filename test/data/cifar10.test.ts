// The CIFAR-10 binary reader, on small files written here: layout and scaling, the limits, and a
// clear error naming the file for each way a folder can be wrong.
import * as fs from 'fs';
import * as path from 'path';
import * as kg from '../../lib';
import { writeFakeCifar } from '../helpers/cifar10-files';

describe('kg.data.loadCifar10', () => {
  const fake = writeFakeCifar([3, 2, 1, 2, 4, 5]);
  afterAll(() => fs.rmSync(fake.dir, { recursive: true, force: true }));

  test('reads the five training files in order and the test file: (N, 3, 32, 32) in [0, 1], labels 0..9', () => {
    const { train, test } = kg.data.loadCifar10({ dir: fake.dir });
    expect(train.count).toBe(12);
    expect(test.count).toBe(5);
    expect(train.images.length).toBe(12 * 3072);
    expect([train.channels, train.rows, train.cols]).toEqual([3, 32, 32]);
    const order = [1, 2, 3, 4, 5].map((i) => fake.files[`data_batch_${i}.bin`]);
    const labels = order.flatMap((f) => Array.from(f.labels));
    expect(Array.from(train.labels)).toEqual(labels);
    const pixels = order.flatMap((f) => Array.from(f.pixels));
    for (const i of [0, 1, 1023, 1024, 2048, 3071, 3072, 7 * 3072 + 5, 12 * 3072 - 1]) {
      expect(train.images[i]).toBe(Math.fround(pixels[i] / 255));
    }
    const t = fake.files['test_batch.bin'];
    expect(Array.from(test.labels)).toEqual(Array.from(t.labels));
    expect(test.images[4 * 3072 + 2000]).toBe(Math.fround(t.pixels[4 * 3072 + 2000] / 255));
    const ds = kg.data.cifar10Dataset(train);
    expect(ds.sampleShape).toEqual([3, 32, 32]);
  });

  test('limits keep the first images; the unpacked archive folder is found', () => {
    const { train, test } = kg.data.loadCifar10({ dir: fake.dir, trainLimit: 4, testLimit: 1 });
    expect(train.count).toBe(4);
    expect(Array.from(train.labels)).toEqual([...fake.files['data_batch_1.bin'].labels, fake.files['data_batch_2.bin'].labels[0]]);
    expect(test.count).toBe(1);
    const outer = fs.mkdtempSync(path.join(fake.dir, 'outer-'));
    fs.symlinkSync(fake.dir, path.join(outer, 'cifar-10-batches-bin'));
    expect(kg.data.loadCifar10({ dir: outer }).test.count).toBe(5);
  });

  test('truncated, empty and trailing bytes: the file and the record size are named', () => {
    const bad = writeFakeCifar([1, 1, 1, 1, 1, 1], 2);
    try {
      const f = path.join(bad.dir, 'data_batch_3.bin');
      fs.truncateSync(f, 3073 - 10);
      expect(() => kg.data.loadCifar10({ dir: bad.dir })).toThrow(`${f}: truncated or not CIFAR-10: 3063 bytes is not a whole number of 3073-byte records (0 records and 3063 bytes left over)`);
      fs.writeFileSync(f, Buffer.alloc(3073 + 1));
      expect(() => kg.data.loadCifar10({ dir: bad.dir })).toThrow(/data_batch_3\.bin: truncated or not CIFAR-10: 3074 bytes .*\(1 records and 1 bytes left over\)/);
      fs.writeFileSync(f, Buffer.alloc(0));
      expect(() => kg.data.loadCifar10({ dir: bad.dir })).toThrow(/data_batch_3\.bin: empty/);
    } finally {
      fs.rmSync(bad.dir, { recursive: true, force: true });
    }
  });

  test('a label that is not a class, missing files, folders and FIFOs', () => {
    const bad = writeFakeCifar([1, 1, 1, 1, 1, 2], 3);
    try {
      const t = path.join(bad.dir, 'test_batch.bin');
      const buf = fs.readFileSync(t);
      buf[3073] = 10;
      fs.writeFileSync(t, buf);
      expect(() => kg.data.loadCifar10({ dir: bad.dir })).toThrow(`${t}: label 10 of record 1 is not a class 0..9`);
      fs.rmSync(t);
      expect(() => kg.data.loadCifar10({ dir: bad.dir })).toThrow(`${bad.dir}: missing the CIFAR-10 file test_batch.bin`);
      fs.mkdirSync(t);
      expect(() => kg.data.loadCifar10({ dir: bad.dir })).toThrow(`${t}: not a regular file`);
      fs.rmdirSync(t);
      if (process.platform !== 'win32') {
        require('child_process').execFileSync('mkfifo', [t]);
        expect(() => kg.data.loadCifar10({ dir: bad.dir })).toThrow(`${t}: not a regular file`);
      }
      expect(() => kg.data.loadCifar10({ dir: path.join(bad.dir, 'nope') })).toThrow(/CIFAR-10 data folder not found: .*nope/);
      expect(() => kg.data.loadCifar10({ dir: path.join(bad.dir, 'data_batch_1.bin') })).toThrow(/CIFAR-10 data path is not a folder/);
    } finally {
      fs.rmSync(bad.dir, { recursive: true, force: true });
    }
  });

  test('bad options', () => {
    expect(() => kg.data.loadCifar10(undefined as never)).toThrow(/kg\.data\.loadCifar10: options\.dir must be the folder of the \.bin files, got undefined/);
    expect(() => kg.data.loadCifar10({ dir: fake.dir, limit: 3 } as never)).toThrow(/unknown option 'limit'/);
    expect(() => kg.data.loadCifar10({ dir: fake.dir, trainLimit: 0 })).toThrow(/trainLimit must be a positive integer/);
    expect(() => kg.data.cifar10Dataset(null as never)).toThrow(/kg\.data\.cifar10Dataset: split must be a split from kg\.data\.loadCifar10/);
  });
});
