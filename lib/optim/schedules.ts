// Learning-rate schedules: each is a pure function of its options returning `(step) => lr`, where
// step counts optimizer steps from 0 (fit() passes the number of steps taken so far, across
// epochs, and sets the optimizer's lr to the result before each step). Options are checked when
// the schedule is made, the step when it is called.
import { checkPositiveInt } from '../ops/check';
import { describe, readOptions } from '../options';
import { checkNumber } from './optimizer';

/** The learning rate for optimizer step `step` (0, 1, 2, ...). */
export type Schedule = (step: number) => number;

const positive = (x: number) => x > 0;
const nonNegative = (x: number) => x >= 0;

function checkStep(fn: string, step: unknown): number {
  if (typeof step !== 'number' || !Number.isSafeInteger(step) || step < 0) {
    throw new RangeError(`${fn}: the step must be an integer >= 0, got ${describe(step)}`);
  }
  return step;
}

function required<T>(options: T | undefined, fn: string, what: string): T {
  if (options === undefined) throw new TypeError(`${fn}: options ${what} are required`);
  return options;
}

/** From `start` at pct = 0 to `end` at pct = 1 along half a cosine. */
function cosineBetween(start: number, end: number, pct: number): number {
  return end + ((start - end) * (1 + Math.cos(Math.PI * pct))) / 2;
}

export interface StepScheduleOptions {
  /** Learning rate of the first stepSize steps (> 0). */
  lr: number;
  /** Steps between two decays (a positive integer). */
  stepSize: number;
  /** Factor of each decay, in (0, 1] (default 0.1). */
  gamma?: number;
}

/** Step decay (PyTorch's StepLR): lr * gamma^floor(step / stepSize). */
export function step(options: StepScheduleOptions): Schedule {
  const fn = 'kg.optim.schedules.step';
  const o = readOptions(required(options, fn, '{ lr, stepSize }'), fn, ['lr', 'stepSize', 'gamma']);
  const lr = checkNumber(o.lr, fn, 'lr', positive, 'a positive number');
  const stepSize = checkPositiveInt(o.stepSize, fn, 'stepSize');
  const gamma = checkNumber(o.gamma ?? 0.1, fn, 'gamma', (x) => x > 0 && x <= 1, 'in (0, 1]');
  return (s) => lr * gamma ** Math.floor(checkStep(fn, s) / stepSize);
}

export interface CosineScheduleOptions {
  /** Learning rate at step 0 (> 0). */
  lr: number;
  /** Steps of the decay (a positive integer); from then on the rate stays at minLr. */
  steps: number;
  /** The rate reached at `steps`, in [0, lr) (default 0). */
  minLr?: number;
}

/**
 * Cosine decay (Loshchilov & Hutter's SGDR without restarts, PyTorch's CosineAnnealingLR):
 * minLr + (lr - minLr) * (1 + cos(pi * step / steps)) / 2, and minLr after `steps`.
 */
export function cosine(options: CosineScheduleOptions): Schedule {
  const fn = 'kg.optim.schedules.cosine';
  const o = readOptions(required(options, fn, '{ lr, steps }'), fn, ['lr', 'steps', 'minLr']);
  const lr = checkNumber(o.lr, fn, 'lr', positive, 'a positive number');
  const steps = checkPositiveInt(o.steps, fn, 'steps');
  const minLr = checkNumber(o.minLr ?? 0, fn, 'minLr', (x) => x >= 0 && x < lr, `in [0, lr = ${lr})`);
  return (s) => cosineBetween(lr, minLr, Math.min(checkStep(fn, s), steps) / steps);
}

export interface OneCycleScheduleOptions {
  /** The peak learning rate (> 0). */
  maxLr: number;
  /** Steps of the whole cycle (a positive integer); from then on the rate stays at its final value. */
  steps: number;
  /** Fraction of the steps spent rising to maxLr, in (0, 1) (default 0.3). */
  pctStart?: number;
  /** The rate starts at maxLr / divFactor (> 0, default 25). */
  divFactor?: number;
  /** and ends at maxLr / (divFactor * finalDivFactor) (> 0, default 1e4). */
  finalDivFactor?: number;
}

/**
 * The one-cycle policy (Smith & Topin, 2019) as PyTorch's OneCycleLR with cosine annealing: from
 * maxLr / divFactor up to maxLr at step pctStart * steps - 1, then down to
 * maxLr / (divFactor * finalDivFactor) at step steps - 1, each half along a cosine.
 */
export function oneCycle(options: OneCycleScheduleOptions): Schedule {
  const fn = 'kg.optim.schedules.oneCycle';
  const o = readOptions(required(options, fn, '{ maxLr, steps }'), fn, ['maxLr', 'steps', 'pctStart', 'divFactor', 'finalDivFactor']);
  const maxLr = checkNumber(o.maxLr, fn, 'maxLr', positive, 'a positive number');
  const steps = checkPositiveInt(o.steps, fn, 'steps');
  const pctStart = checkNumber(o.pctStart ?? 0.3, fn, 'pctStart', (x) => x > 0 && x < 1, 'in (0, 1)');
  const divFactor = checkNumber(o.divFactor ?? 25, fn, 'divFactor', positive, 'a positive number');
  const finalDivFactor = checkNumber(o.finalDivFactor ?? 1e4, fn, 'finalDivFactor', positive, 'a positive number');
  const initial = maxLr / divFactor;
  const final = initial / finalDivFactor;
  const peakStep = pctStart * steps - 1;
  const lastStep = steps - 1;
  return (s) => {
    const t = Math.min(checkStep(fn, s), lastStep);
    // A cycle too short for a rising phase (peakStep <= 0) starts at the peak.
    if (t <= peakStep) return cosineBetween(initial, maxLr, peakStep > 0 ? t / peakStep : 1);
    return cosineBetween(maxLr, final, (t - peakStep) / (lastStep - peakStep));
  };
}

export interface WarmupScheduleOptions {
  /** Steps of the linear warmup (a positive integer). */
  steps: number;
  /** The rate reached at the end of the warmup and kept afterwards (> 0); or give `then`. */
  lr?: number;
  /** The schedule that follows the warmup, started at its own step 0; the warmup rises to its first rate. */
  then?: Schedule;
}

/**
 * Linear warmup (Goyal et al., 2017): target * (step + 1) / steps for the first `steps` steps,
 * where target is `lr` or `then(0)`; afterwards `lr`, or `then(step - steps)`.
 */
export function warmup(options: WarmupScheduleOptions): Schedule {
  const fn = 'kg.optim.schedules.warmup';
  const o = readOptions(required(options, fn, '{ steps, lr } or { steps, then }'), fn, ['steps', 'lr', 'then']);
  const steps = checkPositiveInt(o.steps, fn, 'steps');
  if ((o.lr === undefined) === (o.then === undefined)) {
    throw new TypeError(`${fn}: give either lr (the rate after the warmup) or then (the schedule after it), not ${o.lr === undefined ? 'neither' : 'both'}`);
  }
  if (o.then !== undefined && typeof o.then !== 'function') {
    throw new TypeError(`${fn}: then must be a schedule, (step) => lr, got ${describe(o.then)}`);
  }
  const then = o.then;
  const lr = then === undefined ? checkNumber(o.lr, fn, 'lr', positive, 'a positive number') : checkNumber(then(0), fn, 'then(0)', nonNegative, 'a finite number >= 0');
  return (s) => {
    const t = checkStep(fn, s);
    if (t < steps) return (lr * (t + 1)) / steps;
    return then === undefined ? lr : then(t - steps);
  };
}
