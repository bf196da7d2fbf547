// kg.data: datasets and mini-batches.
export { parseIdx, readIdx, encodeIdx, isGzip } from './idx';
export type { IdxArray, IdxExpect } from './idx';
export { loadMnist, loadMnistSplit, findMnistFiles, defaultMnistDir, MNIST_CLASSES } from './mnist';
export type { MnistSplit, MnistSplitName, MnistFiles, LoadMnistOptions } from './mnist';
export { DataLoader, mnistDataset, subset } from './loader';
export type { ArrayDataset, Batch, DataLoaderOptions } from './loader';
export { permutation, mixSeed, epochOrder, epochBatches, numBatches } from './sampler';
export type { BatchPlan } from './sampler';
