// Checkpoints in PyTorch's names: written so that PyTorch's load_state_dict(strict=True) takes
// them as they are, and read back in either naming, with the dtypes PyTorch writes.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as kg from '../../lib';
import { encodeSafetensors, decodeSafetensors, readSafetensors, TensorData } from '../../lib/io/safetensors';
import { bnCnn } from '../../lib/models/bn-cnn';

const { saveCheckpoint, loadCheckpointInto } = kg.io;

/** A trained-looking model: statistics moved by three batches, so nothing is at its initial value. */
function trained(seed: number): kg.nn.Module {
  const model = bnCnn({ seed, device: 'cpu' });
  for (let i = 0; i < 3; i++) model.forward(kg.rand([6, 1, 28, 28], { seed: seed + i }));
  return model;
}

function evalOutput(model: kg.nn.Module): Buffer {
  model.eval();
  const y = model.forward(kg.rand([4, 1, 28, 28], { seed: 77 }));
  model.train();
  return Buffer.from(y.toArray().buffer);
}

function int64Bytes(values: bigint[]): Uint8Array {
  const out = new Uint8Array(values.length * 8);
  values.forEach((v, i) => new DataView(out.buffer).setBigInt64(i * 8, v, true));
  return out;
}

/** A safetensors file from a raw header and data, as another writer would lay it out. */
function rawFile(header: Record<string, { dtype: string; shape: number[]; bytes: Uint8Array }>): Buffer {
  const entries: Record<string, unknown> = {};
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const [name, { dtype, shape, bytes }] of Object.entries(header)) {
    entries[name] = { dtype, shape, data_offsets: [offset, offset + bytes.length] };
    parts.push(bytes);
    offset += bytes.length;
  }
  const json = Buffer.from(JSON.stringify(entries));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, ...parts]);
}

describe('checkpoints in PyTorch names', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kg-ckpt-names-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test("names: 'pytorch' writes PyTorch's batch-norm names, num_batches_tracked as I64, the same values", () => {
    const model = trained(1);
    const file = path.join(dir, 'pt.safetensors');
    saveCheckpoint(file, model, { epoch: '2' }, { names: 'pytorch' });
    const raw = fs.readFileSync(file);
    const header = JSON.parse(raw.subarray(8, 8 + Number(raw.readBigUInt64LE(0))).toString());
    const keys = Object.keys(header).filter((k) => k !== '__metadata__');
    expect(keys.slice(0, 7)).toEqual(['conv1.weight', 'conv1.bias', 'bn1.weight', 'bn1.bias', 'bn1.running_mean', 'bn1.running_var', 'bn1.num_batches_tracked']);
    expect(keys.filter((k) => /gamma|beta|running[MV]|numBatches/.test(k))).toEqual([]);
    expect(header['bn2.num_batches_tracked']).toMatchObject({ dtype: 'I64', shape: [] });
    const { tensors } = readSafetensors(file);
    expect(Array.from(tensors['bn2.num_batches_tracked'].data)).toEqual([3]);
    const own = model.stateDict();
    expect(Array.from(tensors['bn3.running_var'].data)).toEqual(Array.from(own['bn3.runningVar'].toArray()));
    expect(Array.from(tensors['bn1.weight'].data)).toEqual(Array.from(own['bn1.gamma'].toArray()));
  });

  test.each(['kernelgrad', 'pytorch'] as const)('round trip in %s names: bitwise-equal inference output and the batch counts', (names) => {
    const model = trained(2);
    const file = path.join(dir, `rt-${names}.safetensors`);
    saveCheckpoint(file, model, {}, { names });
    const fresh = bnCnn({ seed: 50, device: 'cpu' });
    expect(evalOutput(fresh).equals(evalOutput(model))).toBe(false);
    loadCheckpointInto(file, fresh);
    expect(evalOutput(fresh).equals(evalOutput(model))).toBe(true);
    expect((fresh.stateDict()['bn3.numBatchesTracked']).item()).toBe(3);
  });

  test("a file laid out as PyTorch's safetensors writes it (I64 counter, F16 weights) loads into a layer", () => {
    const half = (v: number[]) => new Uint8Array(Uint16Array.from(v).buffer); // 0x3c00 = 1, 0xc000 = -2, 0x3800 = 0.5
    const floats = (v: number[]) => new Uint8Array(Float32Array.from(v).buffer);
    const file = path.join(dir, 'torch-like.safetensors');
    fs.writeFileSync(file, rawFile({
      weight: { dtype: 'F16', shape: [3], bytes: half([0x3c00, 0xc000, 0x3800]) },
      bias: { dtype: 'F32', shape: [3], bytes: floats([0.5, 0, -1]) },
      running_mean: { dtype: 'F32', shape: [3], bytes: floats([1, 2, 3]) },
      running_var: { dtype: 'F32', shape: [3], bytes: floats([4, 5, 6]) },
      num_batches_tracked: { dtype: 'I64', shape: [], bytes: int64Bytes([12345n]) },
    }));
    const bn = new kg.nn.BatchNorm(3, { convention: 'pytorch' });
    loadCheckpointInto(file, bn);
    expect(Array.from(bn.gamma.toArray())).toEqual([1, -2, 0.5]);
    expect(Array.from(bn.runningVar.toArray())).toEqual([4, 5, 6]);
    expect(bn.numBatchesTracked.item()).toBe(12345);
  });

  test('a file written before the batch counter was kept loads with a count of 0', () => {
    const model = trained(3);
    const state = Object.fromEntries(Object.entries(model.stateDict()).filter(([k]) => !k.endsWith('numBatchesTracked')));
    const file = path.join(dir, 'old.safetensors');
    fs.writeFileSync(file, encodeSafetensors(state));
    const fresh = bnCnn({ seed: 9, device: 'cpu' });
    loadCheckpointInto(file, fresh);
    expect(evalOutput(fresh).equals(evalOutput(model))).toBe(true);
    expect(fresh.stateDict()['bn1.numBatchesTracked'].item()).toBe(0);
  });

  test('refused by name: a count float32 cannot hold, an unreadable dtype, a tensor in both namings', () => {
    const bn = new kg.nn.BatchNorm(2);
    const floats = (v: number[]) => new Uint8Array(Float32Array.from(v).buffer);
    const base = {
      gamma: { dtype: 'F32', shape: [2], bytes: floats([1, 1]) },
      beta: { dtype: 'F32', shape: [2], bytes: floats([0, 0]) },
      runningMean: { dtype: 'F32', shape: [2], bytes: floats([0, 0]) },
      runningVar: { dtype: 'F32', shape: [2], bytes: floats([1, 1]) },
    };
    const write = (name: string, h: Parameters<typeof rawFile>[0]) => {
      const file = path.join(dir, name);
      fs.writeFileSync(file, rawFile(h));
      return file;
    };
    const huge = write('huge.safetensors', { ...base, num_batches_tracked: { dtype: 'I64', shape: [], bytes: int64Bytes([2n ** 40n]) } });
    expect(() => loadCheckpointInto(huge, bn)).toThrow(/tensor 'num_batches_tracked' \(I64\) holds 1099511627776 at index 0, which float32 cannot hold exactly/);
    const fp8 = write('fp8.safetensors', { ...base, numBatchesTracked: { dtype: 'F8_E4M3', shape: [], bytes: new Uint8Array(1) } });
    expect(() => loadCheckpointInto(fp8, bn)).toThrow(/tensor 'numBatchesTracked' has dtype "F8_E4M3", which cannot be read as float32/);
    const both = write('both.safetensors', { ...base, weight: { dtype: 'F32', shape: [2], bytes: floats([1, 1]) } });
    expect(() => loadCheckpointInto(both, bn)).toThrow(/'gamma' is given twice, under this library's name and under PyTorch's/);
  });

  test('names must be one of the two', () => {
    expect(() => saveCheckpoint(path.join(dir, 'x.safetensors'), new kg.nn.BatchNorm(2), {}, { names: 'keras' } as never))
      .toThrow(/^kg\.io\.saveCheckpoint: names must be 'kernelgrad' or 'pytorch', got "keras"/);
    expect(() => saveCheckpoint(path.join(dir, 'x.safetensors'), new kg.nn.BatchNorm(2), {}, { name: 'pytorch' } as never))
      .toThrow(/unknown option 'name'/);
  });
});

