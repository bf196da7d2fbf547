// Activations.
import { recordOp } from '../autograd/tape';
import { native } from '../native';
import { Tensor } from '../tensor';
import { checkTensor } from './check';

/** max(x, 0); the gradient is 0 where x <= 0. */
export function relu(x: Tensor): Tensor {
  checkTensor(x, 'kg.nn.functional.relu', 'x');
  const y = Tensor.empty(x.shape, x.device);
  native.reluForward(x.storage, y.storage);
  return recordOp('relu', y, [x], [x], (g) => {
    const dx = Tensor.empty(x.shape, x.device);
    native.reluBackward(x.storage, g.storage, dx.storage);
    return [dx];
  });
}
