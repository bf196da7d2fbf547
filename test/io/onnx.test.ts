// kg.io.exportOnnx: the file is loaded back into onnxruntime-node, whose outputs must match ours.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as kg from '../../lib/index';
import { bnCnn } from '../../lib/models/bn-cnn';
import { Message } from '../../lib/io/protobuf';

// onnxruntime-node runs in a child process (test/helpers/ort-run.js says why).
const ORT_RUN = path.join(__dirname, '..', 'helpers', 'ort-run.js');
let ortMissing: string | null = null;
try {
  require.resolve('onnxruntime-node');
} catch (e) {
  // A devDependency: an install without it skips the round trips, saying so.
  ortMissing = (e as Error).message.split('\n')[0];
  console.warn(`onnxruntime-node is not installed, the ONNX round-trip tests are skipped: ${ortMissing}`);
}
const withOrt = ortMissing === null ? test : test.skip;

const rng = new kg.Random(7);
const uniform = (n: number, lo: number, hi: number) => Float32Array.from({ length: n }, () => lo + (hi - lo) * rng.uniform());

/** Random running statistics, so that inference-mode batch norm is not the identity. */
function randomizeRunning(model: kg.nn.Module): void {
  for (const [name, t] of model.namedBuffers()) {
    const isVar = name.endsWith('runningVar');
    t.copy_(kg.tensor(uniform(t.numel, isVar ? 0.2 : -0.5, isVar ? 3 : 0.5), t.shape, { device: 'cpu' }));
  }
}

function ours(model: kg.nn.Module, data: Float32Array, shape: number[]): Float32Array {
  const x = kg.tensor(data, shape, { device: 'cpu' });
  const y = model.forward(x);
  const out = y.toArray();
  x.dispose();
  y.dispose();
  return out;
}

function theirs(file: string, data: Float32Array, shape: number[]): { data: Float32Array; dims: number[] } {
  const input = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const out = execFileSync(process.execPath, [ORT_RUN, file, shape.join(',')], { input, maxBuffer: 1 << 28 });
  const nl = out.indexOf(10);
  const floats = out.subarray(nl + 1);
  return { dims: JSON.parse(out.subarray(0, nl).toString()), data: new Float32Array(floats.buffer.slice(floats.byteOffset, floats.byteOffset + floats.length)) };
}

