// The part of the protocol-buffers wire format (https://protobuf.dev/programming-guides/encoding/)
// that writing an ONNX model needs: varint and length-delimited fields, nested messages built
// inside out. Enough for a writer; nothing here decodes.
//
// A message is built as a list of byte chunks, so that the tensors' raw data (megabytes) is never
// copied into a growing buffer field by field; `bytes()` joins them once at the end.

/** Wire types: 0 = varint (ints, enums), 2 = length-delimited (strings, bytes, sub-messages). */
const VARINT = 0;
const LEN = 2;

function varint(v: number | bigint): Uint8Array {
  // Negative int64 values are written as their two's complement, ten bytes, as protobuf does.
  let x = BigInt.asUintN(64, BigInt(v));
  const out: number[] = [];
  do {
    let b = Number(x & 0x7fn);
    x >>= 7n;
    if (x !== 0n) b |= 0x80;
    out.push(b);
  } while (x !== 0n);
  return Uint8Array.from(out);
}

function tag(field: number, wire: number): Uint8Array {
  return varint((field << 3) | wire);
}

export class Message {
  private readonly chunks: Uint8Array[] = [];
  private size = 0;

  private push(...parts: Uint8Array[]): this {
    for (const p of parts) {
      this.chunks.push(p);
      this.size += p.length;
    }
    return this;
  }

  /** An int32/int64/enum field (varint). */
  int(field: number, v: number | bigint): this {
    return this.push(tag(field, VARINT), varint(v));
  }

  /** A float field (wire type 5, 4 bytes little-endian). */
  float(field: number, v: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    return this.push(tag(field, 5), b);
  }

  /** A bytes field. */
  bytes(field: number, data: Uint8Array): this {
    return this.push(tag(field, LEN), varint(data.length), data);
  }

  /** A string field (UTF-8). */
  string(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }

  /** A sub-message field. */
  message(field: number, m: Message): this {
    return this.push(tag(field, LEN), varint(m.size), ...m.chunks);
  }

  /** A packed repeated int64 field (proto3's default for repeated scalars; proto2 parsers accept it). */
  packedInts(field: number, vs: readonly number[]): this {
    const body = new Message();
    for (const v of vs) body.push(varint(v));
    return this.push(tag(field, LEN), varint(body.size), ...body.chunks);
  }

  get byteLength(): number {
    return this.size;
  }

  /** The encoded message as chunks (e.g. for a file write that takes a list). */
  parts(): Uint8Array[] {
    return [...this.chunks];
  }

  /** The encoded message in one buffer. */
  toBytes(): Uint8Array {
    const out = new Uint8Array(this.size);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}
