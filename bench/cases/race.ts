// The MNIST race: `kernelgrad train --recipe fast` from the first step to the first evaluation at
// >= 99% test accuracy, evaluations included, in a process of its own (bench/lib/race-worker.ts).
// PyTorch runs the same recipe in bench/reference/torch_cpu.py (case_race). A run that ends
// below 99% is a 'failed' row that names the accuracy it reached.
import { spawnSync } from 'child_process';
import * as path from 'path';
import type { Figure } from '../lib/schema';
import { Ctx, skipped } from '../lib/context';
import { RACE } from '../lib/shapes';

const CASE = 'race.mnist99';

interface Eval {
  step: number;
  accuracy: number;
  ms: number;
}

export async function run(ctx: Ctx): Promise<Figure[]> {
  if (!ctx.wanted(CASE, RACE.label, 'kernelgrad')) return [];
  const meta = { case: CASE, shape: RACE.label, impl: 'kernelgrad' };
  if (!ctx.ours) return [skipped(ctx, meta, 'unavailable', ctx.oursMissing)];
  ctx.log('MNIST race (own process)');
  const worker = path.join(__dirname, '..', 'lib', 'race-worker.ts');
  const r = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', worker, JSON.stringify({ device: ctx.device })], {
    cwd: path.join(__dirname, '..', '..'),
    encoding: 'utf8',
    timeout: 10 * 60 * 1000,
  });
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('RESULT '));
  const res = line
    ? (JSON.parse(line.slice(7)) as { error?: string; reached: Eval | null; evals: Eval[]; steps: number })
    : { error: `worker exited ${r.status}${r.signal ? ` (${r.signal})` : ''}: ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}` };
  const fig = raceFigure(res, ctx.device);
  ctx.log(`  ${CASE}: ${fig.status === 'ok' ? `${((fig.median_ms ?? 0) / 1000).toFixed(2)} s` : fig.status}; ${fig.note}`);
  return [fig];
}

function raceFigure(res: { error?: string; reached?: Eval | null; evals?: Eval[]; steps?: number }, device: Ctx['device']): Figure {
  const meta = { case: CASE, shape: RACE.label, impl: 'kernelgrad', device };
  if (res.error) return { ...meta, status: 'failed', note: res.error };
  const evals = (res.evals ?? []).map((e) => `${(100 * e.accuracy).toFixed(2)}% at step ${e.step}`).join(', ');
  if (!res.reached) return { ...meta, status: 'failed', note: `never reached ${100 * RACE.target}%: ${evals}` };
  return { ...meta, status: 'ok', median_ms: res.reached.ms, min_ms: res.reached.ms, reps: 1, note: `test accuracy ${evals}; ${res.steps} steps` };
}
