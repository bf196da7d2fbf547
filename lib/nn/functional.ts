// kg.nn.functional: the stateless layers, as functions of tensors.
export { relu } from '../ops/activation';
export { flatten } from '../ops/arith';
export { batchNorm, batchNormRelu, pureBatchNorm } from '../ops/batchnorm';
export type { BatchNormOptions } from '../ops/batchnorm';
export { avgPool2d, conv2d } from '../ops/conv';
export type { AvgPool2dOptions, Conv2dOptions } from '../ops/conv';
export { softmaxCrossEntropy } from '../ops/loss';
export type { Labels, Reduction } from '../ops/loss';
export { linear } from '../ops/matmul';
export { adaptiveAvgPool2d, maxPool2d } from '../ops/pool';
export type { MaxPool2dOptions } from '../ops/pool';
export { dropout } from '../ops/dropout';
export type { DropoutOptions } from '../ops/dropout';
