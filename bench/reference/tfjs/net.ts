// The tutorial's network in TensorFlow.js (NHWC): fused conv+bias, batch norm from batch moments
// with the tutorial's moving statistics, relu, avg-pool, dense; summed softmax cross-entropy;
// plain SGD at lr 0.001 through tf.train.sgd. Parameters start from the same values as ours
// (transposed to tfjs's layouts).
import { tf } from './setup';
import { NET } from '../../lib/shapes';
import type { Params } from '../plain-net';

export interface TfjsNet {
  vars: tf.Variable[];
  /** One SGD step on (x, onehot). */
  step(x: tf.Tensor4D, onehot: tf.Tensor2D): void;
  /** Loss of a forward pass without updating (for sanity checks). */
  loss(x: tf.Tensor4D, onehot: tf.Tensor2D): number;
  infer(x: tf.Tensor4D): tf.Tensor2D;
  dispose(): void;
}

export interface TfjsNetOptions {
  /** 'ops': batch norm written out as the tutorial writes it (mean, variance, normalize, scale);
   *  'batchNorm': tf.moments + tf.batchNorm (its gradient tiles statistics to x's shape). */
  bn: 'ops' | 'batchNorm';
  /** Conv and dense with tf.fused.* (one kernel with the bias) or plain op + add. */
  fused: boolean;
}

export const TFJS_NET_DEFAULT: TfjsNetOptions = { bn: 'ops', fused: true };

export function makeTfjsNet(p: Params, o: TfjsNetOptions = TFJS_NET_DEFAULT): TfjsNet {
  const v = (data: Float32Array, shape: number[], perm?: number[]) =>
    tf.tidy(() => {
      let t = tf.tensor(data, shape);
      if (perm) t = tf.transpose(t, perm);
      return tf.variable(t);
    });
  const W1 = v(p.W1, [20, 1, 3, 3], [2, 3, 1, 0]);
  const W2 = v(p.W2, [50, 20, 5, 5], [2, 3, 1, 0]);
  const W3 = v(p.W3, [800, 128]);
  const W4 = v(p.W4, [128, 10]);
  const b1 = v(p.b1, [20]), g1 = v(p.gamma1, [20]), be1 = v(p.beta1, [20]);
  const b2 = v(p.b2, [50]), g2 = v(p.gamma2, [50]), be2 = v(p.beta2, [50]);
  const b3 = v(p.b3, [128]), g3 = v(p.gamma3, [128]), be3 = v(p.beta3, [128]);
  const b4 = v(p.b4, [10]);
  const vars = [W1, b1, g1, be1, W2, b2, g2, be2, W3, b3, g3, be3, W4, b4];
  const running = [20, 50, 128].map((c) => ({
    mean: tf.variable(tf.zeros([c]), false),
    variance: tf.variable(tf.ones([c]), false),
  }));
  const m = NET.momentum;

  const bn = (x: tf.Tensor, gamma: tf.Variable, beta: tf.Variable, i: number, training: boolean) => {
    const r = running[i];
    if (!training) return tf.batchNorm(x, r.mean, r.variance, beta as tf.Tensor1D, gamma as tf.Tensor1D, NET.eps);
    const axes = x.rank === 4 ? [0, 1, 2] : [0];
    let mean: tf.Tensor;
    let variance: tf.Tensor;
    let y: tf.Tensor;
    if (o.bn === 'ops') {
      mean = tf.mean(x, axes);
      const xc = tf.sub(x, mean);
      variance = tf.mean(tf.square(xc), axes);
      y = tf.add(tf.mul(tf.mul(xc, tf.rsqrt(tf.add(variance, NET.eps))), gamma), beta);
    } else {
      ({ mean, variance } = tf.moments(x, axes));
      y = tf.batchNorm(x, mean, variance, beta as tf.Tensor1D, gamma as tf.Tensor1D, NET.eps);
    }
    r.mean.assign(tf.add(tf.mul(r.mean, m), tf.mul(mean, 1 - m)));
    r.variance.assign(tf.add(tf.mul(r.variance, m), tf.mul(variance, 1 - m)));
    return y;
  };

  const forward = (x: tf.Tensor4D, training: boolean): tf.Tensor2D => {
    const n = x.shape[0];
    const conv = (a: tf.Tensor, w: tf.Variable, b: tf.Variable) =>
      o.fused
        ? tf.fused.conv2d({ x: a as tf.Tensor4D, filter: w as tf.Tensor4D, bias: b, strides: 1, pad: 'valid' })
        : tf.add(tf.conv2d(a as tf.Tensor4D, w as tf.Tensor4D, 1, 'valid'), b);
    const dense = (a: tf.Tensor, w: tf.Variable, b: tf.Variable) =>
      o.fused ? tf.fused.matMul({ a: a as tf.Tensor2D, b: w as tf.Tensor2D, bias: b }) : tf.add(tf.matMul(a as tf.Tensor2D, w as tf.Tensor2D), b);
    let h = conv(x, W1, b1);
    h = tf.avgPool(tf.relu(bn(h, g1, be1, 0, training)) as tf.Tensor4D, 2, 2, 'valid');
    h = conv(h, W2, b2);
    h = tf.avgPool(tf.relu(bn(h, g2, be2, 1, training)) as tf.Tensor4D, 2, 2, 'valid');
    h = tf.reshape(h, [n, 800]);
    h = tf.relu(bn(dense(h, W3, b3), g3, be3, 2, training));
    return dense(h, W4, b4) as tf.Tensor2D;
  };

  const lossOf = (x: tf.Tensor4D, onehot: tf.Tensor2D) =>
    tf.losses.softmaxCrossEntropy(onehot, forward(x, true), undefined, 0, tf.Reduction.SUM) as tf.Scalar;

  const opt = tf.train.sgd(NET.lr);
  return {
    vars,
    step(x, onehot) {
      tf.tidy(() => {
        opt.minimize(() => lossOf(x, onehot), false, vars);
      });
    },
    loss(x, onehot) {
      return tf.tidy(() => lossOf(x, onehot).dataSync()[0]);
    },
    infer(x) {
      return tf.tidy(() => forward(x, false));
    },
    dispose() {
      opt.dispose();
      for (const t of vars) t.dispose();
      for (const r of running) {
        r.mean.dispose();
        r.variance.dispose();
      }
    },
  };
}
