// kg.optim: optimizers, gradient clipping and learning-rate schedules.
export { Optimizer } from './optimizer';
export type { OptimizerOptions } from './optimizer';
export { SGD } from './sgd';
export type { SGDOptions } from './sgd';
export { Adam, AdamW } from './adam';
export type { AdamFamily, AdamOptions } from './adam';
export { clipGradNorm } from './clip';
export * as schedules from './schedules';
export type { Schedule } from './schedules';