describe('safetensors dtypes', () => {
  test('F64, F16, BF16, integers and BOOL decode to the float32 values they hold; I64 is written for integer tensors', () => {
    const f64 = new Uint8Array(Float64Array.from([0.1, -3]).buffer);
    const bf16 = new Uint8Array(Uint16Array.from([0x3f80, 0xc040]).buffer); // 1, -3
    const f16 = new Uint8Array(Uint16Array.from([0x0001, 0x7c00]).buffer); // smallest subnormal, +inf
    const i32 = new Uint8Array(Int32Array.from([-7, 16777216]).buffer);
    const buf = rawFile({
      a: { dtype: 'F64', shape: [2], bytes: f64 },
      b: { dtype: 'BF16', shape: [2], bytes: bf16 },
      c: { dtype: 'F16', shape: [2], bytes: f16 },
      d: { dtype: 'I32', shape: [2], bytes: i32 },
      e: { dtype: 'BOOL', shape: [3], bytes: Uint8Array.from([0, 1, 2]) },
      f: { dtype: 'U8', shape: [1], bytes: Uint8Array.from([255]) },
    });
    const { tensors } = decodeSafetensors(buf);
    expect(Array.from(tensors.a.data)).toEqual([Math.fround(0.1), -3]);
    expect(Array.from(tensors.b.data)).toEqual([1, -3]);
    expect(Array.from(tensors.c.data)).toEqual([2 ** -24, Infinity]);
    expect(Array.from(tensors.d.data)).toEqual([-7, 16777216]);
    expect(Array.from(tensors.e.data)).toEqual([0, 1, 1]);
    expect(tensors.f.dtype).toBe('U8');

    const counts: TensorData = { shape: [2], data: Float32Array.from([3, -4]), dtype: 'I64' };
    const back = decodeSafetensors(encodeSafetensors({ counts }));
    expect(back.tensors.counts).toMatchObject({ dtype: 'I64', shape: [2] });
    expect(Array.from(back.tensors.counts.data)).toEqual([3, -4]);
    expect(() => encodeSafetensors({ counts: { ...counts, data: Float32Array.from([0.5, 1]) } })).toThrow(/'counts' is written as I64, but value 0 is 0\.5/);
    expect(() => decodeSafetensors(rawFile({ big: { dtype: 'F64', shape: [1], bytes: new Uint8Array(Float64Array.from([1e300]).buffer) } })))
      .toThrow(/tensor 'big' \(F64\) holds 1e\+300 at index 0, beyond the range of float32/);
  });
});
