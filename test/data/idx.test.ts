import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import { encodeIdx, isGzip, parseIdx, readIdx } from '../../lib/data/idx';

function images(n: number, rows = 4, cols = 3): Buffer {
  const data = new Uint8Array(n * rows * cols);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) % 256;
  return encodeIdx([n, rows, cols], data);
}

describe('IDX reader', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kg-idx-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('parses a good images file', () => {
    const f = path.join(dir, 'img');
    fs.writeFileSync(f, images(5));
    const a = readIdx(f, { ndim: 3, shape: [null, 4, 3] });
    expect(a.shape).toEqual([5, 4, 3]);
    expect(a.data.length).toBe(60);
    expect(a.data[1]).toBe(7);
    expect(a.data[59]).toBe((59 * 7) % 256);
  });

  test('parses labels (magic 0x00000801)', () => {
    const buf = encodeIdx([4], Uint8Array.from([3, 1, 4, 1]));
    expect(buf.readUInt32BE(0)).toBe(0x00000801);
    const a = parseIdx(buf, 'labels', { ndim: 1 });
    expect(a.shape).toEqual([4]);
    expect(Array.from(a.data)).toEqual([3, 1, 4, 1]);
  });

  test('reads gzipped files (detected by magic 1f 8b)', () => {
    const f = path.join(dir, 'img.gz');
    const gz = zlib.gzipSync(images(3));
    expect(isGzip(gz)).toBe(true);
    fs.writeFileSync(f, gz);
    expect(readIdx(f, { ndim: 3 }).shape).toEqual([3, 4, 3]);
  });

  test('wrong magic names the file and the problem', () => {
    const f = path.join(dir, 'bad-magic');
    const buf = images(2);
    buf.writeUInt32BE(0x12345678, 0);
    fs.writeFileSync(f, buf);
    expect(() => readIdx(f)).toThrow(new RegExp(`${f}: .*bad magic number 0x12345678`));
  });

  test('labels file where images are expected', () => {
    const buf = encodeIdx([2], Uint8Array.from([1, 2]));
    expect(() => parseIdx(buf, 'x.idx', { ndim: 3 })).toThrow(/x\.idx: bad magic number 0x00000801: expected 0x00000803/);
  });

  test('unsupported data type', () => {
    const buf = images(1);
    buf[2] = 0x0d;
    expect(() => parseIdx(buf, 'f')).toThrow(/unsupported IDX data type 0x0d \(float\)/);
  });

  test('truncated file', () => {
    const f = path.join(dir, 'truncated');
    fs.writeFileSync(f, images(5).subarray(0, 40));
    expect(() => readIdx(f)).toThrow(new RegExp(`${f}: truncated: 40 bytes, but the header's shape \\[5, 4, 3\\] needs 76`));
  });

  test('truncated header', () => {
    expect(() => parseIdx(images(5).subarray(0, 10), 'h')).toThrow(/h: truncated header/);
    expect(() => parseIdx(Buffer.from([0, 0]), 'tiny')).toThrow(/tiny: not an IDX file/);
  });

  test('count mismatch: trailing data', () => {
    const buf = images(5);
    buf.writeUInt32BE(4, 4); // header says 4 images, 5 are there
    expect(() => parseIdx(buf, 'c')).toThrow(/c: 12 unexpected trailing bytes/);
  });

  test('dimension mismatch', () => {
    expect(() => parseIdx(images(2, 5, 5), 'd', { shape: [null, 28, 28] })).toThrow(/d: dimension 1 is 5, expected 28/);
  });

  test('corrupt gzip', () => {
    const gz = zlib.gzipSync(images(3));
    const bad = gz.subarray(0, gz.length - 10);
    expect(() => parseIdx(bad, 'z.gz')).toThrow(/z\.gz: corrupt gzip data/);
  });

  test('missing file', () => {
    expect(() => readIdx(path.join(dir, 'nope'))).toThrow(/nope: no such file/);
  });
});
