// The training loop of the tutorial: per batch, forward in training mode under autograd.record,
// softmax cross-entropy summed over the batch, backward, optimizer step (its learning rate set by
// the schedule, if any); per epoch, the moving-average loss and the train and test accuracy in
// inference mode.
import * as cliProgress from 'cli-progress';
import { backward } from '../autograd/backward';
import { record } from '../autograd/tape';
import { DataLoader } from '../data/loader';
import { Module } from '../nn/module';
import { NonFiniteError } from '../non-finite';
import { checkPositiveInt, checkTensor } from '../ops/check';
import { Labels, softmaxCrossEntropy } from '../ops/loss';
import { Optimizer } from '../optim/optimizer';
import type { Schedule } from '../optim/schedules';
import { describe, readOptions } from '../options';
import { formatShape } from '../shape';
import type { Tensor } from '../tensor';
import { tidy } from '../tidy';
import { compileStep } from './compile';
import { nonFiniteStepError } from './diverged';
import { evaluateAccuracy } from './evaluate';
import { EpochMetrics, formatEpochLine, MovingAverage } from './metrics';

export interface FitOptions {
  /** Any kg.optim optimizer (SGD, Adam, AdamW). */
  optimizer: Optimizer;
  /**
   * Learning rate per step (kg.optim.schedules): before each step, `optimizer.lr = schedule(n)`
   * with n the steps taken so far, counted across epochs (from startEpoch * steps per epoch).
   */
  schedule?: Schedule;
  /** Shuffled training batches; epoch e of the run uses `train.batches(startEpoch + e)`. */
  train: DataLoader;
  /** Test set, for Test_acc (inference mode). */
  test: DataLoader;
  /** Training set for Train_acc; default `train` (its epoch 0). An unshuffled loader is cheaper. */
  trainEval?: DataLoader;
  /** Number of epochs (default 10, the tutorial's). */
  epochs?: number;
  /** Index of the first epoch (for resumed runs; default 0). */
  startEpoch?: number;
  /**
   * How the per-example losses are combined before backward (default 'sum': the tutorial's
   * backward of the per-example vector, which its learning rate of 0.001 is tuned for).
   */
  lossReduction?: 'sum' | 'mean';
  /** Show a progress bar on stderr (default: only when stderr is a TTY). */
  progress?: boolean;
  /** Where the epoch line goes (default console.log). */
  log?: (line: string) => void;
  /** Called after each epoch with its metrics (e.g. to write a checkpoint); may be async. */
  onEpoch?: (metrics: EpochMetrics) => void | Promise<void>;
  /**
   * Train through kg.train.compileStep on CUDA (default true): each step is one replay of a
   * captured CUDA graph, and its loss is read a step late, so no step waits for the GPU. false:
   * the eager trainStep, which reads every loss at once.
   */
  compile?: boolean;
}

/** The result of one training step. */
export interface StepResult {
  /** Mean loss per example of the batch. */
  meanLoss: number;
}

/**
 * One optimizer step on a batch: forward in training mode (recorded), loss, backward, update. Every
 * temporary tensor is freed before returning; the parameters' gradients are dropped first.
 */
export function trainStep(
  model: Module,
  optimizer: Optimizer,
  x: Tensor,
  y: Labels,
  lossReduction: 'sum' | 'mean' = 'sum',
): StepResult {
  const fn = 'kg.train.trainStep';
  if (!(model instanceof Module)) throw new TypeError(`${fn}: model must be a kg.nn.Module, got ${describe(model)}`);
  if (!(optimizer instanceof Optimizer)) throw new TypeError(`${fn}: optimizer must be a kg.optim optimizer (SGD, Adam, AdamW), got ${describe(optimizer)}`);
  checkTensor(x, fn, 'x');
  if (x.ndim < 1) throw new RangeError(`${fn}: x needs a batch dimension, got shape ${formatShape(x.shape)}`);
  if (lossReduction !== 'sum' && lossReduction !== 'mean') {
    throw new TypeError(`${fn}: lossReduction must be 'sum' or 'mean', got ${describe(lossReduction)}`);
  }
  const n = x.shape[0];
  const total = tidy(() => {
    optimizer.zeroGrad();
    const loss = record(() => softmaxCrossEntropy(model.forward(x), y, { reduction: lossReduction }));
    backward(loss);
    optimizer.step();
    return loss.item();
  });
  return { meanLoss: lossReduction === 'sum' ? total / n : total };
}

/**
 * Lets the event loop turn once. The training loop calls it after every batch: N-API finalizers
 * (which free the native memory of tensors that were garbage collected) and other callbacks run
 * only between turns, and a loop that never returns to the event loop holds them all back until
 * the epoch ends. One setImmediate costs about 10 µs, against milliseconds for a training step.
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * The optimizer steps fit() takes in one epoch of `train`: one per batch of at least 2 examples
 * (a last batch of 1 is skipped). Schedules are sized with it: `steps: epochs * stepsPerEpoch(train)`.
 */
