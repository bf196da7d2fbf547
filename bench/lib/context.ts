// What every case gets: the run's settings, the implementations that loaded, and one helper that
// checks (ours), times and turns the result into a Figure, so no case repeats that logic.
import type { Check, Figure, Status, Unit } from './schema';
import { measure, Timing, TimingKind, TimingOptions, timingPreset } from './harness';
import type { Ours } from './ours';
import type { Device } from './shapes';
import type { TfjsInfo } from '../reference/tfjs/setup';

export interface Ctx {
  device: Device;
  quick: boolean;
  /** Is `case shape impl` selected by --only? */
  wanted(caseKey: string, shape: string, impl?: string): boolean;
  ours: Ours | null;
  oursMissing: string;
  tfjs: TfjsInfo | null;
  /** The TensorFlow.js backends to run: --quick runs wasm alone (the cpu backend takes seconds a call). */
  tfjsBackends: TfjsInfo['backends'];
  log(msg: string): void;
  /** Ceilings measured so far (for the "% of ceiling" column). */
  ceilings: { copyGBs?: number; gemmGFs?: number };
  /** Run the epoch and memory figures (false: --no-epoch). */
  epoch: boolean;
}

export interface Prepared {
  /** The timed call. */
  fn: () => void;
  /** Correctness check against the plain reference, run before timing (ours). */
  check?: () => Check;
  /** Time of this is subtracted from fn's (tfjs backward = (forward + backward) - forward). */
  baseline?: () => void;
  /** Throughput from the median in ms. */
  metric?: (ms: number) => { unit: Unit; value: number };
  kind?: TimingKind;
  timing?: Partial<TimingOptions>;
  sync?: () => void;
  note?: string;
  dispose?: () => void;
}

export interface Meta {
  case: string;
  shape: string;
  impl: string;
}

function fmtMs(ms: number): string {
  return ms >= 100 ? ms.toFixed(0) : ms >= 1 ? ms.toFixed(2) : ms.toFixed(4);
}

export function skipped(ctx: Ctx, m: Meta, status: Status, note: string): Figure {
  ctx.log(`  ${m.case} ${m.shape} ${m.impl}: ${status} (${note})`);
  return { ...m, device: m.impl.startsWith('tfjs') ? 'cpu' : ctx.device, status, note };
}

/** Prepares, checks, times; any throw becomes a 'failed' figure. */
export function runMeasured(ctx: Ctx, m: Meta, prepare: () => Prepared): Figure {
  const device: 'cpu' | 'cuda' = m.impl.startsWith('tfjs') ? 'cpu' : ctx.device;
  let p: Prepared | undefined;
  try {
    p = prepare();
    let check: Check | undefined;
    if (p.check) {
      check = p.check();
      if (check.status !== 'pass') {
        ctx.log(`  ${m.case} ${m.shape} ${m.impl}: WRONG (${check.how}, err ${check.maxErr.toExponential(2)} > ${check.tol})`);
        return { ...m, device, status: 'wrong', check, note: 'disagrees with the plain float64 reference; not timed' };
      }
    }
    const opts: TimingOptions = { ...timingPreset(p.kind ?? 'kernel', ctx.quick, p.sync), ...(p.timing ?? {}) };
    if (p.sync) opts.sync = p.sync;
    const t: Timing = measure(p.fn, opts);
    let median = t.median_ms;
    let min = t.min_ms;
    let note = p.note;
    if (p.baseline) {
      const b = measure(p.baseline, opts);
      median = Math.max(t.median_ms - b.median_ms, 1e-6);
      min = Math.max(t.min_ms - b.min_ms, 1e-6);
      note = [note, `(fwd+bwd ${fmtMs(t.median_ms)} ms) - (fwd ${fmtMs(b.median_ms)} ms)`].filter(Boolean).join('; ');
    }
    if (t.capped) note = [note, t.capped].filter(Boolean).join('; ');
    if (opts.warmup === 0) note = [note, 'one cold call (10 s and more a call)'].filter(Boolean).join('; ');
    const fig: Figure = { ...m, device, status: 'ok', median_ms: median, min_ms: min, reps: t.reps, check, note };
    if (p.metric) fig.metric = p.metric(median);
    ctx.log(
      `  ${m.case} ${m.shape} ${m.impl}: ${fmtMs(median)} ms` +
        (fig.metric ? ` (${fig.metric.value.toFixed(fig.metric.value >= 100 ? 0 : 2)} ${fig.metric.unit})` : '') +
        ` x${t.reps}${t.callsPerSample > 1 ? `*${t.callsPerSample}` : ''}` +
        (check ? ` check ${check.status} ${check.maxErr.toExponential(1)}` : ''),
    );
    return fig;
  } catch (e) {
    const msg = e instanceof Error ? e.message.split('\n')[0] : String(e);
    ctx.log(`  ${m.case} ${m.shape} ${m.impl}: FAILED ${msg}`);
    return { ...m, device, status: 'failed', note: msg };
  } finally {
    try {
      p?.dispose?.();
    } catch {
      /* already reported */
    }
  }
}

export const gbs = (bytes: number) => (ms: number) => ({ unit: 'GB/s' as const, value: bytes / (ms * 1e6) });
export const gflops = (flops: number) => (ms: number) => ({ unit: 'GFLOP/s' as const, value: flops / (ms * 1e6) });
export const imgs = (images: number) => (ms: number) => ({ unit: 'img/s' as const, value: images / (ms / 1000) });

/** GPU: how many copies of a case's buffers to cycle through so that back-to-back calls read
 *  memory that is not in L2 (a working set of >= 256 MiB, over 4x the H100/H200's 50-60 MB L2).
 *  CPU: 1 (the seed shapes stay cache-resident, as they do inside a training step, for every
 *  implementation alike). */
export function rotationSets(ctx: Ctx, bytesPerSet: number): number {
  if (ctx.device !== 'cuda') return 1;
  return Math.min(64, Math.max(1, Math.ceil((256 << 20) / bytesPerSet)));
}

/** Cycles through 0..n-1. */
export function cycler(n: number): () => number {
  let i = 0;
  return () => {
    const r = i;
    i = i + 1 === n ? 0 : i + 1;
    return r;
  };
}
