// The optimizer options of `kernelgrad train` (--optimizer, --momentum, --nesterov, --weight-decay,
// --schedule): their parsers, the combinations that make no sense (a UsageError, exit code 2), and
// the optimizer and schedule they describe, with the schedule sized from the epochs and batches.
import { InvalidArgumentError } from 'commander';
import type { Optimizer } from '../optim/optimizer';
import type { Schedule } from '../optim/schedules';
import type { Tensor } from '../tensor';
import { UsageError } from './options';

export const OPTIMIZERS = ['sgd', 'adam', 'adamw'] as const;
export type OptimizerName = (typeof OPTIMIZERS)[number];
export const SCHEDULES = ['none', 'step', 'cosine', 'onecycle', 'warmup'] as const;
export type ScheduleName = (typeof SCHEDULES)[number];

function oneOf<T extends string>(names: readonly T[]): (value: string) => T {
  return (value) => {
    const v = value.toLowerCase() as T;
    if (!names.includes(v)) throw new InvalidArgumentError(`must be one of ${names.join(', ')}.`);
    return v;
  };
}
export const parseOptimizerName = oneOf(OPTIMIZERS);
export const parseScheduleName = oneOf(SCHEDULES);

export function parseWeightDecay(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError('must be a number >= 0.');
  return n;
}

export interface OptimCliOptions {
  optimizer: OptimizerName;
  lr: number;
  /** Given only with --momentum (SGD's option). */
  momentum?: number;
  nesterov?: boolean;
  /** Given only with --weight-decay; the optimizer's default otherwise (0, AdamW 0.01). */
  weightDecay?: number;
  schedule: ScheduleName;
}

/** The settings the options resolve to, as metrics.json and the checkpoint record them. */
export interface OptimSettings {
  optimizer: OptimizerName;
  momentum?: number;
  nesterov?: boolean;
  weightDecay: number;
  schedule: ScheduleName;
}

/** Refuses options that do not apply to the chosen optimizer; returns the resolved settings. */
export function resolveOptim(o: OptimCliOptions): OptimSettings {
  if (o.optimizer !== 'sgd') {
    if (o.momentum !== undefined) {
      throw new UsageError(`--momentum is an SGD option: ${o.optimizer} keeps its own moment estimates (betas 0.9, 0.999); drop --momentum or use --optimizer sgd`);
    }
    if (o.nesterov) throw new UsageError(`--nesterov is an SGD option, not one of ${o.optimizer}; drop it or use --optimizer sgd`);
    return { optimizer: o.optimizer, weightDecay: o.weightDecay ?? (o.optimizer === 'adamw' ? 0.01 : 0), schedule: o.schedule };
  }
  const momentum = o.momentum ?? 0;
  if (o.nesterov && momentum === 0) throw new UsageError('--nesterov needs a momentum: add --momentum, e.g. --momentum 0.9');
  return { optimizer: 'sgd', momentum, nesterov: Boolean(o.nesterov), weightDecay: o.weightDecay ?? 0, schedule: o.schedule };
}

/** The optimizer the settings describe (the library is loaded here, after the options are checked). */
export async function makeOptimizer(s: OptimSettings, lr: number, params: Tensor[]): Promise<Optimizer> {
  const { SGD } = await import('../optim/sgd');
  const { Adam, AdamW } = await import('../optim/adam');
  if (s.optimizer === 'sgd') return new SGD(params, { lr, momentum: s.momentum, nesterov: s.nesterov, weightDecay: s.weightDecay });
  return new (s.optimizer === 'adam' ? Adam : AdamW)(params, { lr, weightDecay: s.weightDecay });
}

/**
 * The schedule named by --schedule for a run of `epochs` epochs of `perEpoch` steps, with --lr as
 * the base (or, for onecycle, the peak) rate, and a short description for the log; null for none.
 *  - step: lr / 10 after a third of the steps and lr / 100 after two thirds;
 *  - cosine: from lr down to 0 over the run;
 *  - onecycle: up from lr / 25 to lr over the first 30% of the run, then down to lr / 25e4;
 *  - warmup: linear from lr / n to lr over the first n steps (the first epoch, or the first tenth
 *    of the run when that is shorter), then lr.
 */
export async function makeSchedule(name: ScheduleName, lr: number, epochs: number, perEpoch: number): Promise<{ schedule: Schedule; description: string } | null> {
  if (name === 'none') return null;
  const schedules = await import('../optim/schedules');
  const steps = Math.max(1, epochs * perEpoch);
  switch (name) {
    case 'step': {
      const stepSize = Math.max(1, Math.ceil(steps / 3));
      return { schedule: schedules.step({ lr, stepSize, gamma: 0.1 }), description: `step (x0.1 every ${stepSize} steps)` };
    }
    case 'cosine':
      return { schedule: schedules.cosine({ lr, steps }), description: `cosine (to 0 over ${steps} steps)` };
    case 'onecycle':
      return { schedule: schedules.oneCycle({ maxLr: lr, steps }), description: `onecycle (peak ${lr} at 30% of ${steps} steps)` };
    case 'warmup': {
      const warm = Math.max(1, Math.min(perEpoch, Math.round(steps / 10)));
      return { schedule: schedules.warmup({ steps: warm, lr }), description: `warmup (linear over ${warm} steps)` };
    }
  }
}
