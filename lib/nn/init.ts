// Parameter initialization helpers shared by the layers (host-side, seedable, then uploaded).
import type { Device } from '../device';
import { tensor } from '../ops/creation';
import { generator, Random } from '../random';
import type { Tensor } from '../tensor';

export interface InitOptions {
  /** Where the parameters live (default: `kg.defaultDevice()`). */
  device?: Device;
  /** Seed for the initial values; without one, the global generator (kg.manualSeed) is used. */
  seed?: number;
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
