// The tutorial's batch-normalized CNN for MNIST ("Batch Normalization from scratch"):
//
//   conv1 (1→20, 3x3) → bn1 → relu → avgpool 2x2     (n, 20, 13, 13)
//   conv2 (20→50, 5x5) → bn2 → relu → avgpool 2x2    (n, 50, 4, 4)
//   flatten                                          (n, 800)
//   fc1 (800→128) → bn3 → relu                       (n, 128)
//   fc2 (128→10)                                     (n, 10) logits
//
// BN sits right after each linear layer, before the activation, as in the paper and the tutorial.
// Initialization is the tutorial's: every weight and bias N(0, 0.01²), gamma N(1, 0.01²), beta
// N(0, 0.01²), drawn from one seeded generator in the tutorial's order (W1 b1 gamma1 beta1 W2 ...).
import { defaultDevice, Device, parseDevice } from '../device';
import { ReLU } from '../nn/activation';
import { BatchNorm } from '../nn/batchnorm';
import { Conv2d } from '../nn/conv2d';
import { Flatten } from '../nn/flatten';
import { normal_ } from '../nn/init';
import { Linear } from '../nn/linear';
import { AvgPool2d } from '../nn/pooling';
import { Sequential } from '../nn/sequential';
import { checkFinite, checkPositiveInt } from '../ops/check';
import { describe, readOptions } from '../options';
import { Random } from '../random';
import type { Tensor } from '../tensor';

/** Name of the architecture, stored in checkpoint metadata. */
export const BN_CNN_ARCHITECTURE = 'bn-cnn';

/** A PyTorch definition of the same network (same names, shapes and layouts, BN names aside). */
export const BN_CNN_SUMMARY =
  'conv1 Conv2d(1,20,3) bn1 BatchNorm(20) relu1 pool1 AvgPool2d(2,2) conv2 Conv2d(20,50,5) bn2 BatchNorm(50) relu2 pool2 AvgPool2d(2,2) ' +
  'flatten fc1 Linear(800,128) bn3 BatchNorm(128) relu3 fc2 Linear(128,10)';

export interface BnCnnOptions {
  /** Where the parameters live (default: `kg.defaultDevice()`, cuda when a GPU is present). */
  device?: Device;
  /** Seed of the initial values (default 1, like the tutorial's mx.random.seed(1)). */
  seed?: number;
  /** Hidden units of the dense layer (default 128, the tutorial's num_fc). */
  hidden?: number;
  /** Standard deviation of the initial values (default 0.01, the tutorial's weight_scale). */
  weightScale?: number;
  /** Batch norm settings (default: momentum 0.9, eps 1e-5, running statistics start at the first batch). */
  bnMomentum?: number;
  bnEps?: number;
  initRunning?: 'firstBatch' | 'zeroOne';
}

/** The batch-norm layers' parameters (gamma, beta): e.g. to exempt them from weight decay. */
export function batchNormParameters(model: Sequential): Tensor[] {
  return model.namedParameters().filter(([n]) => /^bn\d+\./.test(n)).map(([, t]) => t);
}

/**
 * Builds the tutorial's model as a Sequential with named layers; its state dict keys are
 * conv1.weight, conv1.bias, bn1.gamma, bn1.beta, bn1.runningMean, bn1.runningVar, conv2.*, bn2.*,
 * fc1.weight, fc1.bias, bn3.*, fc2.weight, fc2.bias. Input: (n, 1, 28, 28) images.
 */
export function bnCnn(opts?: BnCnnOptions): Sequential {
  const fn = 'kg.models.bnCnn';
  const options = readOptions(opts, fn, ['device', 'seed', 'hidden', 'weightScale', 'bnMomentum', 'bnEps', 'initRunning']);
  const hidden = checkPositiveInt(options.hidden ?? 128, fn, 'hidden');
  const scale = checkFinite(options.weightScale ?? 0.01, fn, 'weightScale');
  if (scale < 0) throw new RangeError(`${fn}: weightScale must be >= 0, got ${scale}`);
  if (options.seed !== undefined && (typeof options.seed !== 'number' || !Number.isSafeInteger(options.seed))) {
    throw new TypeError(`${fn}: seed must be an integer, got ${describe(options.seed)}`);
  }
  const device = options.device === undefined ? defaultDevice() : parseDevice(options.device, fn);
  const bn = (c: number) =>
    new BatchNorm(c, { momentum: options.bnMomentum, eps: options.bnEps, initRunning: options.initRunning ?? 'firstBatch', device });
  // Built with throw-away values (seed 0), then initialized below the tutorial's way.
  const conv1 = new Conv2d(1, 20, 3, { seed: 0, device });
  const bn1 = bn(20);
  const conv2 = new Conv2d(20, 50, 5, { seed: 0, device });
  const bn2 = bn(50);
  const fc1 = new Linear(800, hidden, { seed: 0, device });
  const bn3 = bn(hidden);
  const fc2 = new Linear(hidden, 10, { seed: 0, device });
  const model = new Sequential({
    conv1,
    bn1,
    relu1: new ReLU(),
    pool1: new AvgPool2d(2, 2),
    conv2,
    bn2,
    relu2: new ReLU(),
    pool2: new AvgPool2d(2, 2),
    flatten: new Flatten(),
    fc1,
    bn3,
    relu3: new ReLU(),
    fc2,
  });

  // The tutorial's initialization, in its order, from one generator.
  const rng = new Random(options.seed ?? 1);
  const layers: Array<Conv2d | Linear> = [conv1, conv2, fc1];
  const norms = [bn1, bn2, bn3];
  layers.forEach((layer, i) => {
    normal_(layer.weight, 0, scale, rng);
    normal_(layer.bias as Tensor, 0, scale, rng);
    normal_(norms[i].gamma, 1, scale, rng);
    normal_(norms[i].beta, 0, scale, rng);
  });
  normal_(fc2.weight, 0, scale, rng);
  normal_(fc2.bias as Tensor, 0, scale, rng);
  return model;
}
