// Dropout layer: seeded, so that a run's masks reproduce; the identity in eval mode.
import { mixSeed } from '../data/sampler';
import { zeros } from '../ops/creation';
import { checkDropoutP, dropout } from '../ops/dropout';
import { describe, readOptions } from '../options';
import type { Tensor } from '../tensor';
import { Module } from './module';

export interface DropoutModuleOptions {
  /** Seed of the masks (default 0). Call k of forward() in training mode uses the stream (seed, k). */
  seed?: number;
}

// The call counter lives in a buffer, so that checkpoints carry it and a resumed run draws the
// masks an uninterrupted one would. float32 holds integers exactly only up to 2^24, so the count
// is kept as two such digits: [count mod 2^24, floor(count / 2^24)], exact up to 2^48 calls.
const DIGIT = 2 ** 24;

/** Zeroes each element with probability p in training mode and scales the rest by 1 / (1 - p). */
export class Dropout extends Module {
  readonly p: number;
  readonly seed: number;
  private count = 0;

  constructor(p = 0.5, options?: DropoutModuleOptions) {
    super();
    const fn = 'kg.nn.Dropout';
    this.p = checkDropoutP(p, fn);
    const opts = readOptions(options, fn, ['seed']);
    const seed = opts.seed ?? 0;
    if (typeof seed !== 'number' || !Number.isSafeInteger(seed)) throw new TypeError(`${fn}: seed must be an integer, got ${describe(seed)}`);
    this.seed = seed;
    this.registerBuffer('calls', zeros([2]));
  }

  /** Training-mode forward calls so far: the next mask is drawn from (seed, calls). */
  get calls(): number {
    return this.count;
  }

  forward(x: Tensor): Tensor {
    if (!this.training) return dropout(x, { p: this.p, seed: 0, training: false });
    const seed = mixSeed(this.seed, this.count++);
    this.buffer('calls').storageForWrite().write(Float32Array.of(this.count % DIGIT, Math.floor(this.count / DIGIT)));
    return dropout(x, { p: this.p, seed });
  }

  protected override afterLoadStateDict(): void {
    const [low, high] = this.buffer('calls').toArray();
    const ok = (d: number) => Number.isInteger(d) && d >= 0 && d < DIGIT;
    if (!ok(low) || !ok(high)) {
      throw new RangeError(`kg.nn.Dropout: the loaded calls buffer [${low}, ${high}] is not a call count (two integer digits in [0, 2^24))`);
    }
    this.count = high * DIGIT + low;
  }

  override toString(): string {
    return `Dropout(p=${this.p})`;
  }
}
