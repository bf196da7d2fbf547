// The safetensors format (https://github.com/huggingface/safetensors):
//
//   [8 bytes: header length N, little-endian u64]
//   [N bytes: JSON header, padded with spaces so that 8 + N is a multiple of 8]
//   [raw little-endian data of all tensors, back to back]
//
// The header maps each tensor name to {dtype, shape, data_offsets: [begin, end]} (offsets
// relative to the start of the data) and may hold `__metadata__`: an object of string values.
// Files written here load with `safetensors.torch.load_file` in Python.
//
// Tensors here are float32. Written: F32, or I64 for a tensor that asks for it (PyTorch keeps
// counters such as num_batches_tracked as int64). Read: F32 as is, and the dtypes PyTorch writes
// for weights and counters converted to float32 when that is exact (F16, BF16, integers up to
// 2^24 in magnitude, BOOL) or the usual rounding (F64, refused when a value overflows float32);
// any other dtype, or a value float32 cannot hold, is refused with the tensor's name.
import * as os from 'os';
import { writeFileAtomic } from './atomic';
import { describe } from '../options';
import { readRegularFile } from './regular-file';
import { checkShape, formatShape } from '../shape';
import { isFloat32Array, isUint8Array } from '../typed-arrays';

/** The dtypes a file may name. */
export type SafetensorsDtype = 'F32' | 'F64' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

/** A float32 array with its shape, in host memory. */
export interface TensorData {
  shape: number[];
  data: Float32Array;
  /**
   * The dtype in the file. Writing: 'F32' (default) or 'I64' (the values must be integers).
   * Reading: the dtype the file named (the values are converted to float32).
   */
  dtype?: SafetensorsDtype;
}

/** Anything that can give its values as float32 (a kernelgrad Tensor qualifies). */
export interface TensorLike {
  readonly shape: readonly number[];
  toArray(): Float32Array;
}

/**
 * The objects by name below have no prototype: a file may name a tensor `__proto__` or
 * `constructor`, and with a prototype that name would set or shadow an inherited property instead
 * of holding the tensor.
 */
export interface SafetensorsContents {
  /** Tensors by name, in the order of their data in the file. */
  tensors: Record<string, TensorData>;
  /** The `__metadata__` entry ({} when absent). */
  metadata: Record<string, string>;
}

const METADATA_KEY = '__metadata__';
/** Upper bound on the header size, as in the reference implementation. */
const MAX_HEADER = 100_000_000;
const LITTLE_ENDIAN = os.endianness() === 'LE';

function isTensorData(t: TensorData | TensorLike): t is TensorData {
  return isFloat32Array((t as TensorData).data);
}

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

// Bytes per value, and a reader of one value at a byte offset, for each readable dtype.
const DTYPES: Record<SafetensorsDtype, { size: number; read: (v: DataView, at: number) => number; integer: boolean }> = {
  F32: { size: 4, read: (v, at) => v.getFloat32(at, true), integer: false },
  F64: { size: 8, read: (v, at) => v.getFloat64(at, true), integer: false },
  F16: { size: 2, read: (v, at) => halfToNumber(v.getUint16(at, true)), integer: false },
  BF16: { size: 2, read: (v, at) => bfloat16ToNumber(v.getUint16(at, true)), integer: false },
  I64: { size: 8, read: (v, at) => Number(v.getBigInt64(at, true)), integer: true },
  I32: { size: 4, read: (v, at) => v.getInt32(at, true), integer: true },
  I16: { size: 2, read: (v, at) => v.getInt16(at, true), integer: true },
  I8: { size: 1, read: (v, at) => v.getInt8(at), integer: true },
  U8: { size: 1, read: (v, at) => v.getUint8(at), integer: true },
  BOOL: { size: 1, read: (v, at) => (v.getUint8(at) ? 1 : 0), integer: true },
};
/** Integers beyond this magnitude are not all representable in float32. */
const FLOAT32_EXACT_INT = 2 ** 24;

function isDtype(d: unknown): d is SafetensorsDtype {
  return typeof d === 'string' && Object.prototype.hasOwnProperty.call(DTYPES, d);
}

function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

function bfloat16ToNumber(b: number): number {
  const view = new DataView(new ArrayBuffer(4));
  view.setUint32(0, b << 16);
  return view.getFloat32(0);
}

function toLittleEndianBytes(a: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const out = new Uint8Array(a.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < a.length; i++) view.setFloat32(i * 4, a[i], true);
  return out;
}

