// kg.data: datasets and mini-batches.
export { parseIdx, readIdx, encodeIdx, isGzip } from './idx';
export type { IdxArray, IdxExpect } from './idx';
export { loadMnist, loadMnistSplit, findMnistFiles, defaultMnistDir, MNIST_CLASSES } from './mnist';
export type { MnistSplit, MnistSplitName, MnistFiles, LoadMnistOptions } from './mnist';
export { DataLoader, mnistDataset, cifar10Dataset, subset } from './loader';
export type { ArrayDataset, Batch, DataLoaderOptions } from './loader';
export { permutation, mixSeed, epochOrder, epochBatches, numBatches } from './sampler';
export type { BatchPlan } from './sampler';
export { loadCifar10, readCifar10Files, findCifar10Dir, encodeCifar10, CIFAR10_CLASSES, CIFAR10_LABELS, CIFAR10_MEAN, CIFAR10_STD, CIFAR10_RECORD_BYTES } from './cifar10';
export type { Cifar10Split, LoadCifar10Options } from './cifar10';
export { normalize, randomCrop, horizontalFlip } from './transforms';
export type { Transform, NormalizeOptions, RandomCropOptions, HorizontalFlipOptions } from './transforms';
