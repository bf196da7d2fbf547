// ResNets for small images, after He et al., "Deep Residual Learning for Image Recognition" (2015),
// section 4.2 (the CIFAR-10 networks):
//
//   stem:   conv 3x3 (inChannels→w) → bn → relu                        (n, w, h, w')
//   stage1: n basic blocks of width w                                  (n, w, h, w')
//   stage2: n basic blocks of width 2w, the first with stride 2        (n, 2w, h/2, w'/2)
//   stage3: n basic blocks of width 4w, the first with stride 2        (n, 4w, h/4, w'/4)
//   pool:   global average pooling, flatten                            (n, 4w)
//   fc:     linear (4w→classes)                                        (n, classes) logits
//
// with depth = 6n + 2 (ResNet-8: n = 1, ResNet-20: n = 3). A basic block is
// relu(bn(conv3x3(relu(bn(conv3x3(x))))) + shortcut(x)); where the shape changes, the shortcut is
// a strided 1x1 convolution with batch norm (the paper's option B). Convolutions have no bias (the
// batch norm after each has one). Initialization as torchvision's: convolutions N(0, 2 / fanOut)
// (He), batch norm gamma 1 and beta 0, the linear head PyTorch's default; all from one seed.
import { defaultDevice, Device, parseDevice } from '../device';
import { ReLU } from '../nn/activation';
import { BatchNorm } from '../nn/batchnorm';
import { Conv2d } from '../nn/conv2d';
import { Flatten } from '../nn/flatten';
import { normal_ } from '../nn/init';
import { Linear } from '../nn/linear';
import { AdaptiveAvgPool2d } from '../nn/adaptive-pool';
import { Module } from '../nn/module';
import { Residual } from '../nn/residual';
import { Sequential } from '../nn/sequential';
import { checkPositiveInt } from '../ops/check';
import { describe, readOptions } from '../options';
import { Random } from '../random';

/** Name of the architecture, stored in checkpoint metadata. */
export const RESNET_ARCHITECTURE = 'resnet';

export interface ResNetOptions {
  /** 6n + 2 layers with weights: 8, 14, 20, 32, ... (default 20). */
  depth?: number;
  /** Channels of the first stage; the others have 2x and 4x (default 16, the paper's). */
  width?: number;
  /** Number of classes (default 10). */
  classes?: number;
  /** Channels of the input images (default 3). */
  inChannels?: number;
  /** Where the parameters live (default: `kg.defaultDevice()`). */
  device?: Device;
  /** Seed of the initial values (default 1). */
  seed?: number;
  /** Batch norm settings (default: momentum 0.9, eps 1e-5, running statistics from 0 and 1). */
  bnMomentum?: number;
  bnEps?: number;
}

/**
 * Builds the network as a Sequential named stem, stage1, stage2, stage3, pool, flatten, fc. Each
 * stage is a Sequential of blocks '0', '1', ..., each block a Sequential { residual, relu } whose
 * residual has body { conv1, bn1, relu1, conv2, bn2 } and, where needed, shortcut { conv, bn }.
 * Input: (n, inChannels, h, w) images, any size of at least 1x1.
 */
export function resnet(opts?: ResNetOptions): Sequential {
  const fn = 'kg.models.resnet';
  const o = readOptions(opts, fn, ['depth', 'width', 'classes', 'inChannels', 'device', 'seed', 'bnMomentum', 'bnEps']);
  const depth = checkPositiveInt(o.depth ?? 20, fn, 'depth');
  if ((depth - 2) % 6 !== 0 || depth < 8) {
    throw new RangeError(`${fn}: depth must be 6n + 2 for n >= 1 (8, 14, 20, 32, ...), got ${depth}`);
  }
  const width = checkPositiveInt(o.width ?? 16, fn, 'width');
  const classes = checkPositiveInt(o.classes ?? 10, fn, 'classes');
  const inChannels = checkPositiveInt(o.inChannels ?? 3, fn, 'inChannels');
  if (o.seed !== undefined && (typeof o.seed !== 'number' || !Number.isSafeInteger(o.seed))) {
    throw new TypeError(`${fn}: seed must be an integer, got ${describe(o.seed)}`);
  }
  const device = o.device === undefined ? defaultDevice() : parseDevice(o.device, fn);
  const blocks = (depth - 2) / 6;
  const rng = new Random(o.seed ?? 1);

  const convs: Conv2d[] = [];
  const conv = (cin: number, cout: number, k: number, stride: number): Conv2d => {
    const c = new Conv2d(cin, cout, k, { stride, padding: (k - 1) / 2, bias: false, seed: 0, device });
    convs.push(c);
    return c;
  };
  const bn = (c: number) => new BatchNorm(c, { momentum: o.bnMomentum, eps: o.bnEps, initRunning: 'zeroOne', device });

  const block = (cin: number, cout: number, stride: number): Module => {
    const body = new Sequential({
      conv1: conv(cin, cout, 3, stride),
      bn1: bn(cout),
      relu1: new ReLU(),
      conv2: conv(cout, cout, 3, 1),
      bn2: bn(cout),
    });
    const shortcut = stride !== 1 || cin !== cout ? new Sequential({ conv: conv(cin, cout, 1, stride), bn: bn(cout) }) : null;
    return new Sequential({ residual: new Residual(body, shortcut), relu: new ReLU() });
  };
  const stage = (cin: number, cout: number, stride: number): Sequential =>
    new Sequential(...Array.from({ length: blocks }, (_, i) => block(i === 0 ? cin : cout, cout, i === 0 ? stride : 1)));

  const model = new Sequential({
    stem: new Sequential({ conv: conv(inChannels, width, 3, 1), bn: bn(width), relu: new ReLU() }),
    stage1: stage(width, width, 1),
    stage2: stage(width, 2 * width, 2),
    stage3: stage(2 * width, 4 * width, 2),
    pool: new AdaptiveAvgPool2d(1),
    flatten: new Flatten(),
    fc: new Linear(4 * width, classes, { seed: rng.nextUint32(), device }),
  });
  for (const c of convs) {
    const [k, , kh, kw] = c.weight.shape;
    normal_(c.weight, 0, Math.sqrt(2 / (k * kh * kw)), rng);
  }
  return model;
}
