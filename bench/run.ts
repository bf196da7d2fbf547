// npm run bench [-- --quick] [--device cpu|cuda] [--json FILE] [--only PATTERN]
//
// Measures kernelgrad against the frameworks a user would otherwise pick, in one run on one
// machine, and prints a table of medians and ratios. CPU: TensorFlow.js (wasm and cpu backends) in
// this process. GPU: ours here; PyTorch from bench/reference/torch_ref.py (see bench/gpu.sh, which
// runs both and merges them with bench/compare.ts). Every kernel of ours is checked against a plain
// float64 reference before it is timed. See bench/README.md.
import { Command } from 'commander';
import * as fs from 'fs';
import * as os from 'os';
import type { BenchFile, Figure } from './lib/schema';
import { SCHEMA } from './lib/schema';
import type { Ctx } from './lib/context';
import { loadOurs } from './lib/ours';
import { collectEnv } from './lib/env';
import { deviceHeading, merge, renderAll, updateResultsFile } from './lib/report';
import { NET, Device } from './lib/shapes';
import { nowMs } from './lib/harness';

import * as copyCase from './cases/copy';
import * as gemmCase from './cases/gemm';
import * as bnCase from './cases/batchnorm';
import * as convCase from './cases/conv2d';
import * as poolCase from './cases/avgpool';
import * as trainCase from './cases/train-step';
import * as inferCase from './cases/inference';
import * as epochCase from './cases/epoch';

const CASES = [copyCase, gemmCase, bnCase, convCase, poolCase, trainCase, inferCase, epochCase];
const IMPLS = ['kernelgrad', 'tfjs-wasm', 'tfjs-cpu', 'tfjs-node'];

async function main(): Promise<void> {
  const program = new Command()
    .name('npm run bench --')
    .description('kernelgrad benchmarks against TensorFlow.js (CPU) or PyTorch (GPU, via bench/gpu.sh)')
    .option('--quick', 'fewer repeats, skip the multi-second reference calls (about a minute on 2 cores)', false)
    .option('--device <device>', 'cpu or cuda', 'cpu')
    .option('--json <file>', 'write every figure and the environment as JSON')
    .option('--only <pattern>', "regular expression over 'case shape impl', e.g. 'bn\\.' or 'net\\.train_step' or 'tfjs-wasm'")
    .option('--no-tfjs', 'CPU: skip the TensorFlow.js references')
    .option('--results <file>', "rewrite this device's section of a RESULTS.md (e.g. bench/RESULTS.md)")
    .parse(process.argv);
  const opts = program.opts<{ quick: boolean; device: string; json?: string; only?: string; tfjs: boolean; results?: string }>();
  if (opts.device !== 'cpu' && opts.device !== 'cuda') throw new Error(`--device must be cpu or cuda, got ${opts.device}`);
  const device = opts.device as Device;
  const re = opts.only ? new RegExp(opts.only, 'i') : null;
  const t0 = nowMs();
  const load0 = os.loadavg();
  const log = (msg: string) => process.stderr.write(`[${((nowMs() - t0) / 1000).toFixed(1).padStart(6)} s] ${msg}\n`);

  const notes: string[] = [];
  const versions: Record<string, string> = {};
  const loaded = loadOurs(device);
  if (loaded.ok) {
    Object.assign(versions, loaded.ours.versions);
    notes.push(...loaded.ours.notes);
  } else {
    log(`kernelgrad unavailable: ${loaded.reason}`);
    notes.push(`kernelgrad unavailable: ${loaded.reason}`);
  }
  let tfjs: Ctx['tfjs'] = null;
  const figures: Figure[] = [];
  if (device === 'cpu' && opts.tfjs) {
    try {
      const { initTfjs } = await import('./reference/tfjs/setup');
      tfjs = await initTfjs();
      Object.assign(versions, tfjs.versions);
      notes.push(...tfjs.notes);
      for (const u of tfjs.unavailable)
        for (const [c, s] of [['net.train_step', NET.trainLabel], ['net.infer', NET.inferLabel]])
          if (!re || re.test(`${c} ${s} ${u.impl}`)) figures.push({ case: c, shape: s, impl: u.impl, device: 'cpu', status: 'unavailable', note: u.note });
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      log(`TensorFlow.js unavailable: ${msg}`);
      notes.push(`TensorFlow.js unavailable: ${msg}`);
    }
  }
  if (tfjs && opts.quick) notes.push('--quick: tfjs-cpu not run (plain JS; seconds to tens of seconds a call)');
  if (device === 'cpu') notes.push('CPU timings share the machine with whatever else runs on it; see the repeat counts and min in the JSON');

  const ctx: Ctx = {
    device,
    quick: opts.quick,
    wanted: (c, s, impl) => {
      if (!re) return true;
      if (impl !== undefined) return re.test(`${c} ${s} ${impl}`);
      return IMPLS.some((i) => re.test(`${c} ${s} ${i}`));
    },
    ours: loaded.ok ? loaded.ours : null,
    oursMissing: loaded.ok ? '' : loaded.reason,
    tfjs,
    tfjsBackends: tfjs ? tfjs.backends.filter((b) => !opts.quick || b === 'wasm') : [],
    log,
    ceilings: {},
  };
  log(`device ${device}${opts.quick ? ', --quick' : ''}${re ? `, --only ${re.source}` : ''}`);
  for (const c of CASES) figures.push(...(await c.run(ctx)));

  if (device === 'cpu') {
    const [l1, l5] = os.loadavg();
    notes.push(`load average (1 min, 5 min) at start ${load0[0].toFixed(2)}, ${load0[1].toFixed(2)}; at end ${l1.toFixed(2)}, ${l5.toFixed(2)} on ${os.cpus().length} cores`);
  }
  const file: BenchFile = {
    schema: SCHEMA,
    env: collectEnv({ device, quick: opts.quick, deviceName: loaded.ok ? loaded.ours.deviceName : undefined, versions, notes }),
    figures,
  };
  if (opts.json) {
    fs.writeFileSync(opts.json, JSON.stringify(file, null, 2) + '\n');
    log(`wrote ${opts.json}`);
  }
  log(`done in ${((nowMs() - t0) / 1000).toFixed(1)} s`);
  const merged = merge([file]);
  if (opts.results) {
    updateResultsFile(opts.results, merged, deviceHeading(merged));
    log(`updated ${opts.results}`);
  }
  process.stdout.write('\n' + renderAll(merged));
  if (figures.some((f) => f.status === 'wrong')) process.exitCode = 2;
}

main().catch((e) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
