// The datasets `kernelgrad train` knows (--dataset mnist|cifar10 --data DIR) and their
// augmentations (--augment), with input problems reported as usage errors.
import { InvalidArgumentError } from 'commander';
import type { ArrayDataset } from '../data/loader';
import type { Transform } from '../data/transforms';
import { checkSplitFiles, loadSplitForCli } from './data';
import { requireDir, UsageError } from './options';

export type DatasetName = 'mnist' | 'cifar10';

export function parseDatasetName(value: string): DatasetName {
  const v = value.toLowerCase().replace(/[-_]/g, '');
  if (v === 'mnist') return 'mnist';
  if (v === 'cifar10') return 'cifar10';
  throw new InvalidArgumentError("must be 'mnist' or 'cifar10'.");
}

export interface TrainingData {
  /** For the log and the plot title: 'MNIST', 'CIFAR-10'. */
  title: string;
  train: ArrayDataset;
  test: ArrayDataset;
  /** Shape of one image, e.g. [3, 32, 32]. */
  inputShape: [number, number, number];
}

/** Shape of one image of the dataset. */
export function inputShapeOf(dataset: DatasetName): [number, number, number] {
  return dataset === 'cifar10' ? [3, 32, 32] : [1, 28, 28];
}

/** Checks that the dataset's files are all there, before anything is loaded. */
export function checkDatasetFiles(dataset: DatasetName, dir: string | undefined): void {
  if (dataset === 'mnist') {
    checkSplitFiles('train', dir);
    checkSplitFiles('test', dir);
    return;
  }
  if (dir === undefined) {
    throw new UsageError('CIFAR-10 needs --data DIR, a folder of its binary batches (data_batch_1.bin ... data_batch_5.bin, test_batch.bin)');
  }
  requireDir(dir, 'CIFAR-10 data folder');
}

export async function loadTrainingData(dataset: DatasetName, dir: string | undefined, trainSize?: number, testSize?: number): Promise<TrainingData> {
  const { cifar10Dataset, mnistDataset } = await import('../data/loader');
  if (dataset === 'mnist') {
    return {
      title: 'MNIST',
      train: mnistDataset(loadSplitForCli('train', dir, trainSize)),
      test: mnistDataset(loadSplitForCli('test', dir, testSize)),
      inputShape: inputShapeOf('mnist'),
    };
  }
  const { loadCifar10 } = await import('../data/cifar10');
  let splits;
  try {
    splits = loadCifar10({ dir: dir as string, trainLimit: trainSize, testLimit: testSize });
  } catch (e) {
    throw new UsageError((e as Error).message); // a missing, truncated or foreign file
  }
  return { title: 'CIFAR-10', train: cifar10Dataset(splits.train), test: cifar10Dataset(splits.test), inputShape: inputShapeOf('cifar10') };
}

/** The test split only (for `kernelgrad eval`). */
export async function loadTestSet(dataset: DatasetName, dir: string | undefined, testSize?: number): Promise<ArrayDataset> {
  const { cifar10Dataset, mnistDataset } = await import('../data/loader');
  if (dataset === 'mnist') return mnistDataset(loadSplitForCli('test', dir, testSize));
  const { CIFAR10_TEST_FILES, findCifar10Dir, readCifar10Files } = await import('../data/cifar10');
  try {
    return cifar10Dataset(readCifar10Files(findCifar10Dir(dir as string), CIFAR10_TEST_FILES, testSize));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/**
 * The transforms of the training and the evaluation loaders. CIFAR-10 is always normalized with
 * its channel statistics; --augment adds the standard random crop (padding 4) and horizontal flip.
 * MNIST is augmented with shifts only (padding 2): a mirrored digit is another shape, or none.
 */
export async function transformsFor(dataset: DatasetName, augment: boolean): Promise<{ train: Transform[]; eval: Transform[] }> {
  const { horizontalFlip, normalize, randomCrop } = await import('../data/transforms');
  if (dataset === 'mnist') return { train: augment ? [randomCrop({ padding: 2 })] : [], eval: [] };
  const { CIFAR10_MEAN, CIFAR10_STD } = await import('../data/cifar10');
  const norm = normalize({ mean: CIFAR10_MEAN, std: CIFAR10_STD });
  return { train: augment ? [randomCrop({ padding: 4 }), horizontalFlip(), norm] : [norm], eval: [norm] };
}
