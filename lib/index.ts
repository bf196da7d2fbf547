// kernelgrad: tensors, autograd and layers on hand-written C++ and CUDA kernels.
import './tensor-methods';

export { Tensor } from './tensor';
export { tensor, zeros, ones, full, randn, rand } from './ops/creation';
export type { CreateOptions, RandomOptions } from './ops/creation';
export { add, sub, mul, div, neg, scale, sum, mean, reshape, flatten, broadcastTo } from './ops/arith';
export { matmul } from './ops/matmul';
export { argmax } from './ops/loss';
export { devices, defaultDevice, setDefaultDevice, setCpuThreads } from './device';
export type { Device, DeviceInfo, CpuDeviceInfo, CudaDeviceInfo } from './device';
export { manualSeed, Random } from './random';
export { tidy } from './tidy';
export { NonFiniteError } from './non-finite';
export * as autograd from './autograd';
export * as nn from './nn';
export * as cuda from './cuda';
export * as memory from './memory';
export * as optim from './optim';
export * as data from './data';
export * as io from './io';
export * as models from './models';
export * as train from './train';
