// Matrix products on the GEMM kernel: matmul and the dense layer's linear.
import { recordOp } from '../autograd/tape';
import { native } from '../native';
import { formatShape } from '../shape';
import { Tensor } from '../tensor';
import { checkNdim, checkSameDevice, checkTensor } from './check';

/** op(a) @ op(b), where op transposes when asked; a and b are 2-D. */
function gemm(a: Tensor, b: Tensor, transA: boolean, transB: boolean): Tensor {
  const m = transA ? a.shape[1] : a.shape[0];
  const k = transA ? a.shape[0] : a.shape[1];
  const n = transB ? b.shape[0] : b.shape[1];
  const out = Tensor.empty([m, n], a.device);
  native.gemm(transA, transB, m, n, k, 1, a.storage, b.storage, 0, out.storage);
  return out;
}

/** (m, k) @ (k, n) -> (m, n). */
export function matmul(a: Tensor, b: Tensor): Tensor {
  checkTensor(a, 'kg.matmul', 'a');
  checkTensor(b, 'kg.matmul', 'b');
  checkNdim(a, [2], 'kg.matmul', 'a');
  checkNdim(b, [2], 'kg.matmul', 'b');
  checkSameDevice('kg.matmul', { a, b });
  if (a.shape[1] !== b.shape[0]) {
    throw new RangeError(`kg.matmul: inner dimensions differ: ${formatShape(a.shape)} @ ${formatShape(b.shape)}`);
  }
  return recordOp('matmul', gemm(a, b, false, false), [a, b], [a.tracksGrad && b, b.tracksGrad && a], (g) => [
    a.tracksGrad ? gemm(g, b, false, true) : null, // dA = g @ bᵀ
    b.tracksGrad ? gemm(a, g, true, false) : null, // dB = aᵀ @ g
  ]);
}

/** The dense layer: x (n, in) times weight (out, in) transposed, plus bias (out). PyTorch's layout. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  checkTensor(x, 'kg.nn.functional.linear', 'x');
  checkTensor(weight, 'kg.nn.functional.linear', 'weight');
  checkNdim(x, [2], 'kg.nn.functional.linear', 'x', '2-D (batch, features)');
  checkNdim(weight, [2], 'kg.nn.functional.linear', 'weight', '2-D (out, in)');
  if (bias !== undefined && bias !== null) checkTensor(bias, 'kg.nn.functional.linear', 'bias');
  checkSameDevice('kg.nn.functional.linear', { x, weight, bias });
  const [n, inFeatures] = x.shape;
  const [outFeatures, wIn] = weight.shape;
  if (wIn !== inFeatures) {
    throw new RangeError(`kg.nn.functional.linear: x ${formatShape(x.shape)} has ${inFeatures} features, weight ${formatShape(weight.shape)} expects ${wIn}`);
  }
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== outFeatures)) {
    throw new RangeError(`kg.nn.functional.linear: bias must have shape [${outFeatures}], got ${formatShape(bias.shape)}`);
  }
  const y = Tensor.empty([n, outFeatures], x.device);
  native.linearForward(n, outFeatures, inFeatures, x.storage, weight.storage, bias ? bias.storage : null, y.storage);
  const inputs = bias ? [x, weight, bias] : [x, weight];
  return recordOp('linear', y, inputs, [x.tracksGrad && weight, weight.tracksGrad && x], (g) => {
    const dx = x.tracksGrad ? gemm(g, weight, false, false) : null; // dx = g @ W
    const db = bias ? Tensor.empty([outFeatures], g.device) : null;
    let dw: Tensor | null = null;
    if (weight.tracksGrad) {
      // dW = gᵀ @ x, and the bias gradient (the column sums of g) in the same call: on CUDA,
      // inside the same GEMM.
      dw = Tensor.empty([outFeatures, inFeatures], g.device);
      native.linearBackwardWeight(n, outFeatures, inFeatures, g.storage, x.storage, dw.storage, db ? db.storage : null);
    } else if (db) {
      native.reduceSum(1, n, outFeatures, 1, g.storage, db.storage);
    }
    return db ? [dx, dw, db] : [dx, dw];
  });
}
