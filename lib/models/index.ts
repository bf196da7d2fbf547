// kg.models: ready-made networks.
export { bnCnn, batchNormParameters, BN_CNN_ARCHITECTURE, BN_CNN_SUMMARY } from './bn-cnn';
export type { BnCnnOptions } from './bn-cnn';
export { resnet, RESNET_ARCHITECTURE } from './resnet';
export type { ResNetOptions } from './resnet';
export { fastCnn, FAST_CNN_ARCHITECTURE, FAST_CNN_SUMMARY } from './fast-cnn';
export type { FastCnnOptions } from './fast-cnn';
