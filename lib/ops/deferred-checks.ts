// Deferred non-finite checks: on the GPU, a training step cannot afford to read values back to
// check them (each read waits for the GPU, and a captured step cannot read at all). Inside
// withDeferredChecks the batch-norm statistics check runs as a small kernel that records the first
// failure of the step in a device flag; the training loop reads the flag together with the loss,
// a step late, and throws the same NonFiniteError then. The step that failed has already updated
// the parameters and the running statistics by then: the loop stops there.
import type { Device } from '../device';
import { native } from '../native';
import { NonFiniteError } from '../non-finite';
import { formatShape } from '../shape';
import { Tensor } from '../tensor';
import { zeros } from './creation';

/** The flag of one training loop, and what the step that writes it knows of its layers. */
export class DeferredChecks {
  /** (kind, channel, layer) of the first failure; kind 0: none. */
  readonly flag: Tensor;
  private layers: string[] = [];

  constructor(readonly device: Device) {
    this.flag = zeros([3], { device }).keep();
  }

  /** Starts recording a step: its layers are numbered from 0. Returns the list they go to. */
  beginStep(): string[] {
    this.layers = [];
    return this.layers;
  }

  /** Queues the check of one batch-norm layer's statistics (the variance may be null). */
  batchStatistics(x: Tensor, eps: number, mean: Tensor, invstd: Tensor, variance: Tensor | null): void {
    const layer = this.layers.length;
    this.layers.push(`x ${formatShape(x.shape)}, eps ${eps}`);
    native.flagNonFiniteStats(mean.numel, mean.storage, invstd.storage, variance ? variance.storage : null, layer, this.flag.storage);
  }

  /**
   * The error for flag values read back (null when none is set), naming the layer from `layers`
   * (the list beginStep returned for the step that ran). Clears the flag when one was set.
   */
  errorFor(values: ArrayLike<number>, layers: readonly string[]): NonFiniteError | null {
    const [kind, channel, layer] = [values[0], values[1], values[2]];
    if (kind === 0) return null;
    this.flag.storageForWrite().write(new Float32Array(3));
    const where = `batchNorm: channel ${channel} of batch-norm layer ${layer + 1} of the step (${layers[layer] ?? 'unknown'})`;
    const after = '; found when the step\'s loss was read, after its updates were applied';
    switch (kind) {
      case 1:
        return new NonFiniteError(`${where} has a non-finite batch mean: the batch holds NaN or infinite values${after}`);
      case 2:
        return new NonFiniteError(`${where} has zero variance and eps is 0, so it cannot be normalized; use eps > 0${after}`);
      case 3:
        return new NonFiniteError(`${where} has a variance too large for float32 to normalize (values of magnitude near 1e38); scale the input down${after}`);
      default:
        return new NonFiniteError(`${where} has a variance too large for float32 (values of magnitude near 1e38), which the running variance cannot hold${after}`);
    }
  }

  dispose(): void {
    this.flag.dispose();
  }
}

let active: DeferredChecks | null = null;

/** The deferred checks in force for tensors on `device`, or null: check at once. */
export function deferredChecks(device: Device): DeferredChecks | null {
  return active !== null && active.device === device ? active : null;
}

/** Runs `fn` with the checks of `checks` deferred to its flag. */
export function withDeferredChecks<T>(checks: DeferredChecks, fn: () => T): T {
  const previous = active;
  active = checks;
  try {
    return fn();
  } finally {
    active = previous;
  }
}