/** Integer values as little-endian int64; `what` names the tensor when one is not an integer. */
function toInt64Bytes(a: Float32Array, what: string): Uint8Array {
  const out = new Uint8Array(a.length * 8);
  const view = new DataView(out.buffer);
  for (let i = 0; i < a.length; i++) {
    if (!Number.isInteger(a[i])) throw new RangeError(`safetensors: tensor '${what}' is written as I64, but value ${i} is ${a[i]}, not an integer`);
    view.setBigInt64(i * 8, BigInt(a[i]), true);
  }
  return out;
}

/**
 * The values of a tensor stored as `dtype`, as float32. Throws (via `fail`) when one cannot be
 * held: an integer beyond 2^24 in magnitude, or a finite float64 beyond float32's range.
 */
function decodeValues(bytes: Uint8Array, dtype: SafetensorsDtype, name: string, fail: (what: string) => never): Float32Array {
  if (dtype === 'F32') return fromLittleEndianBytes(bytes);
  const { size, read, integer } = DTYPES[dtype];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(bytes.byteLength / size);
  for (let i = 0; i < out.length; i++) {
    const v = read(view, i * size);
    out[i] = v;
    if (integer && Math.abs(v) > FLOAT32_EXACT_INT) {
      fail(`tensor '${name}' (${dtype}) holds ${v} at index ${i}, which float32 cannot hold exactly (integers up to 2^24)`);
    }
    if (Number.isFinite(v) && !Number.isFinite(out[i])) {
      fail(`tensor '${name}' (${dtype}) holds ${v} at index ${i}, beyond the range of float32`);
    }
  }
  return out;
}

function fromLittleEndianBytes(bytes: Uint8Array): Float32Array {
  const out = new Float32Array(bytes.byteLength / 4);
  if (LITTLE_ENDIAN) {
    new Uint8Array(out.buffer).set(bytes); // copy: the source may be unaligned
  } else {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  }
  return out;
}

/**
 * Serializes tensors (in the given key order) and optional string metadata into one buffer list
 * (header first). Concatenate it, or pass it to `writeFileAtomic`.
 */
export function encodeSafetensorsParts(
  tensors: Record<string, TensorData | TensorLike>,
  metadata: Record<string, string> = {},
): Uint8Array[] {
  if (tensors === null || typeof tensors !== 'object') {
    throw new TypeError(`kg.io.encodeSafetensors: tensors must be an object of tensors by name, got ${describe(tensors)}`);
  }
  if (metadata === null || typeof metadata !== 'object') {
    throw new TypeError(`kg.io.encodeSafetensors: metadata must be an object of strings by name, got ${describe(metadata)}`);
  }
  const header: Record<string, unknown> = Object.create(null);
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new Error(`safetensors: metadata value for '${k}' must be a string`);
  }
  if (Object.keys(metadata).length > 0) header[METADATA_KEY] = metadata;
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    if (name === METADATA_KEY) throw new Error(`safetensors: '${METADATA_KEY}' is reserved and cannot name a tensor`);
    if (t === null || typeof t !== 'object' || !Array.isArray(t.shape) || !(isTensorData(t) || typeof t.toArray === 'function')) {
      throw new TypeError(`kg.io.encodeSafetensors: tensor '${name}' must be a Tensor or { shape, data: Float32Array }, got ${describe(t)}`);
    }
    const shape = checkShape(t.shape, 'kg.io.encodeSafetensors', `the shape of tensor '${name}'`);
    const data = isTensorData(t) ? t.data : t.toArray();
    if (data.length !== product(shape)) {
      throw new Error(`safetensors: tensor '${name}' has ${data.length} values but shape ${formatShape(shape)}`);
    }
    const dtype = isTensorData(t) ? (t.dtype ?? 'F32') : 'F32';
    if (dtype !== 'F32' && dtype !== 'I64') {
      throw new TypeError(`kg.io.encodeSafetensors: tensor '${name}' has dtype ${describe(dtype)}; F32 and I64 can be written`);
    }
    const bytes = dtype === 'I64' ? toInt64Bytes(data, name) : toLittleEndianBytes(data);
    header[name] = { dtype, shape, data_offsets: [offset, offset + bytes.byteLength] };
    offset += bytes.byteLength;
    parts.push(bytes);
  }
  let json = JSON.stringify(header);
  let headerBytes = Buffer.from(json, 'utf8');
  const pad = (8 - ((8 + headerBytes.length) % 8)) % 8;
  if (pad > 0) {
    json += ' '.repeat(pad);
    headerBytes = Buffer.from(json, 'utf8');
  }
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBytes.length));
  return [len, headerBytes, ...parts];
}

