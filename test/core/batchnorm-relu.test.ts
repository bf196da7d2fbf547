// Batch norm fused with the ReLU after it: one op, equal to the pair it replaces (values and
// gradients), float64-checked and gradchecked, and what Sequential runs for BatchNorm then ReLU.
import * as kg from '../../lib';
import { Random } from '../../lib/random';
import { native } from '../../lib/native';
import { checkOp } from '../helpers/gradcheck';
import * as ref from '../helpers/reference';

const F = kg.nn.functional;
const SHAPES = [[7, 3], [5, 4, 3, 3], [2, 3, 1, 13], [33, 65]];

function dims(shape: number[]): [number, number, number] {
  return [shape[0], shape[1], ref.numel(shape) / (shape[0] * shape[1])];
}

/** Forward and gradients of `fn` on fixed inputs, as float32 arrays. */
function run(shape: number[], fn: (x: kg.Tensor, g: kg.Tensor, b: kg.Tensor) => kg.Tensor, seed = 5) {
  const rng = new Random(seed);
  const c = shape[1];
  const x = kg.tensor(rng.fillNormal(new Float32Array(ref.numel(shape)), 0.3, 1.5), shape).attachGrad();
  const g = kg.tensor(rng.fillNormal(new Float32Array(c), 1, 0.4)).attachGrad();
  const b = kg.tensor(rng.fillNormal(new Float32Array(c), 0, 0.5)).attachGrad();
  const y = kg.autograd.record(() => fn(x, g, b));
  y.backward(kg.tensor(rng.fillNormal(new Float32Array(ref.numel(shape))), shape));
  return [y, x.grad!, g.grad!, b.grad!].map((t) => t.toArray());
}

function bits(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

describe('batchNormRelu', () => {
  test.each(SHAPES.map((s) => [s]))('training: equal to relu(batchNorm) bit for bit, values and gradients, %j', (shape) => {
    const fused = run(shape, (x, g, b) => F.batchNormRelu(x, g, b, { training: true }));
    const pair = run(shape, (x, g, b) => F.relu(F.batchNorm(x, g, b, { training: true })));
    fused.forEach((v, i) => expect(bits(v).equals(bits(pair[i]))).toBe(true));
    expect(fused[0].some((v) => v === 0) && fused[0].some((v) => v > 0)).toBe(true); // both sides of the kink
  });

  test.each(SHAPES.map((s) => [s]))('inference: equal to relu(batchNorm) bit for bit, values and gradients, %j', (shape) => {
    const c = shape[1];
    const rng = new Random(9);
    const runningMean = kg.tensor(rng.fillNormal(new Float32Array(c), 0.2, 0.3));
    const runningVar = kg.tensor(Float32Array.from({ length: c }, () => 0.5 + rng.uniform()));
    const opts = { training: false, runningMean, runningVar };
    const fused = run(shape, (x, g, b) => F.batchNormRelu(x, g, b, opts));
    const pair = run(shape, (x, g, b) => F.relu(F.batchNorm(x, g, b, opts)));
    fused.forEach((v, i) => expect(bits(v).equals(bits(pair[i]))).toBe(true));
  });

  test.each([[[6, 3]], [[4, 2, 3, 5]]])('float64 reference and numerical gradients, %j', (shape) => {
    const [n, c, l] = dims(shape);
    checkOp({
      inputs: [{ shape }, { shape: [c], values: Float32Array.from({ length: c }, (_, i) => 0.8 + 0.3 * i) }, { shape: [c] }],
      ours: ([x, g, b]) => F.batchNormRelu(x, g, b, { training: true }),
      ref: ([x, g, b]) => ref.batchNormTrain(x, g, b, n, c, l, 1e-5).y.map((v) => Math.max(v, 0)),
    });
  });

  test('running statistics move as with batchNorm, and the module runs fused in Sequential', () => {
    const x = kg.randn([8, 3, 2, 2], { seed: 4, mean: 1 });
    const a = { runningMean: kg.zeros([3]), runningVar: kg.ones([3]) };
    const b = { runningMean: kg.zeros([3]), runningVar: kg.ones([3]) };
    F.batchNormRelu(x, null, null, { training: true, ...a, runningVariance: 'unbiased' });
    F.batchNorm(x, null, null, { training: true, ...b, runningVariance: 'unbiased' });
    expect(a.runningVar.toArray()).toEqual(b.runningVar.toArray());

    const net = new kg.nn.Sequential(new kg.nn.BatchNorm(3), new kg.nn.ReLU());
    const input = kg.randn([8, 3], { seed: 6 }).attachGrad();
    const y = kg.autograd.record(() => net.forward(input));
    expect(y.node?.op).toBe('batchNormRelu');
    const bn = new kg.nn.BatchNorm(3);
    const expected = F.relu(bn.forward(input));
    expect(y.toArray()).toEqual(expected.toArray());
  });

  test('the model uses it: every BN of bnCnn is followed by a ReLU and runs fused', () => {
    const model = kg.models.bnCnn({ seed: 1, device: 'cpu' });
    const x = kg.rand([4, 1, 28, 28], { seed: 2 });
    // Count the fused nodes on the path from the logits back to the input.
    const seen = new Set<string>();
    let frontier = [kg.autograd.record(() => model.forward(x.attachGrad()))];
    while (frontier.length > 0) {
      const next: kg.Tensor[] = [];
      for (const t of frontier) {
        if (!t.node) continue;
        seen.add(t.node.op);
        next.push(...t.node.inputs);
      }
      frontier = next;
    }
    expect(seen.has('batchNormRelu')).toBe(true);
    expect(seen.has('batchNorm')).toBe(false);
    expect(seen.has('relu')).toBe(false);
  });

  test('the raw bindings refuse a y of the wrong size', () => {
    const empty = (k: number) => kg.zeros([k]).storage;
    expect(() => native.batchNormReluBackwardTrain([2, 3, 1], empty(6), empty(5), empty(6), empty(3), empty(3), empty(3), empty(3), empty(6), empty(3), empty(3)))
      .toThrow(/^kernelgrad\.batchNormReluBackwardTrain: y has 5 elements, the shapes need 6/);
    expect(() => native.batchNormReluBackwardInfer([2, 3, 1], empty(6), empty(6), empty(6), empty(3), empty(3), empty(3), 1e-5, empty(6), empty(3), empty(2)))
      .toThrow(/^kernelgrad\.batchNormReluBackwardInfer: dbeta has 2 elements/);
  });
});
