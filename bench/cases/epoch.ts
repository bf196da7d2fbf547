// A training run of the seed network in a process of its own: the full epoch (60000 images,
// synthetic data resident on the device) timed on the GPU (and on the CPU without --quick), peak
// memory (CPU: peak RSS; GPU: peak reserved by our allocator) and growth after the first 100 steps.
import { spawnSync } from 'child_process';
import * as path from 'path';
import type { Figure } from '../lib/schema';
import { Ctx, skipped } from '../lib/context';
import { NET } from '../lib/shapes';

const STEPS_PER_EPOCH = Math.ceil(NET.epochImages / NET.batch); // 938

export async function run(ctx: Ctx): Promise<Figure[]> {
  const keys = ['net.epoch', 'mem.train_peak', 'mem.growth'];
  if (!ctx.epoch || !keys.some((k) => ctx.wanted(k, ''))) return [];
  ctx.log('training run (own process): epoch and memory');
  if (!ctx.ours) return keys.map((k) => skipped(ctx, { case: k, shape: k === 'net.epoch' ? NET.epochLabel : NET.trainLabel, impl: 'kernelgrad' }, 'unavailable', ctx.oursMissing));
  const fullEpoch = ctx.device === 'cuda' || !ctx.quick;
  const steps = fullEpoch ? STEPS_PER_EPOCH : 200;
  const pool = ctx.device === 'cuda' ? STEPS_PER_EPOCH : 100;
  const worker = path.join(__dirname, '..', 'lib', 'epoch-worker.ts');
  const r = spawnSync(process.execPath, ['--expose-gc', '-r', 'ts-node/register/transpile-only', worker, JSON.stringify({ device: ctx.device, steps, pool })], {
    cwd: path.join(__dirname, '..', '..'),
    encoding: 'utf8',
    maxBuffer: 1 << 24,
    timeout: 20 * 60 * 1000,
  });
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('RESULT '));
  const res = line ? JSON.parse(line.slice(7)) : { error: `worker exited ${r.status}${r.signal ? ` (${r.signal})` : ''}: ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}` };
  const dev = ctx.device;
  if (res.error) {
    ctx.log(`  training run FAILED: ${res.error}`);
    return keys.map((k) => ({ case: k, shape: k === 'net.epoch' ? NET.epochLabel : NET.trainLabel, impl: 'kernelgrad', device: dev, status: 'failed' as const, note: res.error }));
  }
  const data = dev === 'cuda' ? 'synthetic data resident on the GPU (938 batches)' : `synthetic data, ${pool} distinct batches cycled`;
  const out: Figure[] = [];
  if (fullEpoch)
    out.push({
      case: 'net.epoch', shape: NET.epochLabel, impl: 'kernelgrad', device: dev, status: 'ok',
      median_ms: res.epochMs, min_ms: res.epochMs, reps: 1,
      metric: { unit: 'img/s', value: res.images / (res.epochMs / 1000) },
      note: `one epoch, ${res.steps} steps (median step ${res.stepMedianMs.toFixed(2)} ms); ${data}`,
    });
  else out.push(skipped(ctx, { case: 'net.epoch', shape: NET.epochLabel, impl: 'kernelgrad' }, 'skipped', `--quick: ${steps} steps for the memory figures only`));
  const what = dev === 'cuda' ? 'peak reserved GPU memory (our caching allocator)' : 'peak RSS of the training process';
  out.push({
    case: 'mem.train_peak', shape: NET.trainLabel, impl: 'kernelgrad', device: dev, status: 'ok',
    metric: { unit: 'MiB', value: res.peakMiB }, note: `${what}; ${res.steps} steps; ${data}`,
  });
  const g = dev === 'cuda' ? 'reserved' : 'RSS (after GC)';
  out.push({
    case: 'mem.growth', shape: 'after step 100', impl: 'kernelgrad', device: dev, status: 'ok',
    metric: { unit: 'MiB', value: res.growthMiB },
    note: `${g} ${res.at100MiB.toFixed(1)} MiB at step 100 -> ${res.endMiB.toFixed(1)} MiB at step ${res.steps}; ${dev === 'cuda' ? 'allocated' : 'JS heap'} growth ${res.allocGrowthMiB.toFixed(2)} MiB`,
  });
  for (const f of out) ctx.log(`  ${f.case} ${f.shape}: ${f.status === 'ok' ? (f.median_ms ? `${f.median_ms.toFixed(0)} ms ` : '') + (f.metric ? `${f.metric.value.toFixed(1)} ${f.metric.unit}` : '') : f.status}`);
  return out;
}
