// Parameter initialization helpers shared by the layers (host-side, seedable, then uploaded).
import { Device, parseDevice } from '../device';
import { describe, readOptions } from '../options';
import { tensor } from '../ops/creation';
import { generator, Random } from '../random';
import type { Tensor } from '../tensor';

export interface InitOptions {
  /** Where the parameters live (default: `kg.defaultDevice()`). */
  device?: Device;
  /** Seed for the initial values; without one, the global generator (kg.manualSeed) is used. */
  seed?: number;
}

/**
 * A layer's options: InitOptions plus the layer's own `extra` keys, unknown keys rejected; the
 * device and seed are checked here so that every layer reports them the same way.
 */
export function readInitOptions<T extends InitOptions>(options: T | undefined, fn: string, extra: readonly (keyof T & string)[]): T {
  const opts = readOptions(options, fn, ['device', 'seed', ...extra] as (keyof T & string)[]);
  if (opts.device !== undefined) parseDevice(opts.device, fn);
  if (opts.seed !== undefined && (typeof opts.seed !== 'number' || !Number.isSafeInteger(opts.seed))) {
    throw new TypeError(`${fn}: seed must be an integer, got ${describe(opts.seed)}`);
  }
  return opts;
}

/** An optional boolean option. */
export function checkBoolean(v: unknown, fallback: boolean, fn: string, name: string): boolean {
  if (v === undefined) return fallback;
  if (typeof v !== 'boolean') throw new TypeError(`${fn}: ${name} must be true or false, got ${describe(v)}`);
  return v;
}

function rng(seedOrRandom: number | Random | undefined): Random {
  return seedOrRandom instanceof Random ? seedOrRandom : generator(seedOrRandom);
}

/** PyTorch's default for conv and linear layers: U(-1/sqrt(fanIn), 1/sqrt(fanIn)). */
export function uniformFanIn(shape: number[], fanIn: number, device: Device | undefined, seed: number | Random | undefined): Tensor {
  const bound = 1 / Math.sqrt(fanIn);
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(rng(seed).fillUniform(new Float32Array(n), -bound, bound), shape, { device });
}

/** Normal samples N(mean, std²). */
export function normal(shape: number[], mean: number, std: number, device: Device | undefined, seed: number | Random | undefined): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(rng(seed).fillNormal(new Float32Array(n), mean, std), shape, { device });
}

/** Overwrites `t` in place with N(mean, std²) samples drawn from `random`. */
export function normal_(t: Tensor, mean: number, std: number, random: Random): Tensor {
  const values = random.fillNormal(new Float32Array(t.numel), mean, std);
  const src = tensor(values, t.shape, { device: 'cpu' });
  t.copy_(src);
  src.dispose();
  return t;
}
