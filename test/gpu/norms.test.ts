// GroupNorm, LayerNorm and BatchRenorm on the GPU (or under the emulated CUDA backend): the same
// float64 references and finite-difference gradients as on the CPU, the batch-renorm running
// statistics, exactness at a large mean, and folding a ResNet on the device.
import * as kg from '../../lib';
import { checkOp, closeTo, maxAbs } from '../helpers/gradcheck';
import { BATCH_RENORM_SHAPES, GROUP_NORM_SHAPES, LAYER_NORM_SHAPES, batchRenormCase, groupNormCase, layerNormCase } from '../helpers/norm-reference';
import { describeGpu, expectSameOnDevices, input, normal } from './helpers';

const F = kg.nn.functional;
const onGpu = <T extends { device?: kg.Device }>(c: T): T => ({ ...c, device: 'cuda' });

describeGpu('GPU: groupNorm, layerNorm, batchRenorm against float64 references', () => {
  test.each(GROUP_NORM_SHAPES)('groupNorm x %j, %d groups', (shape, groups) => checkOp(onGpu(groupNormCase(shape, groups))));
  test.each(LAYER_NORM_SHAPES)('layerNorm x %j over %j', (shape, normalized) => checkOp(onGpu(layerNormCase(shape, normalized))));
  test.each(BATCH_RENORM_SHAPES.map((s) => [s]))('batchRenorm x %j, r and d clipped in some channels', (shape) => checkOp(batchRenormCase(shape, 1, 'cuda')));

  test('the same values as the CPU kernels, larger odd shapes', () => {
    expectSameOnDevices([input([3, 10, 13, 7], 1), input([10], 2), input([10], 3)], ([x, g, b]) => F.groupNorm(x, 5, g, b));
    expectSameOnDevices([input([37, 65], 4), input([65], 5), input([65], 6)], ([x, g, b]) => F.layerNorm(x, 65, g, b));
  });

  test('batch renorm updates the running statistics on the device as on the CPU', () => {
    const x = normal(8 * 3 * 5, 7, 1, 2);
    const stats = (device: kg.Device) => {
      const runningMean = kg.tensor([0.5, -0.5, 2], [3], { device });
      const runningVar = kg.tensor([1, 2, 0.5], [3], { device });
      F.batchRenorm(kg.tensor(x, [8, 3, 5, 1], { device }), kg.ones([3], { device }), kg.zeros([3], { device }), { training: true, runningMean, runningVar, momentum: 0.7 });
      return [...runningMean.toArray(), ...runningVar.toArray()];
    };
    expect(closeTo(stats('cuda'), stats('cpu'), 1e-6, 1e-6)).toBeNull();
  });

  test('layerNorm at mean 1e4 and spread 0.1: within 1e-5 of the spread', () => {
    const x = normal(4 * 300, 9, 1e4, 0.1);
    const y = F.layerNorm(kg.tensor(x, [4, 300], { device: 'cuda' }), 300, kg.ones([300], { device: 'cuda' }), kg.zeros([300], { device: 'cuda' }), { eps: 0 }).toArray();
    const want = new Float64Array(1200);
    for (let r = 0; r < 4; r++) {
      const row = Float64Array.from(x.subarray(r * 300, (r + 1) * 300));
      const mean = row.reduce((a, b) => a + b, 0) / 300;
      const sd = Math.sqrt(row.reduce((a, b) => a + (b - mean) ** 2, 0) / 300);
      row.forEach((v, i) => (want[r * 300 + i] = (v - mean) / sd));
    }
    expect(closeTo(y, want, 0, 1e-5)).toBeNull();
  });

  test('foldBatchNorm on a ResNet on the device: eval predictions agree to 1e-5', () => {
    const model = kg.models.resnet({ depth: 8, width: 4, device: 'cuda', seed: 3 });
    model.forward(kg.tensor(normal(4 * 3 * 6 * 6, 11, 0.5, 2), [4, 3, 6, 6], { device: 'cuda' })); // moves the running statistics
    const folded = kg.nn.foldBatchNorm(model);
    const x = kg.tensor(normal(2 * 3 * 7 * 5, 12), [2, 3, 7, 5], { device: 'cuda' });
    const want = model.eval().forward(x).toArray();
    expect(closeTo(folded.forward(x).toArray(), want, 1e-5, 1e-5 * maxAbs(want))).toBeNull();
  });
});
