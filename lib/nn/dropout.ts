// Dropout layer: seeded, so that a run's masks reproduce; the identity in eval mode.
import { mixSeed } from '../data/sampler';
import { checkDropoutP, dropout } from '../ops/dropout';
import { describe, readOptions } from '../options';
import type { Tensor } from '../tensor';
import { Module } from './module';

export interface DropoutModuleOptions {
  /** Seed of the masks (default 0). Call k of forward() in training mode uses the stream (seed, k). */
  seed?: number;
}

/** Zeroes each element with probability p in training mode and scales the rest by 1 / (1 - p). */
export class Dropout extends Module {
  readonly p: number;
  readonly seed: number;
  /** Training-mode forward calls so far: the next mask is drawn from (seed, calls). */
  calls = 0;

  constructor(p = 0.5, options?: DropoutModuleOptions) {
    super();
    const fn = 'kg.nn.Dropout';
    this.p = checkDropoutP(p, fn);
    const opts = readOptions(options, fn, ['seed']);
    const seed = opts.seed ?? 0;
    if (typeof seed !== 'number' || !Number.isSafeInteger(seed)) throw new TypeError(`${fn}: seed must be an integer, got ${describe(seed)}`);
    this.seed = seed;
  }

  forward(x: Tensor): Tensor {
    if (!this.training) return dropout(x, { p: this.p, seed: 0, training: false });
    return dropout(x, { p: this.p, seed: mixSeed(this.seed, this.calls++) });
  }

  override toString(): string {
    return `Dropout(p=${this.p})`;
  }
}
