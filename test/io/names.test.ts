// Tensor and metadata names are data: `__proto__`, `constructor` and friends are kept as names
// instead of reaching the prototype of the objects that hold them.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as kg from '../../lib';
import { decodeSafetensors, encodeSafetensors, readSafetensors, writeSafetensors } from '../../lib/io/safetensors';

const NAMES = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'weight'];

/** An object literal with an own property per name (a computed key never sets the prototype). */
function byName<T>(make: (name: string, i: number) => T): Record<string, T> {
  const out: Record<string, T> = {};
  NAMES.forEach((n, i) => Object.defineProperty(out, n, { value: make(n, i), enumerable: true, writable: true, configurable: true }));
  return out;
}

describe('safetensors names', () => {
  test('tensors and metadata named like Object.prototype members round-trip', () => {
    const tensors = byName((_, i) => ({ shape: [2], data: new Float32Array([i, -i - 0.5]) }));
    const metadata = byName((n) => `value of ${n}`);
    const decoded = decodeSafetensors(encodeSafetensors(tensors, metadata));
    expect(Object.keys(decoded.tensors)).toEqual(NAMES);
    NAMES.forEach((n, i) => {
      expect(Object.getOwnPropertyDescriptor(decoded.tensors, n)?.value.data).toEqual(new Float32Array([i, -i - 0.5]));
      expect(Object.getOwnPropertyDescriptor(decoded.metadata, n)?.value).toBe(`value of ${n}`);
    });
    expect(Object.getPrototypeOf(decoded.tensors)).toBeNull();
  });

  test('a file naming a tensor __proto__ (as Python writes it) is read with that tensor', () => {
    const header = '{"__proto__":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}';
    const json = Buffer.from(header.padEnd(Math.ceil(header.length / 8) * 8, ' '));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    const buf = Buffer.concat([len, json, Buffer.from(new Float32Array([7]).buffer)]);
    const { tensors } = decodeSafetensors(buf);
    expect(Object.keys(tensors)).toEqual(['__proto__']);
    expect(Array.from(Object.getOwnPropertyDescriptor(tensors, '__proto__')!.value.data)).toEqual([7]);
  });

  test('a module parameter named __proto__ survives a checkpoint', () => {
    class Odd extends kg.nn.Module {
      constructor(v: number) {
        super();
        this.registerParameter('__proto__', kg.full([3], v, { device: 'cpu' }));
        this.registerParameter('constructor', kg.full([2], -v, { device: 'cpu' }));
      }
      forward(x: kg.Tensor): kg.Tensor {
        return x;
      }
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kg-names-'));
    try {
      const file = path.join(dir, 'odd.safetensors');
      kg.io.saveCheckpoint(file, new Odd(2));
      expect(Object.keys(readSafetensors(file).tensors)).toEqual(['__proto__', 'constructor']);
      const target = new Odd(0);
      kg.io.loadCheckpointInto(file, target);
      expect(target.namedParameters().map(([n, t]) => [n, Array.from(t.toArray())])).toEqual([
        ['__proto__', [2, 2, 2]],
        ['constructor', [-2, -2]],
      ]);
      writeSafetensors(file, byName(() => ({ shape: [], data: new Float32Array([1]) })));
      expect(Object.keys(readSafetensors(file).tensors)).toEqual(NAMES);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