/** max |a - b| / max |b|: relative to the outputs' scale, so near-zero logits do not blow it up. */
function relErr(a: Float32Array, b: Float32Array): number {
  let err = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    err = Math.max(err, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return err / scale;
}

describe('kg.io.exportOnnx', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kg-onnx-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('the protobuf writer: varints, negative int64, strings, packed ints, floats', () => {
    expect([...new Message().int(1, 150).toBytes()]).toEqual([0x08, 0x96, 0x01]);
    expect([...new Message().int(2, -1).toBytes()]).toEqual([0x10, ...Array(9).fill(0xff), 0x01]);
    expect([...new Message().string(2, 'testing').toBytes()]).toEqual([0x12, 0x07, 0x74, 0x65, 0x73, 0x74, 0x69, 0x6e, 0x67]);
    expect([...new Message().packedInts(4, [3, 270, 86942]).toBytes()]).toEqual([0x22, 0x06, 0x03, 0x8e, 0x02, 0x9e, 0xa7, 0x05]);
    expect([...new Message().float(1, 1).toBytes()]).toEqual([0x0d, 0x00, 0x00, 0x80, 0x3f]);
    const inner = new Message().int(1, 150);
    expect([...new Message().message(3, inner).toBytes()]).toEqual([0x1a, 0x03, 0x08, 0x96, 0x01]);
  });

  withOrt("the tutorial's network: onnxruntime's logits match ours within 1e-5 (batch 7 and 1)", () => {
    const model = bnCnn({ device: 'cpu', seed: 3, weightScale: 0.2 });
    randomizeRunning(model);
    const file = path.join(dir, 'bn-cnn.onnx');
    const bytes = kg.io.exportOnnx(model, file, { inputShape: [1, 28, 28] });
    expect(fs.statSync(file).size).toBe(bytes);
    expect(model.training).toBe(true); // exporting does not change the mode
    model.eval();
    for (const n of [7, 1]) {
      const x = uniform(n * 784, 0, 1);
      const want = ours(model, x, [n, 1, 28, 28]);
      const got = theirs(file, x, [n, 1, 28, 28]);
      expect(got.dims).toEqual([n, 10]);
      expect(relErr(got.data, want)).toBeLessThan(1e-5);
    }
    model.dispose();
  });

  withOrt('odd shapes: stride, padding, 3x3 pooling on odd sizes, no biases, BN eps, nested Sequential', () => {
    const { Sequential, Conv2d, BatchNorm, ReLU, AvgPool2d, Flatten, Linear } = kg.nn;
    const model = new Sequential({
      features: new Sequential(
        new Conv2d(3, 5, [3, 2], { stride: [2, 1], padding: [1, 0], seed: 1, device: 'cpu' }),
        new BatchNorm(5, { eps: 1e-3, device: 'cpu' }),
        new ReLU(),
        new AvgPool2d(3, 2),
      ),
      flatten: new Flatten(),
      fc: new Linear(5 * 3 * 3, 7, { bias: false, seed: 2, device: 'cpu' }),
      bn: new BatchNorm(7, { eps: 0.1, device: 'cpu' }),
      head: new Linear(7, 3, { seed: 3, device: 'cpu' }),
    });
    randomizeRunning(model);
    model.eval();
    const file = path.join(dir, 'odd.onnx');
    kg.io.exportOnnx(model, file, { inputShape: [3, 13, 9] });
    const x = uniform(5 * 3 * 13 * 9, -2, 2);
    const want = ours(model, x, [5, 3, 13, 9]);
    const got = theirs(file, x, [5, 3, 13, 9]);
    expect(got.dims).toEqual([5, 3]);
    expect(relErr(got.data, want)).toBeLessThan(1e-5);
    model.dispose();
  });

  withOrt('grouped and depthwise convolutions export their group attribute', () => {
    const { Sequential, Conv2d, ReLU, Flatten } = kg.nn;
    const model = new Sequential(
      new Conv2d(4, 6, 3, { groups: 2, padding: 1, seed: 1, device: 'cpu' }),
      new ReLU(),
      new Conv2d(6, 6, [3, 2], { groups: 6, stride: [2, 1], seed: 2, device: 'cpu' }),
      new Conv2d(6, 3, 1, { groups: 3, bias: false, seed: 3, device: 'cpu' }),
      new Flatten(),
    );
    const file = path.join(dir, 'grouped.onnx');
    kg.io.exportOnnx(model, file, { inputShape: [4, 9, 7] });
    const x = uniform(3 * 4 * 9 * 7, -2, 2);
    const want = ours(model, x, [3, 4, 9, 7]);
    const got = theirs(file, x, [3, 4, 9, 7]);
    expect(got.dims).toEqual([3, 3 * 4 * 6]);
    expect(relErr(got.data, want)).toBeLessThan(1e-5);
    model.dispose();
  });

  test('bad inputs: clear errors naming the function, the argument and the layer', () => {
    const model = bnCnn({ device: 'cpu' });
    const file = path.join(dir, 'bad.onnx');
    const fn = kg.io.exportOnnx as (...a: unknown[]) => number;
    expect(() => fn({}, file, { inputShape: [1, 28, 28] })).toThrow(/kg\.io\.exportOnnx: model must be a kg\.nn\.Module, got an object/);
    expect(() => fn(model, file)).toThrow(/kg\.io\.exportOnnx: options \{ inputShape \} are required/);
    expect(() => fn(model, 42, { inputShape: [1, 28, 28] })).toThrow(/file must be a non-empty path string, got 42/);
    expect(() => fn(model, file, { inputShape: [1, 0, 28] })).toThrow(/inputShape must be a non-empty array of positive integers.*\[1, 0, 28\]/);
    expect(() => fn(model, file, { inputShape: [1, 28, 28], batch: 3 })).toThrow(/unknown option 'batch'/);
    expect(() => fn(model, file, { inputShape: [3, 28, 28] })).toThrow(/layer 'conv1' \(Conv2d\(1, 20.*takes \(batch, 1, h, w\), but gets \(batch, 3, 28, 28\)/);
    expect(() => fn(model, file, { inputShape: [1, 30, 30] })).toThrow(/layer 'fc1' \(Linear\(800, 128\)\) takes \(batch, 800\), but gets \(batch, 1250\)/);
    expect(() => fn(model, file, { inputShape: [1, 4, 4] })).toThrow(/layer 'conv2'.*5x5 kernel does not fit the 1x1 input/);
    class Gelu extends kg.nn.Module {
      forward(x: kg.Tensor): kg.Tensor {
        return x;
      }
    }
    const custom = new kg.nn.Sequential(new kg.nn.Linear(4, 4, { device: 'cpu' }), new Gelu());
    expect(() => fn(custom, file, { inputShape: [4] })).toThrow(/cannot export layer '1' \(Gelu\(\)\): a Gelu has no ONNX translation/);
    expect(fs.existsSync(file)).toBe(false);
    model.dispose();
    custom.dispose();
  });
});
