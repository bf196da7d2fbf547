import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { decodeSafetensors, encodeSafetensors, readSafetensors, writeSafetensors } from '../../lib/io/safetensors';
import { writeFileAtomic } from '../../lib/io/atomic';

const sample = () => ({
  'conv1.weight': { shape: [2, 1, 3, 3], data: Float32Array.from({ length: 18 }, (_, i) => i * 0.5 - 3) },
  'conv1.bias': { shape: [2], data: Float32Array.from([NaN, -0]) },
  scalar: { shape: [], data: Float32Array.from([Math.PI]) },
  empty: { shape: [0, 4], data: new Float32Array(0) },
});

function withHeader(header: object, data: Uint8Array): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, data]);
}

describe('safetensors', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kg-st-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('layout: u64 header length, space-padded JSON aligned to 8, F32 little-endian data', () => {
    const buf = encodeSafetensors(sample(), { format: 'pt', epoch: '3' });
    const n = Number(buf.readBigUInt64LE(0));
    expect((8 + n) % 8).toBe(0);
    const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
    expect(header.__metadata__).toEqual({ format: 'pt', epoch: '3' });
    expect(header['conv1.weight']).toEqual({ dtype: 'F32', shape: [2, 1, 3, 3], data_offsets: [0, 72] });
    expect(header['conv1.bias']).toEqual({ dtype: 'F32', shape: [2], data_offsets: [72, 80] });
    expect(buf.readFloatLE(8 + n + 4)).toBe(-2.5);
    expect(buf.length).toBe(8 + n + 72 + 8 + 4);
  });

  test('round trip is bitwise exact (NaN, -0, scalars, empty tensors)', () => {
    const file = path.join(dir, 'a.safetensors');
    writeSafetensors(file, sample(), { arch: 'x' });
    const { tensors, metadata } = readSafetensors(file);
    expect(metadata).toEqual({ arch: 'x' });
    expect(Object.keys(tensors)).toEqual(['conv1.weight', 'conv1.bias', 'scalar', 'empty']);
    for (const [k, v] of Object.entries(sample())) {
      expect(tensors[k].shape).toEqual(v.shape);
      expect(Buffer.from(tensors[k].data.buffer)).toEqual(Buffer.from(v.data.buffer));
    }
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  test('accepts tensor-like values (toArray)', () => {
    const t = { shape: [2], toArray: () => Float32Array.from([1, 2]) };
    const { tensors } = decodeSafetensors(encodeSafetensors({ t }));
    expect(Array.from(tensors.t.data)).toEqual([1, 2]);
  });

  test('no metadata: header without __metadata__', () => {
    const buf = encodeSafetensors({ a: { shape: [1], data: Float32Array.from([1]) } });
    expect(buf.toString('utf8')).not.toContain('__metadata__');
    expect(decodeSafetensors(buf).metadata).toEqual({});
  });

  test('rejects a wrong value count when writing', () => {
    expect(() => encodeSafetensors({ a: { shape: [3], data: new Float32Array(2) } })).toThrow(/'a' has 2 values but shape \[3\]/);
  });

  test('truncated file', () => {
    const buf = encodeSafetensors(sample());
    expect(() => decodeSafetensors(buf.subarray(0, buf.length - 4), 'm.st')).toThrow(/m\.st: invalid safetensors file: tensor '.*' data_offsets .* run past the end/);
    expect(() => decodeSafetensors(buf.subarray(0, 5), 'm.st')).toThrow(/too short/);
    expect(() => decodeSafetensors(buf.subarray(0, 20), 'm.st')).toThrow(/header length \d+ runs past the end/);
  });

  test('bad dtype, bad sizes, gaps, overlaps and trailing bytes', () => {
    const data = new Uint8Array(16);
    expect(() => decodeSafetensors(withHeader({ a: { dtype: 'F8_E4M3', shape: [16], data_offsets: [0, 16] } }, data))).toThrow(/'a' has dtype "F8_E4M3", which cannot be read as float32 \(readable: F32, F64, F16, BF16, I64/);
    expect(() => decodeSafetensors(withHeader({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 16] } }, data))).toThrow(/needs 12 bytes but data_offsets \[0, 16\] span 16/);
    expect(() =>
      decodeSafetensors(withHeader({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }, data)),
    ).toThrow(/gap in the data before tensor 'b'/);
    expect(() =>
      decodeSafetensors(withHeader({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, data)),
    ).toThrow(/'b' overlaps/);
    expect(() => decodeSafetensors(withHeader({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, data))).toThrow(/8 trailing bytes/);
    expect(() => decodeSafetensors(withHeader({ __metadata__: { a: 1 } }, new Uint8Array(0)))).toThrow(/__metadata__\.a is not a string/);
  });

  test('header that is not JSON', () => {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(3n);
    expect(() => decodeSafetensors(Buffer.concat([len, Buffer.from('{x]')]), 'j')).toThrow(/j: invalid safetensors file: header is not valid JSON/);
  });

  test('missing file', () => {
    expect(() => readSafetensors(path.join(dir, 'none.safetensors'))).toThrow(/none\.safetensors: no such file/);
  });
});

describe('writeFileAtomic', () => {
  test('replaces the target and leaves no temporary file', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kg-atomic-'));
    const f = path.join(dir, 'x.json');
    writeFileAtomic(f, 'old');
    writeFileAtomic(f, [Buffer.from('ne'), Buffer.from('w')]);
    expect(fs.readFileSync(f, 'utf8')).toBe('new');
    expect(fs.readdirSync(dir)).toEqual(['x.json']);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('a failed write leaves the old file intact', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kg-atomic-'));
    const f = path.join(dir, 'x');
    writeFileAtomic(f, 'old');
    expect(() => writeFileAtomic(path.join(dir, 'missing-dir', 'y'), 'z')).toThrow(/ENOENT/);
    expect(fs.readFileSync(f, 'utf8')).toBe('old');
    expect(fs.readdirSync(dir)).toEqual(['x']);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
