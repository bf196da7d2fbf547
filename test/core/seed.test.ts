// The tutorial's two sanity checks of pure_batch_norm, reproduced through the public API.
import * as kg from '../../lib';
import { closeTo } from '../helpers/gradcheck';

const { pureBatchNorm } = kg.nn.functional;

test('the 3x2 matrix A: each column is normalized', () => {
  const A = kg.tensor([1, 7, 5, 4, 6, 10], [3, 2]);
  const out = pureBatchNorm(A, kg.tensor([1, 1]), kg.tensor([0, 0]));
  const expected = [-1.38872862, 0, 0.46290955, -1.22474384, 0.9258191, 1.22474384];
  expect(closeTo(out.toArray(), expected, 0, 1e-5)).toBeNull();
});

test('the 2x2x2x2 tensor B: each channel is normalized over batch, height and width', () => {
  const B = kg.tensor([1, 6, 5, 7, 4, 3, 2, 5, 6, 3, 2, 4, 5, 3, 2, 5], [2, 2, 2, 2]);
  const out = pureBatchNorm(B, kg.tensor([1, 1]), kg.tensor([0, 0]));
  const expected = [
    -1.63784397, 0.88191599, 0.37796399, 1.38586795, 0.30779248, -0.51298743, -1.33376741, 1.12857234,
    0.88191599, -0.62993997, -1.13389194, -0.12598799, 1.12857234, -0.51298743, -1.33376741, 1.12857234,
  ];
  expect(closeTo(out.toArray(), expected, 0, 1e-5)).toBeNull();
});