/** Serializes tensors and metadata into one Buffer. */
export function encodeSafetensors(
  tensors: Record<string, TensorData | TensorLike>,
  metadata: Record<string, string> = {},
): Buffer {
  return Buffer.concat(encodeSafetensorsParts(tensors, metadata));
}

/**
 * Parses a safetensors buffer, validating the header, dtypes (see the top of this file), shapes against byte sizes,
 * and that the tensors tile the data section exactly (no gaps, overlaps or trailing bytes).
 * `source` names the file in error messages.
 */
export function decodeSafetensors(buf: Uint8Array, source = '<buffer>'): SafetensorsContents {
  const fail = (what: string): never => {
    throw new Error(`${source}: invalid safetensors file: ${what}`);
  };
  if (!isUint8Array(buf)) throw new TypeError(`kg.io.decodeSafetensors: buf must be a Uint8Array or Buffer, got ${describe(buf)}`);
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < 8) fail(`${b.length} bytes, too short for the 8-byte header length`);
  const n64 = b.readBigUInt64LE(0);
  if (n64 > BigInt(MAX_HEADER)) fail(`header length ${n64} is larger than the limit of ${MAX_HEADER} bytes`);
  const n = Number(n64);
  if (8 + n > b.length) fail(`header length ${n} runs past the end of the file (${b.length} bytes)`);
  const text = b.subarray(8, 8 + n).toString('utf8');
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('header is not a JSON object');
  const entries = header as Record<string, unknown>;

  const metadata: Record<string, string> = Object.create(null);
  const meta = entries[METADATA_KEY];
  if (meta !== undefined) {
    if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) fail(`${METADATA_KEY} is not an object`);
    for (const [k, v] of Object.entries(meta as Record<string, unknown>)) {
      if (typeof v !== 'string') fail(`${METADATA_KEY}.${k} is not a string`);
      metadata[k] = v as string;
    }
  }

  const dataStart = 8 + n;
  const dataLength = b.length - dataStart;
  const items: Array<{ name: string; dtype: SafetensorsDtype; shape: number[]; begin: number; end: number }> = [];
  for (const [name, value] of Object.entries(entries)) {
    if (name === METADATA_KEY) continue;
    if (typeof value !== 'object' || value === null) fail(`entry '${name}' is not an object`);
    const info = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!isDtype(info.dtype)) {
      fail(`tensor '${name}' has dtype ${JSON.stringify(info.dtype)}, which cannot be read as float32 (readable: ${Object.keys(DTYPES).join(', ')})`);
    }
    const dtype = info.dtype as SafetensorsDtype;
    const shape = info.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(`tensor '${name}' has an invalid shape ${JSON.stringify(shape)}`);
    }
    const offs = info.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(`tensor '${name}' has invalid data_offsets ${JSON.stringify(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    if (end < begin) fail(`tensor '${name}' has data_offsets [${begin}, ${end}] with end before begin`);
    const want = product(shape as number[]) * DTYPES[dtype].size;
    if (end - begin !== want) {
      fail(`tensor '${name}' of shape ${formatShape((shape as number[]))} needs ${want} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`);
    }
    if (end > dataLength) {
      fail(`tensor '${name}' data_offsets [${begin}, ${end}] run past the end of the data (${dataLength} bytes; file truncated?)`);
    }
    items.push({ name, dtype, shape: shape as number[], begin, end });
  }
  items.sort((x, y) => x.begin - y.begin || x.end - y.end);
  let pos = 0;
  for (const it of items) {
    if (it.begin !== pos) {
      fail(it.begin < pos ? `tensor '${it.name}' overlaps the previous tensor` : `gap in the data before tensor '${it.name}' (bytes ${pos}..${it.begin})`);
    }
    pos = it.end;
  }
  if (pos !== dataLength) fail(`${dataLength - pos} trailing bytes after the last tensor`);

  const tensors: Record<string, TensorData> = Object.create(null);
  for (const it of items) {
    const data = decodeValues(b.subarray(dataStart + it.begin, dataStart + it.end), it.dtype, it.name, fail);
    tensors[it.name] = { shape: it.shape, data, dtype: it.dtype };
  }
  return { tensors, metadata };
}

/** Writes a safetensors file atomically (temp file + fsync + rename). */
export function writeSafetensors(
  file: string,
  tensors: Record<string, TensorData | TensorLike>,
  metadata: Record<string, string> = {},
): void {
  writeFileAtomic(file, encodeSafetensorsParts(tensors, metadata));
}

/** Reads and validates a safetensors file. */
export function readSafetensors(file: string): SafetensorsContents {
  return decodeSafetensors(readRegularFile(file), file);
}
