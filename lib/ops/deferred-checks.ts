// Deferred non-finite checks: on the GPU, a training step cannot afford to read values back to
// check them (each read waits for the GPU, and a captured step cannot read at all). Inside
// withDeferredChecks, each batch-norm layer's forward kernel writes the failure kind of every
// channel of its statistics (0: fine) to its own range of one status buffer; the training loop
// copies the buffer to the host together with the loss and, a step late, throws the NonFiniteError
// of the first failure (in layer order, then channel order). The step that failed has already
// updated the parameters, and the running statistics of the channels that did not fail, by then:
// the loop stops there.
import type { Device } from '../device';
import type { Storage } from '../native';
import { NonFiniteError } from '../non-finite';
import { formatShape } from '../shape';
import { Tensor } from '../tensor';
import { tensor, zeros } from './creation';

/** One batch-norm layer of a step: its words are status[offset, offset + channels). */
export interface CheckedLayer {
  readonly description: string;
  readonly offset: number;
  readonly channels: number;
}

/** Status words to start with: enough for most networks, so that the buffer seldom grows. */
const INITIAL_WORDS = 256;

/** The status buffer of one training loop, and what the step that writes it knows of its layers. */
export class DeferredChecks {
  private buffer: Tensor;
  private layers: CheckedLayer[] = [];
  private used = 0;
  private captured = false;

  constructor(readonly device: Device) {
    this.buffer = zeros([INITIAL_WORDS], { device }).keep();
  }

  /**
   * The status words, for the copy to the host after a step. Each step writes the range of each
   * of its layers in full, so words beyond the step's layers are stale, and never read.
   */
  get status(): Tensor {
    return this.buffer;
  }

  /** Starts recording a step: its layers take the status words from 0 on. Returns their list. */
  beginStep(): readonly CheckedLayer[] {
    this.layers = [];
    this.used = 0;
    return this.layers;
  }

  /**
   * From now on the buffer is written by a captured step, which holds its address: it may no
   * longer be replaced by a larger one.
   */
  pinForCapture(): void {
    this.captured = true;
  }

  /** Reserves the status words of the next batch-norm layer of the step: where its kernel writes them. */
  reserve(x: Tensor, eps: number): { status: Storage; offset: number } {
    const channels = x.shape[1];
    const offset = this.used;
    if (offset + channels > this.buffer.numel) this.grow(offset + channels);
    this.used += channels;
    this.layers.push({ description: `x ${formatShape(x.shape)}, eps ${eps}`, offset, channels });
    return { status: this.buffer.storageForWrite(), offset };
  }

  /**
   * The error for status words read back (null when every channel was fine), naming the layer and
   * channel from `layers` (the list beginStep returned for the step that wrote them).
   */
  errorFor(values: ArrayLike<number>, layers: readonly CheckedLayer[]): NonFiniteError | null {
    for (let index = 0; index < layers.length; index++) {
      const { offset, channels, description } = layers[index];
      for (let ch = 0; ch < channels; ch++) {
        const kind = values[offset + ch];
        if (kind !== 0) return stepError(kind, ch, index, description);
      }
    }
    return null;
  }

  dispose(): void {
    this.buffer.dispose();
  }

  /**
   * Replaces the buffer by one of at least `words` words, outside a capture only: the first step
   * of a compiled step runs eagerly before any capture, and its captures have the same layers. The
   * words this step's earlier layers wrote are carried over, through the host: it happens on a
   * loop's first step, or when a step has more batch-norm channels than any step before it.
   */
  private grow(words: number): void {
    if (this.captured) {
      throw new Error(
        `batchNorm: this step's batch-norm layers need ${words} status words, more than the ${this.buffer.numel} ` +
          'the step was first captured with; the model must run the same batch-norm layers on every step',
      );
    }
    const next = new Float32Array(Math.max(words, 2 * this.buffer.numel));
    if (this.used > 0) next.set(this.buffer.toArray().subarray(0, this.used));
    const grown = tensor(next, [next.length], { device: this.device }).keep();
    this.buffer.dispose();
    this.buffer = grown;
  }
}

function stepError(kind: number, channel: number, layer: number, description: string): NonFiniteError {
  const where = `batchNorm: channel ${channel} of batch-norm layer ${layer + 1} of the step (${description})`;
  // The parameters and the other channels' running statistics were updated; this channel's were not.
  const after = '; found when the step\'s loss was read, after the step\'s updates were applied (but not to this channel\'s running statistics)';
  // Zero variance is a failure only with eps 0 (invstd is infinite then).
  return new NonFiniteError(`${where} ${statusProblem(kind, 0)}${after}`);
}

/**
 * What a channel's batch-norm status word (kg/batchnorm_update.h) says of it, in the same words
 * whether the check runs at once (naming the batch mean, when given) or a step late.
 */
export function statusProblem(kind: number, eps: number, mean?: number): string {
  switch (kind) {
    case 1:
      return `${mean === undefined ? 'has a non-finite batch mean' : `has a batch mean of ${mean}`}: the batch holds NaN or infinite values`;
    case 2:
      return `has zero variance and eps is ${eps}, so it cannot be normalized; use eps > 0`;
    case 3:
      // invstd 0 means a variance that overflowed where it was computed: the output would be beta.
      return 'has a variance too large for float32 to normalize (values of magnitude near 1e38); scale the input down';
    default:
      return 'has a variance too large for float32 (values of magnitude near 1e38), which the running variance cannot hold';
  }
}

let active: DeferredChecks | null = null;

/** The deferred checks in force for tensors on `device`, or null: check at once. */
export function deferredChecks(device: Device): DeferredChecks | null {
  return active !== null && active.device === device ? active : null;
}

/** Runs `fn` with the checks of `checks` deferred to its status buffer. */
export function withDeferredChecks<T>(checks: DeferredChecks, fn: () => T): T {
  const previous = active;
  active = checks;
  try {
    return fn();
  } finally {
    active = previous;
  }
}
