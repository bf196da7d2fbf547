// kg.optim: optimizers.
export { SGD } from './sgd';
export type { SGDOptions } from './sgd';
