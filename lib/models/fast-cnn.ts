// The network of the MNIST race (`kernelgrad train --recipe fast`, `npm run bench -- --only race`):
// LeNet-5's convolutions (Y. LeCun et al., 1998, as Caffe's MNIST example sizes them) with batch
// norm after every layer with weights but the last:
//
//   conv1 (1→20, 5x5) → bn1 → relu → avgpool 2x2     (n, 20, 12, 12)
//   conv2 (20→50, 5x5) → bn2 → relu → avgpool 2x2    (n, 50, 4, 4)
//   flatten                                          (n, 800)
//   fc1 (800→128) → bn3 → relu                       (n, 128)
//   fc2 (128→10)                                     (n, 10) logits
//
// Small enough for an epoch in seconds on two cores, and with Adam on a one-cycle schedule it
// passes 99% test accuracy in one epoch. The layers followed by batch norm have no bias: the
// normalization subtracts it again, so its gradient is rounding noise, which Adam would turn into
// steps of the full learning rate. Initialization is PyTorch's default for each layer, from one
// seed, so the PyTorch twin in bench/reference/torch_cpu.py starts from the same distribution.
import { defaultDevice, Device, parseDevice } from '../device';
import { ReLU } from '../nn/activation';
import { BatchNorm } from '../nn/batchnorm';
import { Conv2d } from '../nn/conv2d';
import { Flatten } from '../nn/flatten';
import { Linear } from '../nn/linear';
import { AvgPool2d } from '../nn/pooling';
import { Sequential } from '../nn/sequential';
import { describe, readOptions } from '../options';

/** Name of the architecture, stored in checkpoint metadata. */
export const FAST_CNN_ARCHITECTURE = 'fast-cnn';

/** A PyTorch definition of the same network (same names, shapes and layouts, BN names aside). */
export const FAST_CNN_SUMMARY =
  'conv1 Conv2d(1,20,5,bias=False) bn1 BatchNorm(20) relu1 pool1 AvgPool2d(2,2) conv2 Conv2d(20,50,5,bias=False) bn2 BatchNorm(50) relu2 pool2 AvgPool2d(2,2) ' +
  'flatten fc1 Linear(800,128,bias=False) bn3 BatchNorm(128) relu3 fc2 Linear(128,10)';

export interface FastCnnOptions {
  /** Where the parameters live (default: `kg.defaultDevice()`). */
  device?: Device;
  /** Seed of the initial values (default 1). */
  seed?: number;
}

/**
 * Builds the race network as a Sequential named conv1, bn1, relu1, pool1, conv2, bn2, relu2, pool2,
 * flatten, fc1, bn3, relu3, fc2. Input: (n, 1, 28, 28) images.
 */
export function fastCnn(opts?: FastCnnOptions): Sequential {
  const fn = 'kg.models.fastCnn';
  const o = readOptions(opts, fn, ['device', 'seed']);
  const seed = o.seed ?? 1;
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed)) throw new TypeError(`${fn}: seed must be an integer, got ${describe(seed)}`);
  const device = o.device === undefined ? defaultDevice() : parseDevice(o.device, fn);
  // Each layer draws from its own stream of the seed (the head's bias uses seed + 1).
  const init = (i: number, bias = false) => ({ seed: seed * 16 + 2 * i, device, bias });
  // Running statistics from 0 and 1 with PyTorch's momentum 0.1, as the PyTorch twin's.
  const bnOptions = { momentum: 0.9, initRunning: 'zeroOne' as const, device };
  return new Sequential({
    conv1: new Conv2d(1, 20, 5, init(0)),
    bn1: new BatchNorm(20, bnOptions),
    relu1: new ReLU(),
    pool1: new AvgPool2d(2, 2),
    conv2: new Conv2d(20, 50, 5, init(1)),
    bn2: new BatchNorm(50, bnOptions),
    relu2: new ReLU(),
    pool2: new AvgPool2d(2, 2),
    flatten: new Flatten(),
    fc1: new Linear(800, 128, init(2)),
    bn3: new BatchNorm(128, bnOptions),
    relu3: new ReLU(),
    fc2: new Linear(128, 10, init(3, true)),
  });
}
