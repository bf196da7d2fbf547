// kg.nn: layers as modules, and their functional forms.
export * as functional from './functional';
export { Module } from './module';
export { BatchNorm } from './batchnorm';
export type { BatchNormModuleOptions } from './batchnorm';
