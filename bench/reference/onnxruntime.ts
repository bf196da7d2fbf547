// onnxruntime-node: the inference reference on the CPU. The seed network, with the same weights
// and moving statistics as ours (initParams(1), initRunningStats(2)), is exported with
// kg.io.exportOnnx, loaded into an InferenceSession (CPU execution provider, all graph
// optimizations, `threads` intra-op threads) and timed through session.run, as a Node user calls
// it. Its logits are checked against the plain float64 network first.
//
//   ts-node --transpile-only bench/reference/onnxruntime.ts --json FILE [--quick] [--threads N] [--only RE]
//
// bench/lib/rounds.ts runs it in a fresh process per round. Writes bench/lib/schema.ts's schema
// with impl 'onnxruntime'.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Command } from 'commander';
import type { BenchFile, Check, Figure } from '../lib/schema';
import { SCHEMA } from '../lib/schema';
import { collectEnv, cpuModel } from '../lib/env';
import { underCpuidCap } from '../lib/cpuid-cap';
import { measureAsync, timingPreset } from '../lib/harness';
import { loadOurs } from '../lib/ours';
import { makeOursNet } from '../lib/ours-net';
import { uniform } from '../lib/rng';
import { NET } from '../lib/shapes';
import { Checker } from './plain';
import { initParams, initRunningStats, plainInfer } from './plain-net';

export const IMPL = 'onnxruntime';

type Ort = typeof import('onnxruntime-node');

/** onnxruntime-node, or why it cannot be loaded (it is a devDependency: a user may not have it). */
export function loadOrt(): { ort: Ort } | { missing: string } {
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    return { ort: require('onnxruntime-node') as Ort };
  } catch (e) {
    return { missing: `onnxruntime-node not loadable (${(e as Error).message.split('\n')[0]}); npm install with ONNXRUNTIME_NODE_INSTALL=skip` };
  }
}

async function main(): Promise<void> {
  const opts = new Command()
    .option('--json <file>', 'write the figures here')
    .option('--quick', 'fewer repeats', false)
    .option('--threads <n>', 'intra-op threads', String(os.cpus().length))
    .option('--only <pattern>', "regular expression over 'case shape impl'")
    .parse(process.argv)
    .opts<{ json?: string; quick: boolean; threads: string; only?: string }>();
  const threads = Number(opts.threads);
  const re = opts.only ? new RegExp(opts.only, 'i') : null;
  const log = (msg: string) => process.stderr.write(`onnxruntime: ${msg}\n`);
  const figures: Figure[] = [];
  const notes: string[] = [];
  const versions: Record<string, string> = {};
  const batches: Array<[number, string]> = [[NET.inferBatch, NET.inferLabel], [NET.latencyBatch, NET.latencyLabel]];
  const wanted = batches.filter(([, s]) => !re || re.test(`net.infer ${s} ${IMPL}`));

  const loaded = loadOrt();
  const ours = loadOurs('cpu');
  if ('missing' in loaded || !ours.ok) {
    const note = 'missing' in loaded ? loaded.missing : `the model is exported by kernelgrad, which did not load: ${ours.ok ? '' : ours.reason}`;
    for (const [, s] of wanted) figures.push({ case: 'net.infer', shape: s, impl: IMPL, device: 'cpu', status: 'unavailable', note });
  } else if (wanted.length > 0) {
    const { ort } = loaded;
    versions['onnxruntime-node'] = ort.env.versions.node ?? 'unknown';
    const flags = /\(([^)]*)\)/.exec(cpuModel())?.[1] ?? '';
    // Under `--isa avx2` the CPUID it reads is capped (bench/lib/cpuid-cap.ts).
    const capped = underCpuidCap() ? ', answered without AVX-512 by the --isa avx2 cap' : '';
    notes.push(`onnxruntime ISA: MLAS picks its kernels from cpuid at run time (this CPU: ${flags.split(', ').find((f) => /avx|sse/.test(f)) ?? 'unknown'}${capped}); intra-op threads ${threads}, sequential execution, graph optimization 'all'`);
    const net = makeOursNet(ours.ours, initParams(1));
    net.setRunning(initRunningStats(2));
    const file = path.join(os.tmpdir(), `kernelgrad-bench-${process.pid}.onnx`);
    ours.ours.kg.io.exportOnnx(net.model, file, { inputShape: [1, 28, 28] });
    net.dispose();
    const session = await ort.InferenceSession.create(file, {
      executionProviders: ['cpu'],
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
    fs.rmSync(file, { force: true });
    try {
      const check = await checkLogits(ort, opts.quick ? 32 : 128);
      for (const [n, shape] of wanted) {
        const fig: Figure = { case: 'net.infer', shape, impl: IMPL, device: 'cpu', status: 'ok', check };
        if (check.status !== 'pass') {
          figures.push({ ...fig, status: 'wrong', note: 'disagrees with the plain float64 reference; not timed' });
          continue;
        }
        const input = { input: new ort.Tensor('float32', uniform(n * 784, 83, 0, 1), [n, 1, 28, 28]) };
        const t = await measureAsync(() => session.run(input), timingPreset(n > 1 ? 'step' : 'kernel', opts.quick));
        figures.push({
          ...fig, median_ms: t.median_ms, min_ms: t.min_ms, reps: t.reps,
          metric: { unit: 'img/s', value: n / (t.median_ms / 1000) },
          note: 'kg.io.exportOnnx of the same network and statistics; InferenceSession.run (CPU provider)',
        });
        log(`net.infer ${shape}: ${t.median_ms.toFixed(3)} ms`);
      }
    } finally {
      await session.release();
    }
  }
  const out: BenchFile = { schema: SCHEMA, env: { ...collectEnv({ device: 'cpu', quick: opts.quick, versions, notes }), framework: 'onnxruntime' }, figures };
  if (opts.json) fs.writeFileSync(opts.json, JSON.stringify(out, null, 2) + '\n');
}

/** The exported network (with the values bench/cases/inference.ts checks ours with) against the plain float64 one. */
async function checkLogits(ort: Ort, n: number): Promise<Check> {
  const p = initParams(8);
  const stats = initRunningStats(9);
  const ours = loadOurs('cpu');
  if (!ours.ok) throw new Error(ours.reason);
  const net = makeOursNet(ours.ours, p);
  net.setRunning(stats);
  const file = path.join(os.tmpdir(), `kernelgrad-bench-check-${process.pid}.onnx`);
  ours.ours.kg.io.exportOnnx(net.model, file, { inputShape: [1, 28, 28] });
  net.dispose();
  const checked = await ort.InferenceSession.create(file, { intraOpNumThreads: 1, graphOptimizationLevel: 'all' });
  fs.rmSync(file, { force: true });
  try {
    const xd = uniform(n * 784, 81, 0, 1);
    const got = (await checked.run({ input: new ort.Tensor('float32', xd, [n, 1, 28, 28]) })).output.data as Float32Array;
    const ref = plainInfer(p, stats, xd, n, NET.eps);
    let scale = 0;
    for (const v of ref) scale = Math.max(scale, Math.abs(v));
    const ck = new Checker(1e-4);
    if (got.length !== ref.length) ck.add(NaN, 0, 1);
    for (let i = 0; i < ref.length; i++) ck.add(got[i], ref[i], scale, () => `logit ${i}`);
    return ck.result(`batch ${n} logits, error / max |logit|`);
  } finally {
    await checked.release();
  }
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e instanceof Error ? e.stack : e);
    process.exit(1);
  });
}