export function stepsPerEpoch(train: DataLoader): number {
  if (!(train instanceof DataLoader)) throw new TypeError(`kg.train.stepsPerEpoch: train must be a kg.data.DataLoader, got ${describe(train)}`);
  const full = train.batchSize >= 2 ? Math.floor(train.size / train.batchSize) : 0;
  const rest = train.dropLast ? 0 : train.size % train.batchSize;
  return full + (rest >= 2 ? 1 : 0);
}

/** Sets the optimizer's learning rate for step `n` from the schedule, refusing what is not a rate. */
function applySchedule(optimizer: Optimizer, schedule: Schedule, n: number): void {
  const rate: unknown = schedule(n);
  if (typeof rate !== 'number' || !Number.isFinite(rate) || rate < 0) {
    throw new RangeError(`kg.train.fit: schedule(${n}) returned ${describe(rate)}, which is not a learning rate (a finite number >= 0)`);
  }
  optimizer.lr = rate;
}

function formatRate(r: number): string {
  return r >= 100 ? r.toFixed(0) : r.toPrecision(3);
}

/**
 * Trains `model` for `epochs` epochs and returns one EpochMetrics per epoch. Prints the tutorial's
 * line `Epoch 0. Loss: ..., Train_acc ..., Test_acc ...` after each epoch.
 */
export async function fit(model: Module, options: FitOptions): Promise<EpochMetrics[]> {
  checkFitArguments(model, options);
  const epochs = options.epochs ?? 10;
  const startEpoch = options.startEpoch ?? 0;
  const reduction = options.lossReduction ?? 'sum';
  const log = options.log ?? ((line: string) => console.log(line));
  const showProgress = options.progress ?? Boolean(process.stderr.isTTY);
  const trainEval = options.trainEval ?? options.train;
  const device = options.train.device;
  const results: EpochMetrics[] = [];
  // The tutorial restarts the moving average at each epoch's first batch (i == 0).
  const movingLoss = new MovingAverage(0.99);
  // Steps taken so far (what the schedule is a function of), as if the run had started at epoch 0.
  let steps = startEpoch * stepsPerEpoch(options.train);
  // With a compiled step, the step whose loss is still on its way (its batch is kept until then).
  let lateStep: LateStep | null = null;
  let epoch = startEpoch;
  const compiled =
    (options.compile ?? true) && device === 'cuda' && options.optimizer.params[0]?.device === 'cuda'
      ? compileStep({ model, optimizer: options.optimizer, lossReduction: reduction })
      : null;
  try {
    await runEpochs();
  } finally {
    compiled?.dispose();
  }
  return results;

  async function runEpochs(): Promise<void> {

  for (let e = startEpoch; e < startEpoch + epochs; e++) {
    epoch = e;
    model.train();
    movingLoss.reset();
    const total = options.train.length;
    const bar = showProgress
      ? new cliProgress.SingleBar(
          {
            stream: process.stderr,
            format: `Epoch ${e} [{bar}] {value}/{total} batches | loss {loss} | {rate} img/s | ETA {eta_formatted}`,
            hideCursor: true,
            clearOnComplete: true,
            etaBuffer: 50,
          },
          cliProgress.Presets.shades_classic,
        )
      : null;
    bar?.start(total, 0, { loss: '-', rate: '-' });

    const t0 = process.hrtime.bigint();
    let images = 0;
    let i = 0;
    try {
      for (const batch of options.train.batches(e)) {
        try {
          // Batch norm cannot train on a single example (its variance is undefined): a last
          // partial batch of size 1 is skipped. (The CLI avoids it with dropLast.)
          if (batch.x.shape[0] < 2) continue;
          if (options.schedule) applySchedule(options.optimizer, options.schedule, steps);
          if (compiled) {
            // The loss that comes back is the previous step's: checked and averaged a step late.
            const previous = lateStep;
            lateStep = { x: batch.x, i, lr: options.optimizer.lr };
            try {
              takeLoss(previous, () => compiled(batch.x, batch.y));
            } finally {
              previous?.x.dispose();
            }
          } else {
            let meanLoss: number;
            try {
              ({ meanLoss } = trainStep(model, options.optimizer, batch.x, batch.y, reduction));
            } catch (err) {
              if (err instanceof NonFiniteError) throw nonFiniteStepError(batch.x, e, i, options.optimizer.lr, { cause: err });
              throw err;
            }
            if (!Number.isFinite(meanLoss)) throw nonFiniteStepError(batch.x, e, i, options.optimizer.lr, { loss: meanLoss });
            movingLoss.update(meanLoss);
          }
          steps++;
          images += batch.x.shape[0];
        } finally {
          if (lateStep?.x !== batch.x) batch.x.dispose();
          batch.y.dispose();
        }
        i++;
        if (bar) {
          const secs = Number(process.hrtime.bigint() - t0) / 1e9;
          bar.update(i, { loss: movingLoss.value.toFixed(4), rate: formatRate(images / Math.max(secs, 1e-9)) });
        }
        await yieldToEventLoop();
      }
      if (compiled) takeLoss(lateStep, () => compiled.flush());
    } finally {
      lateStep?.x.dispose();
      lateStep = null;
      bar?.stop();
    }
    if (images === 0) {
      throw new RangeError(
        `kg.train.fit: epoch ${e} trained on nothing: its ${total} batch${total === 1 ? ' has' : 'es have'} fewer than 2 examples each, ` +
          `and batch norm needs 2 to compute a variance (${options.train.size} examples, batchSize ${options.train.batchSize})`,
      );
    }
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;

    const testAccuracy = evaluateAccuracy(model, options.test);
    const trainAccuracy = evaluateAccuracy(model, trainEval);
    const m: EpochMetrics = {
      epoch: e,
      loss: movingLoss.value,
      trainAccuracy,
      testAccuracy,
      seconds,
      imagesPerSecond: images / seconds,
      device,
    };
    results.push(m);
    log(formatEpochLine(m));
    if (options.onEpoch) await options.onEpoch(m);
  }
  }

  /** Reads a step's loss through `read`, checks it and adds it to the average (`step`: which it was). */
  function takeLoss(step: LateStep | null, read: () => number | null): void {
    let total: number | null;
    try {
      total = read();
    } catch (err) {
      if (err instanceof NonFiniteError && step) throw nonFiniteStepError(step.x, epoch, step.i, step.lr, { cause: err });
      throw err;
    }
    if (total === null || step === null) return;
    const meanLoss = reduction === 'sum' ? total / step.x.shape[0] : total;
    if (!Number.isFinite(meanLoss)) throw nonFiniteStepError(step.x, epoch, step.i, step.lr, { loss: meanLoss });
    movingLoss.update(meanLoss);
  }
}

