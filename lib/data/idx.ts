// Reader for the IDX format of the MNIST files (http://yann.lecun.com/exdb/mnist/), raw or gzipped.
//
// Layout (big-endian): a 4-byte magic 0x00 0x00 <type> <ndim>, then ndim uint32 dimensions, then the
// values. Only unsigned bytes (type 0x08) are supported, which is what MNIST uses. Every check that
// fails throws an Error that names the file and what is wrong.
import * as zlib from 'zlib';
import { readRegularFile } from '../io/regular-file';
import { formatShape } from '../shape';

/** The contents of an IDX file: its dimensions and the raw unsigned bytes (row-major). */
export interface IdxArray {
  /** e.g. [60000, 28, 28] for images, [60000] for labels. */
  shape: number[];
  data: Uint8Array;
}

/** What the caller expects; each given field is checked. */
export interface IdxExpect {
  /** Number of dimensions: 1 for labels (magic 0x00000801), 3 for images (0x00000803). */
  ndim?: number;
  /** Expected dimensions; `null` entries are not checked (e.g. [null, 28, 28]). */
  shape?: Array<number | null>;
}

const UBYTE = 0x08;
const TYPE_NAMES: Record<number, string> = {
  0x08: 'ubyte',
  0x09: 'byte',
  0x0b: 'short',
  0x0c: 'int',
  0x0d: 'float',
  0x0e: 'double',
};

/** True when the buffer starts with the gzip magic bytes 1f 8b. */
export function isGzip(buf: Uint8Array): boolean {
  return buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b;
}

/**
 * Parses an IDX file already in memory (gzip is detected by its magic and inflated). `source` names
 * the file in error messages.
 */
export function parseIdx(input: Uint8Array, source = '<buffer>', expect: IdxExpect = {}): IdxArray {
  let buf: Buffer;
  if (isGzip(input)) {
    try {
      buf = zlib.gunzipSync(input);
    } catch (e) {
      throw new Error(`${source}: corrupt gzip data (${(e as Error).message})`);
    }
  } else {
    buf = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  }

  const fail = (what: string): never => {
    throw new Error(`${source}: ${what}`);
  };

  if (buf.length < 4) fail(`not an IDX file: ${buf.length} bytes, shorter than the 4-byte magic number`);
  const magic = buf.readUInt32BE(0);
  if (buf[0] !== 0 || buf[1] !== 0) {
    fail(`not an IDX file: bad magic number 0x${hex8(magic)} (must start with two zero bytes)`);
  }
  const type = buf[2];
  const ndim = buf[3];
  if (type !== UBYTE) {
    const name = TYPE_NAMES[type] ?? 'unknown';
    fail(`unsupported IDX data type 0x${type.toString(16).padStart(2, '0')} (${name}) in magic 0x${hex8(magic)}; only 0x08 (ubyte) is supported`);
  }
  if (ndim === 0) fail(`bad magic number 0x${hex8(magic)}: zero dimensions`);
  if (expect.ndim !== undefined && ndim !== expect.ndim) {
    const want = 0x800 + expect.ndim;
    fail(`bad magic number 0x${hex8(magic)}: expected 0x${hex8(want)} (${expect.ndim}-D ubyte${expect.ndim === 1 ? ', labels' : expect.ndim === 3 ? ', images' : ''}), found ${ndim}-D`);
  }

  const headerBytes = 4 + 4 * ndim;
  if (buf.length < headerBytes) {
    fail(`truncated header: ${buf.length} bytes, the ${ndim} dimensions need ${headerBytes}`);
  }
  const shape: number[] = [];
  for (let i = 0; i < ndim; i++) shape.push(buf.readUInt32BE(4 + 4 * i));

  if (expect.shape !== undefined) {
    if (expect.shape.length !== ndim) fail(`expected ${expect.shape.length} dimensions, found ${ndim}`);
    expect.shape.forEach((d, i) => {
      if (d !== null && d !== shape[i]) {
        fail(`dimension ${i} is ${shape[i]}, expected ${d} (shape ${formatShape(shape)})`);
      }
    });
  }

  const count = shape.reduce((a, b) => a * b, 1);
  const expected = headerBytes + count;
  if (buf.length < expected) {
    fail(`truncated: ${buf.length} bytes, but the header's shape ${formatShape(shape)} needs ${expected}`);
  }
  if (buf.length > expected) {
    fail(`${buf.length - expected} unexpected trailing bytes: the header's shape ${formatShape(shape)} needs exactly ${expected}, the file has ${buf.length}`);
  }
  // Copy into a fresh array so the result does not pin a larger decompression buffer.
  const data = new Uint8Array(count);
  data.set(buf.subarray(headerBytes, expected));
  return { shape, data };
}

/** Reads and parses an IDX file (raw or gzipped) from disk. */
export function readIdx(file: string, expect: IdxExpect = {}): IdxArray {
  return parseIdx(readRegularFile(file), file, expect);
}

/** Builds an IDX file of unsigned bytes (used by tests and tools). */
export function encodeIdx(shape: number[], data: Uint8Array): Buffer {
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw new Error(`encodeIdx: shape ${formatShape(shape)} needs ${count} values, got ${data.length}`);
  const header = Buffer.alloc(4 + 4 * shape.length);
  header[2] = UBYTE;
  header[3] = shape.length;
  shape.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([header, Buffer.from(data.buffer, data.byteOffset, data.byteLength)]);
}

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}
