// Timing: warm-up, repeats, median and min. Each sample is one call or, for calls under
// `sampleMs`, a batch of calls whose mean is the sample, so the timer's resolution and the
// loop's own cost stay out of the figure. `sync` runs before the clock is read at both ends of a
// sample (GPU: device synchronize), so asynchronous work is inside the sample it belongs to.

export interface TimingOptions {
  /** Warm-up calls; 0 only for calls that take many seconds (the first call is then the sample). */
  warmup: number;
  /** Repeats wanted. */
  reps: number;
  /** Never fewer repeats than this, unless one call alone overruns `capMs`. */
  minReps: number;
  /** Stop repeating once this much time went into the samples and minReps are done. */
  targetMs: number;
  /** Hard cap for the whole measurement, warm-up included: fewer repeats then (noted). */
  capMs: number;
  /** A sample lasts at least this long (calls are batched). 0: one call per sample. */
  sampleMs: number;
  sync?: () => void;
  /** Runs before every sample, outside the clock (e.g. flush a cache). Disables batching. */
  beforeSample?: () => void;
}

export interface Timing {
  median_ms: number;
  min_ms: number;
  mean_ms: number;
  reps: number;
  callsPerSample: number;
  samples: number[];
  /** Set when the cap cut the repeats short. */
  capped?: string;
}

export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** `measure` for a call that returns a promise (onnxruntime-node's session.run); same samples. */
export async function measureAsync(fn: () => Promise<unknown>, o: TimingOptions): Promise<Timing> {
  const start = nowMs();
  let one = 0;
  for (let i = 0; i < o.warmup; i++) {
    const t0 = nowMs();
    await fn();
    one = nowMs() - t0;
    if (nowMs() - start > o.capMs / 3) break;
  }
  const calls = o.sampleMs > 0 && one < o.sampleMs ? Math.min(10000, Math.max(1, Math.ceil(o.sampleMs / Math.max(one, 1e-4)))) : 1;
  const samples: number[] = [];
  let spent = 0;
  let capped: string | undefined;
  while (samples.length < o.reps && !(samples.length >= o.minReps && spent >= o.targetMs)) {
    if (samples.length >= 1 && nowMs() - start + spent / samples.length > o.capMs) {
      capped = `${samples.length} reps (time cap ${Math.round(o.capMs / 1000)} s)`;
      break;
    }
    const t0 = nowMs();
    for (let i = 0; i < calls; i++) await fn();
    const dt = nowMs() - t0;
    spent += dt;
    samples.push(dt / calls);
  }
  return summarize(samples, calls, capped);
}

function summarize(samples: number[], calls: number, capped: string | undefined): Timing {
  return {
    median_ms: median(samples),
    min_ms: Math.min(...samples),
    mean_ms: samples.reduce((a, b) => a + b, 0) / samples.length,
    reps: samples.length,
    callsPerSample: calls,
    samples,
    capped,
  };
}

export function measure(fn: () => void, o: TimingOptions): Timing {
  const sync = o.sync ?? (() => {});
  const start = nowMs();
  // Warm-up; the last warm-up call calibrates the batch size.
  let one = 0;
  for (let i = 0; i < o.warmup; i++) {
    o.beforeSample?.();
    sync();
    const t0 = nowMs();
    fn();
    sync();
    one = nowMs() - t0;
    if (nowMs() - start > o.capMs / 3) break; // a slow call: do not burn the budget warming up
  }
  let calls = 1;
  if (o.sampleMs > 0 && !o.beforeSample && one < o.sampleMs) {
    calls = Math.min(10000, Math.max(1, Math.ceil(o.sampleMs / Math.max(one, 1e-4))));
  }
  const samples: number[] = [];
  let spent = 0;
  let capped: string | undefined;
  for (;;) {
    if (samples.length >= o.reps) break;
    if (samples.length >= o.minReps && spent >= o.targetMs) break;
    const projected = nowMs() - start + (samples.length ? spent / samples.length : one * calls);
    if (samples.length >= 1 && projected > o.capMs) {
      capped = `${samples.length} reps (time cap ${Math.round(o.capMs / 1000)} s)`;
      break;
    }
    o.beforeSample?.();
    sync();
    const t0 = nowMs();
    for (let i = 0; i < calls; i++) fn();
    sync();
    const dt = nowMs() - t0;
    spent += dt;
    samples.push(dt / calls);
  }
  return summarize(samples, calls, capped);
}

export type TimingKind = 'kernel' | 'step' | 'slow' | 'huge';

/** Presets. `slow` is for calls that take seconds (the tfjs cpu backend's filter gradient);
 *  `huge` for calls of 10 s and more: one timed call, no warm-up (noted in the table). */
export function timingPreset(kind: TimingKind, quick: boolean, sync?: () => void): TimingOptions {
  if (kind === 'huge') return { warmup: 0, reps: 1, minReps: 1, targetMs: 0, capMs: 120000, sampleMs: 0, sync };
  if (kind === 'kernel')
    return quick
      ? { warmup: 2, reps: 15, minReps: 5, targetMs: 150, capMs: 2500, sampleMs: 2, sync }
      : { warmup: 5, reps: 50, minReps: 11, targetMs: 1000, capMs: 15000, sampleMs: 5, sync };
  if (kind === 'step')
    return quick
      ? { warmup: 1, reps: 10, minReps: 3, targetMs: 600, capMs: 3000, sampleMs: 0, sync }
      : { warmup: 5, reps: 30, minReps: 11, targetMs: 4000, capMs: 30000, sampleMs: 0, sync };
  return quick
    ? { warmup: 1, reps: 1, minReps: 1, targetMs: 0, capMs: 5000, sampleMs: 0, sync }
    : { warmup: 1, reps: 3, minReps: 3, targetMs: 0, capMs: 60000, sampleMs: 0, sync };
}
