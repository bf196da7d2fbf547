// Index logic of the DataLoader, free of tensors: seeded Fisher-Yates permutations (with the
// library's xoshiro128** generator, lib/random.ts) and the split of an epoch into batches.
import { checkPositiveInt } from '../ops/check';
import { Random } from '../random';

/** Mixes a seed and a stream number (e.g. the epoch) into one well-spread 32-bit seed. */
export function mixSeed(seed: number, stream: number): number {
  let h = (seed >>> 0) ^ Math.imul((stream + 1) >>> 0, 0x9e3779b9);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** A uniformly random permutation of 0..n-1 (Fisher-Yates), the same for the same seed everywhere. */
export function permutation(n: number, seed: number): Int32Array {
  checkPositiveInt(n, 'kg.data.permutation', 'n', 0);
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  return new Random(seed).shuffle(p);
}

export interface BatchPlan {
  /** The dataset size the plan covers. */
  count: number;
  batchSize: number;
  shuffle: boolean;
  seed: number;
  dropLast: boolean;
}

/** Throws unless the plan describes batches that exist (a batch size of 0 would never end). */
function checkPlan(plan: BatchPlan, fn: string): void {
  if (plan === null || typeof plan !== 'object') throw new TypeError(`${fn}: plan must be an object { count, batchSize, shuffle, seed, dropLast }`);
  checkPositiveInt(plan.count, fn, 'plan.count', 0);
  checkPositiveInt(plan.batchSize, fn, 'plan.batchSize');
}

/** Order of the examples in `epoch`: identity without shuffling, else a permutation seeded by (seed, epoch). */
export function epochOrder(plan: BatchPlan, epoch: number): Int32Array {
  checkPlan(plan, 'kg.data.epochOrder');
  if (!plan.shuffle) {
    const p = new Int32Array(plan.count);
    for (let i = 0; i < plan.count; i++) p[i] = i;
    return p;
  }
  return permutation(plan.count, mixSeed(plan.seed, epoch));
}

/** Number of batches per epoch. */
export function numBatches(plan: BatchPlan): number {
  checkPlan(plan, 'kg.data.numBatches');
  return plan.dropLast ? Math.floor(plan.count / plan.batchSize) : Math.ceil(plan.count / plan.batchSize);
}

/** The batches of `epoch` as index arrays; the last one is partial unless `dropLast`. */
export function epochBatches(plan: BatchPlan, epoch: number): Int32Array[] {
  checkPlan(plan, 'kg.data.epochBatches');
  const order = epochOrder(plan, epoch);
  const out: Int32Array[] = [];
  const n = numBatches(plan);
  for (let b = 0; b < n; b++) out.push(order.subarray(b * plan.batchSize, Math.min(plan.count, (b + 1) * plan.batchSize)));
  return out;
}
