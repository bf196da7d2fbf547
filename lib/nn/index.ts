// kg.nn: layers as modules, and their functional forms.
export * as functional from './functional';
export { Module } from './module';
export { BatchNorm } from './batchnorm';
export type { BatchNormModuleOptions } from './batchnorm';
export { Conv2d } from './conv2d';
export type { Conv2dLayerOptions } from './conv2d';
export { Linear } from './linear';
export type { LinearOptions } from './linear';
export { AvgPool2d } from './pooling';
export { MaxPool2d } from './max-pool';
export { AdaptiveAvgPool2d } from './adaptive-pool';
export { Dropout } from './dropout';
export type { DropoutModuleOptions } from './dropout';
export { Residual } from './residual';
export { ReLU } from './activation';
export { Flatten } from './flatten';
export { Sequential } from './sequential';
