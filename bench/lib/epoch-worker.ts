// Runs in its own process (bench/cases/epoch.ts starts it), so that its memory figures are the
// training run's alone: trains the seed network for `steps` steps on synthetic data resident on
// the device, and prints one line `RESULT {json}`.
//   CPU: peak RSS (getrusage maxrss) and RSS growth between step 100 and the end (after a GC).
//   GPU: peak reserved memory of our caching allocator, and reserved/allocated growth likewise.
import { loadOurs } from './ours';
import { makeOursNet } from './ours-net';
import { NET, Device } from './shapes';
import { labels as makeLabels, uniform } from './rng';
import { initParams } from '../reference/plain-net';
import { median, nowMs } from './harness';

interface Args {
  device: Device;
  steps: number;
  /** Distinct batches held on the device and cycled through. */
  pool: number;
}

const MiB = 1 << 20;

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) {
    g();
    g();
  }
}

function main(): void {
  const a = JSON.parse(process.argv[2]) as Args;
  const r = loadOurs(a.device);
  if (!r.ok) throw new Error(r.reason);
  const o = r.ours;
  const kg = o.kg;
  const n = NET.batch;
  // Batch sizes of one epoch: 937 x 64 and a last batch of 32 (60000 images).
  const sizes: number[] = [];
  for (let left = NET.epochImages; left > 0; left -= n) sizes.push(Math.min(n, left));
  const steps = Math.min(a.steps, sizes.length);
  const full = steps === sizes.length;
  const last = sizes[sizes.length - 1];
  const make = (b: number, i: number) => ({
    x: kg.tensor(uniform(b * 784, 1000 + i, 0, 1), [b, 1, 28, 28], { device: o.device }),
    y: kg.tensor(makeLabels(b, 10, 2000 + i), [b], { device: o.device }),
  });
  // Full batches, cycled; a full epoch ends on its short batch (32 images), held apart.
  const pool = Array.from({ length: Math.max(1, Math.min(a.pool, full ? steps - 1 : steps)) }, (_, i) => make(n, i));
  const tail = full && last !== n ? make(last, pool.length) : null;
  const batches = tail ? [...pool, tail] : pool;
  const net = makeOursNet(o, initParams(1));
  const mem = () => {
    if (o.device === 'cuda') {
      const s = kg.cuda.memoryStats();
      return { a: s.allocated / MiB, r: s.reserved / MiB, peak: s.peakReserved / MiB };
    }
    const u = process.memoryUsage();
    return { a: u.heapUsed / MiB, r: u.rss / MiB, peak: process.resourceUsage().maxRSS / 1024 };
  };
  // 10 untimed warm-up steps, as on the PyTorch side (its cuDNN autotuning happens there).
  for (let s = 0; s < 10; s++) net.step(pool[s % pool.length].x, pool[s % pool.length].y);
  o.sync();
  const stepMs: number[] = [];
  let at100 = mem();
  let images = 0;
  const t0 = nowMs();
  for (let s = 0; s < steps; s++) {
    const b = tail && s === steps - 1 ? tail : pool[s % pool.length];
    const ts = nowMs();
    net.step(b.x, b.y);
    images += b.x.shape[0];
    if (s === 99) {
      o.sync();
      gc();
      at100 = mem();
    }
    stepMs.push(nowMs() - ts);
  }
  o.sync();
  const epochMs = nowMs() - t0;
  gc();
  const end = mem();
  const peak = mem().peak;
  net.dispose();
  for (const b of batches) {
    b.x.dispose();
    b.y.dispose();
  }
  const result = {
    device: a.device,
    steps,
    images,
    epochMs,
    stepMedianMs: median(stepMs),
    peakMiB: peak,
    at100MiB: at100.r,
    endMiB: end.r,
    growthMiB: end.r - at100.r,
    allocGrowthMiB: end.a - at100.a,
    pool: batches.length,
  };
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

try {
  main();
} catch (e) {
  process.stdout.write(`RESULT ${JSON.stringify({ error: e instanceof Error ? e.message : String(e) })}\n`);
  process.exitCode = 1;
}