/** What the loop remembers of a step whose loss it reads a step later. */
interface LateStep {
  x: Tensor;
  i: number;
  lr: number;
}

const FIT_OPTIONS = ['optimizer', 'schedule', 'train', 'test', 'trainEval', 'epochs', 'startEpoch', 'lossReduction', 'progress', 'log', 'onEpoch', 'compile'] as const;

function checkFitArguments(model: Module, options: FitOptions): void {
  const fn = 'kg.train.fit';
  if (!(model instanceof Module)) throw new TypeError(`${fn}: model must be a kg.nn.Module, got ${describe(model)}`);
  if (options === undefined) throw new TypeError(`${fn}: options { optimizer, train, test } are required`);
  const opts = readOptions(options, fn, FIT_OPTIONS);
  if (!(opts.optimizer instanceof Optimizer)) throw new TypeError(`${fn}: optimizer must be a kg.optim optimizer (SGD, Adam, AdamW), got ${describe(opts.optimizer)}`);
  if (opts.schedule !== undefined && typeof opts.schedule !== 'function') {
    throw new TypeError(`${fn}: schedule must be a function (step) => lr, e.g. kg.optim.schedules.cosine(...), got ${describe(opts.schedule)}`);
  }
  for (const name of ['train', 'test'] as const) {
    if (!(opts[name] instanceof DataLoader)) throw new TypeError(`${fn}: ${name} must be a kg.data.DataLoader, got ${describe(opts[name])}`);
  }
  if (opts.trainEval !== undefined && !(opts.trainEval instanceof DataLoader)) {
    throw new TypeError(`${fn}: trainEval must be a kg.data.DataLoader, got ${describe(opts.trainEval)}`);
  }
  if (opts.epochs !== undefined) checkPositiveInt(opts.epochs, fn, 'epochs');
  if (opts.startEpoch !== undefined) checkPositiveInt(opts.startEpoch, fn, 'startEpoch', 0);
  if (opts.lossReduction !== undefined && opts.lossReduction !== 'sum' && opts.lossReduction !== 'mean') {
    throw new TypeError(`${fn}: lossReduction must be 'sum' or 'mean', got ${describe(opts.lossReduction)}`);
  }
  if (opts.compile !== undefined && typeof opts.compile !== 'boolean') {
    throw new TypeError(`${fn}: compile must be true or false, got ${describe(opts.compile)}`);
  }
  if (opts.progress !== undefined && typeof opts.progress !== 'boolean') {
    throw new TypeError(`${fn}: progress must be true or false, got ${describe(opts.progress)}`);
  }
  for (const name of ['log', 'onEpoch'] as const) {
    if (opts[name] !== undefined && typeof opts[name] !== 'function') {
      throw new TypeError(`${fn}: ${name} must be a function, got ${describe(opts[name])}`);
    }
  }
}
