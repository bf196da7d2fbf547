// Batch norm, ReLU and a non-overlapping average pooling fused into one op: equal to the chain it
// replaces bit for bit (values, gradients, running statistics), float64-checked and gradchecked,
// and what Sequential runs for BatchNorm, ReLU, AvgPool2d(k) in training.
import * as kg from '../../lib';
import { Random } from '../../lib/random';
import { native } from '../../lib/native';
import { checkOp } from '../helpers/gradcheck';
import * as ref from '../helpers/reference';

const F = kg.nn.functional;
// Odd sizes leave a last row or column that no window covers. The 2x2 windows also cover rows of
// more than 8 and 16 windows (the vector kernels' steps) and planes of one window.
const CASES: Array<[number[], [number, number]]> = [
  [[5, 3, 9, 9], [2, 2]], [[3, 2, 26, 26], [2, 2]], [[2, 3, 27, 41], [2, 2]], [[2, 2, 13, 70], [2, 2]], [[4, 2, 3, 2], [2, 2]],
  [[2, 4, 7, 10], [3, 3]], [[3, 2, 6, 8], [2, 4]], [[4, 3, 3, 5], [1, 1]],
];

function bits(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** Forward, gradients and running statistics of `fn` on fixed inputs, as float32 arrays. */
function run(shape: number[], window: [number, number], fn: (x: kg.Tensor, g: kg.Tensor, b: kg.Tensor, o: kg.nn.functional.BatchNormOptions) => kg.Tensor, xGrad = true) {
  const rng = new Random(11);
  const c = shape[1];
  const x = kg.tensor(rng.fillNormal(new Float32Array(ref.numel(shape)), 0.3, 1.5), shape);
  if (xGrad) x.attachGrad();
  const g = kg.tensor(rng.fillNormal(new Float32Array(c), 1, 0.4)).attachGrad();
  const b = kg.tensor(rng.fillNormal(new Float32Array(c), 0, 0.5)).attachGrad();
  const runningMean = kg.zeros([c]);
  const runningVar = kg.ones([c]);
  const y = kg.autograd.record(() => fn(x, g, b, { training: true, runningMean, runningVar, runningVariance: 'unbiased' }));
  const pooled = [shape[0], c, Math.floor(shape[2] / window[0]), Math.floor(shape[3] / window[1])];
  y.backward(kg.tensor(rng.fillNormal(new Float32Array(ref.numel(pooled))), pooled));
  return [y, ...(xGrad ? [x.grad!] : []), g.grad!, b.grad!, runningMean, runningVar].map((t) => t.toArray());
}

describe('batchNormReluPool', () => {
  test.each(CASES)('training: the chain bit for bit, values, gradients and running statistics, %j window %j', (shape, window) => {
    const fused = run(shape, window, (x, g, b, o) => F.batchNormReluPool(x, g, b, o, window));
    const chain = run(shape, window, (x, g, b, o) => F.avgPool2d(F.relu(F.batchNorm(x, g, b, o)), { kernelSize: window }));
    fused.forEach((v, i) => expect(bits(v).equals(bits(chain[i]))).toBe(true));
    // The ReLU's mask matters here: without it the input's gradient differs.
    const unmasked = run(shape, window, (x, g, b, o) => F.avgPool2d(F.batchNorm(x, g, b, o), { kernelSize: window }));
    expect(bits(unmasked[1]).equals(bits(fused[1]))).toBe(false);
  });

  test.each(CASES.slice(0, 3))('an input without a gradient: gamma and beta still the chain bit for bit, %j', (shape, window) => {
    const fused = run(shape, window, (x, g, b, o) => F.batchNormReluPool(x, g, b, o, window), false);
    const chain = run(shape, window, (x, g, b, o) => F.avgPool2d(F.relu(F.batchNorm(x, g, b, o)), { kernelSize: window }), false);
    expect(fused).toHaveLength(5);
    fused.forEach((v, i) => expect(bits(v).equals(bits(chain[i]))).toBe(true));
  });

  test('float64 reference and numerical gradients', () => {
    const [n, c, h, w] = [3, 2, 5, 4];
    checkOp({
      inputs: [{ shape: [n, c, h, w] }, { shape: [c], values: Float32Array.of(0.9, 1.3) }, { shape: [c] }],
      ours: ([x, g, b]) => F.batchNormReluPool(x, g, b, { training: true }, [2, 2]),
      ref: ([x, g, b]) => {
        const y = ref.batchNormTrain(x, g, b, n, c, h * w, 1e-5).y.map((v) => Math.max(v, 0));
        const out: number[] = [];
        for (let p = 0; p < n * c; p++) {
          for (let i = 0; i < 2; i++) {
            for (let j = 0; j < 2; j++) {
              const at = (r: number, q: number) => y[p * h * w + (2 * i + r) * w + 2 * j + q];
              out.push((at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1)) / 4);
            }
          }
        }
        return Float64Array.from(out);
      },
    });
  });

  test('inference, and shapes the fused kernels do not take, run the chain', () => {
    const x = kg.randn([2, 3, 4, 4], { seed: 3 });
    const stats = { runningMean: kg.full([3], 0.1), runningVar: kg.full([3], 2) };
    const fused = F.batchNormReluPool(x, null, null, { training: false, ...stats }, [2, 2]);
    const chain = F.avgPool2d(F.relu(F.batchNorm(x, null, null, { training: false, ...stats })), { kernelSize: 2 });
    expect(bits(fused.toArray()).equals(bits(chain.toArray()))).toBe(true);
    // A window larger than the input: avgPool2d's own error.
    expect(() => F.batchNormReluPool(x, null, null, { training: true }, [5, 5])).toThrow(/avgPool2d: window 5x5 is larger than the input/);
  });

  test('Sequential runs BatchNorm, ReLU, AvgPool2d(k) fused in training, and the chain otherwise', () => {
    const opsOf = (net: kg.nn.Module, x: kg.Tensor) => {
      const seen: string[] = [];
      let t: kg.Tensor | undefined = kg.autograd.record(() => net.forward(x.attachGrad()));
      while (t?.node) {
        seen.push(t.node.op);
        t = t.node.inputs[0];
      }
      return seen;
    };
    const x = kg.randn([4, 3, 6, 6], { seed: 8 });
    const tiled = new kg.nn.Sequential(new kg.nn.BatchNorm(3), new kg.nn.ReLU(), new kg.nn.AvgPool2d(2));
    expect(opsOf(tiled, x)).toEqual(['batchNormReluPool']);
    const overlapping = new kg.nn.Sequential(new kg.nn.BatchNorm(3), new kg.nn.ReLU(), new kg.nn.AvgPool2d(3, 2));
    expect(opsOf(overlapping, x)).toEqual(['avgPool2d', 'batchNormRelu']);
    tiled.eval();
    expect(opsOf(tiled, x)).toEqual(['avgPool2d', 'batchNormRelu']);
  });

  test('the raw bindings refuse overlapping windows, one-pixel planes and a y of the wrong size', () => {
    const empty = (k: number) => kg.zeros([k]).storage;
    const stats = () => [empty(3), empty(3), empty(3), empty(3)] as const;
    const noUpdate = [null, null, 0.9, false, null, false, null, 0] as const;
    expect(() => native.batchNormReluPoolForwardTrain([2, 3, 4, 4, 2, 2, 1, 1], empty(96), empty(3), empty(3), 1e-5, empty(54), ...stats(), ...noUpdate))
      .toThrow(/^kernelgrad\.batchNormReluPoolForwardTrain: the windows must not overlap: stride 1x1 must equal the window 2x2/);
    expect(() => native.batchNormReluPoolForwardTrain([2, 3, 1, 1, 1, 1, 1, 1], empty(6), empty(3), empty(3), 1e-5, empty(6), ...stats(), ...noUpdate))
      .toThrow(/image planes must hold at least 2 pixels/);
    expect(() => native.batchNormReluPoolForwardTrain([2, 3, 4, 4, 2, 2, 2, 2], empty(96), empty(3), empty(3), 1e-5, empty(23), ...stats(), ...noUpdate))
      .toThrow(/y has 23 elements, the shapes need 24/);
    expect(() => native.batchNormReluPoolBackwardTrain([2, 3, 4, 4, 2, 2, 2, 2], empty(96), empty(24), empty(3), empty(2), ...stats().slice(0, 3) as [never, never, never], null, empty(3), empty(3)))
      .toThrow(/beta has 2 elements/);
  });
});
