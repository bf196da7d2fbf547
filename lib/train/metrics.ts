// Bookkeeping for training runs: the tutorial's moving-average loss, accuracy counting, and the
// per-epoch record written to metrics.json.

/** One epoch's results, as written to metrics.json. */
export interface EpochMetrics {
  /** 0-based, like the tutorial's `Epoch 0.` line. */
  epoch: number;
  /** Moving average (0.99 / 0.01) of the per-batch mean loss at the end of the epoch. */
  loss: number;
  /** Accuracy on the training set, evaluated in inference mode after the epoch. */
  trainAccuracy: number;
  /** Accuracy on the test set, in inference mode. */
  testAccuracy: number;
  /** Wall-clock seconds of the epoch's training pass (evaluation excluded). */
  seconds: number;
  /** Training images per second over the epoch's training pass. */
  imagesPerSecond: number;
  device: string;
}

/** Everything about a run: its configuration and one record per finished epoch. */
export interface RunMetrics {
  model: string;
  device: string;
  batchSize: number;
  /** The base rate (for a schedule: the rate it starts from, or onecycle's peak). */
  learningRate: number;
  /** 'sgd', 'adam' or 'adamw' (older files, from before there was a choice: absent, meaning sgd). */
  optimizer?: string;
  /** SGD only. */
  momentum?: number;
  nesterov?: boolean;
  weightDecay?: number;
  /** The --schedule name ('none' when the rate was constant). */
  schedule?: string;
  seed: number;
  trainSize: number;
  testSize: number;
  epochs: EpochMetrics[];
  /**
   * The checkpoint written with this record and the epoch it holds (its metadata says the same).
   * Both files are fsynced before either is renamed into place, so they agree unless a run is
   * killed between the two renames; the checkpoint's own `epoch` metadata is then the one to trust.
   */
  checkpoint?: { file: string; epoch: number };
}

/**
 * The tutorial's loss smoothing: the first value is taken as is, then
 * `value = 0.99 * value + 0.01 * x`. (`decay` sets the 0.99.)
 */
export class MovingAverage {
  private current: number | null = null;
  constructor(readonly decay = 0.99) {
    if (typeof decay !== 'number' || !(decay >= 0 && decay < 1)) {
      throw new RangeError(`kg.train.MovingAverage: decay must be a number in [0, 1), got ${String(decay)}`);
    }
  }

  update(x: number): number {
    this.current = this.current === null ? x : this.decay * this.current + (1 - this.decay) * x;
    return this.current;
  }

  /** The current average (NaN before the first update). */
  get value(): number {
    return this.current ?? NaN;
  }

  reset(): void {
    this.current = null;
  }
}

/** Counts correct predictions. */
export class AccuracyCounter {
  correct = 0;
  total = 0;

  /** Adds a batch of predicted and true class indices. */
  update(predicted: ArrayLike<number>, labels: ArrayLike<number>): void {
    for (const [name, v] of [['predicted', predicted], ['labels', labels]] as const) {
      if (v === null || typeof v !== 'object' || typeof v.length !== 'number') {
        throw new TypeError(`kg.train.AccuracyCounter.update: ${name} must be an array of class indices, got ${v === null ? 'null' : typeof v}`);
      }
    }
    if (predicted.length !== labels.length) {
      throw new RangeError(`kg.train.AccuracyCounter.update: ${predicted.length} predictions for ${labels.length} labels`);
    }
    for (let i = 0; i < predicted.length; i++) if (predicted[i] === labels[i]) this.correct++;
    this.total += labels.length;
  }

  /** correct / total (NaN when empty). */
  get value(): number {
    return this.total === 0 ? NaN : this.correct / this.total;
  }
}

/** The tutorial's epoch line: `Epoch 0. Loss: 0.0604..., Train_acc 0.988..., Test_acc 0.988...`. */
export function formatEpochLine(m: Pick<EpochMetrics, 'epoch' | 'loss' | 'trainAccuracy' | 'testAccuracy'>): string {
  if (m === null || typeof m !== 'object') throw new TypeError(`kg.train.formatEpochLine: m must be an EpochMetrics object, got ${m === null ? 'null' : typeof m}`);
  return `Epoch ${m.epoch}. Loss: ${m.loss}, Train_acc ${m.trainAccuracy}, Test_acc ${m.testAccuracy}`;
}
