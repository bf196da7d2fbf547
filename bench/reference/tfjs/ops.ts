// The kernel-level cases in TensorFlow.js. Layout: NHWC, TensorFlow.js's own (its conv and pool
// kernels take NHWC; NCHW would add transposes), with the same logical shapes as ours.
import { tf } from './setup';

export function nhwc(shape: number[]): number[] {
  return shape.length === 4 ? [shape[0], shape[2], shape[3], shape[1]] : shape;
}

function reduceAxes(x: tf.Tensor): number[] {
  return x.rank === 4 ? [0, 1, 2] : [0];
}

/** Training-mode batch norm written out as the tutorial writes it (mean, variance, normalize,
 *  scale, shift). On wasm this is as fast as tf.moments + tf.batchNorm forward and 3-5x faster in
 *  the gradient (tf.batchNorm's gradient tiles the statistics to x's shape), so it is tfjs's best. */
export function bnTrain(x: tf.Tensor, gamma: tf.Tensor1D, beta: tf.Tensor1D, eps: number): tf.Tensor {
  const axes = reduceAxes(x);
  const mean = tf.mean(x, axes);
  const xc = tf.sub(x, mean);
  const variance = tf.mean(tf.square(xc), axes);
  return tf.add(tf.mul(tf.mul(xc, tf.rsqrt(tf.add(variance, eps))), gamma), beta);
}

export function bnInfer(x: tf.Tensor, gamma: tf.Tensor1D, beta: tf.Tensor1D, mean: tf.Tensor1D, variance: tf.Tensor1D, eps: number): tf.Tensor {
  return tf.batchNorm(x, mean, variance, beta, gamma, eps);
}

/** Gradients of training-mode batch norm w.r.t. x, gamma, beta for upstream dy. tfjs has no
 *  separate backward: this runs the forward too, and the bench subtracts the forward's time. */
export function bnTrainGrads(x: tf.Tensor, gamma: tf.Tensor1D, beta: tf.Tensor1D, dy: tf.Tensor, eps: number): tf.Tensor[] {
  return tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => bnTrain(a, g as tf.Tensor1D, b as tf.Tensor1D, eps))([x, gamma, beta], dy);
}

export function convFwd(x: tf.Tensor4D, w: tf.Tensor4D, b: tf.Tensor1D, stride: number, pad: number): tf.Tensor4D {
  return tf.fused.conv2d({ x, filter: w, bias: b, strides: stride, pad: pad === 0 ? 'valid' : pad });
}

export function convBwdData(dy: tf.Tensor4D, w: tf.Tensor4D, xShape: number[], stride: number, pad: number): tf.Tensor {
  return tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: w }, {
    strides: [stride, stride], pad: pad === 0 ? 'valid' : pad, dataFormat: 'NHWC', inputShape: xShape,
  }) as tf.Tensor;
}

/** Weight and bias gradients. */
export function convBwdFilter(x: tf.Tensor4D, dy: tf.Tensor4D, wShape: number[], stride: number, pad: number): tf.Tensor[] {
  const dw = tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, {
    strides: [stride, stride], pad: pad === 0 ? 'valid' : pad, dataFormat: 'NHWC', filterShape: wShape,
  }) as tf.Tensor;
  return [dw, tf.sum(dy, [0, 1, 2])];
}

export function poolFwd(x: tf.Tensor4D): tf.Tensor {
  return tf.avgPool(x, 2, 2, 'valid');
}

export function poolBwd(dy: tf.Tensor4D, x: tf.Tensor4D): tf.Tensor {
  return tf.engine().runKernel('AvgPoolGrad', { dy, input: x }, { filterSize: [2, 2], strides: [2, 2], pad: 'valid' }) as tf.Tensor;
}

export function gemm(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor {
  return tf.matMul(a, b);
}
