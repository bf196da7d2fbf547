// npm run bench [-- --quick] [--device cpu|cuda] [--json FILE] [--only PATTERN]
//
// Measures kernelgrad against the frameworks a user would otherwise pick, in one run on one
// machine, and prints a table of medians and ratios. CPU: PyTorch (bench/reference/torch_cpu.py)
// and onnxruntime-node (bench/reference/onnxruntime.ts) beside ours, each side in fresh processes
// interleaved over rounds (bench/lib/rounds.ts); TensorFlow.js (wasm and cpu backends) in our
// side's process. GPU: ours here; PyTorch from bench/reference/torch_ref.py (see bench/gpu.sh,
// which runs both and merges them with bench/compare.ts). Every kernel of ours is checked against
// a plain float64 reference before it is timed. See bench/README.md.
import { Command } from 'commander';
import * as fs from 'fs';
import * as os from 'os';
import type { BenchFile, Figure } from './lib/schema';
import { SCHEMA } from './lib/schema';
import type { Ctx } from './lib/context';
import { loadOurs } from './lib/ours';
import type { OursResult } from './lib/ours';
import { collectEnv } from './lib/env';
import { deviceHeading, merge, renderAll, updateResultsFile } from './lib/report';
import { NET, Device } from './lib/shapes';
import { nowMs } from './lib/harness';
import { CPU_ISA_CAPS, CpuIsaCap, runRounds } from './lib/rounds';
import { cpuidCapAvx2 } from './lib/cpuid-cap';
import type { CpuidCap } from './lib/cpuid-cap';

import * as copyCase from './cases/copy';
import * as gemmCase from './cases/gemm';
import * as bnCase from './cases/batchnorm';
import * as convCase from './cases/conv2d';
import * as poolCase from './cases/avgpool';
import * as trainCase from './cases/train-step';
import * as inferCase from './cases/inference';
import * as foldCase from './cases/fold';
import * as epochCase from './cases/epoch';
import * as raceCase from './cases/race';

const CASES = [copyCase, gemmCase, bnCase, convCase, poolCase, trainCase, inferCase, foldCase, epochCase, raceCase];
const IMPLS = ['kernelgrad', 'tfjs-wasm', 'tfjs-cpu', 'tfjs-node'];

interface Options {
  quick: boolean;
  device: string;
  json?: string;
  only?: string;
  tfjs: boolean;
  tfjsCpu: boolean;
  torch: boolean;
  onnxruntime: boolean;
  epoch: boolean;
  results?: string;
  rounds?: string;
  threads: string;
  inProcess: boolean;
  ours: boolean;
  isa?: string;
}

async function main(): Promise<void> {
  const program = new Command()
    .name('npm run bench --')
    .description('kernelgrad benchmarks against TensorFlow.js (CPU) or PyTorch (GPU, via bench/gpu.sh)')
    .option('--quick', 'fewer repeats, skip the multi-second reference calls (about a minute on 2 cores)', false)
    .option('--device <device>', 'cpu or cuda', 'cpu')
    .option('--json <file>', 'write every figure and the environment as JSON')
    .option('--only <pattern>', "regular expression over 'case shape impl', e.g. 'bn\\.' or 'net\\.train_step' or 'tfjs-wasm'")
    .option('--no-tfjs', 'CPU: skip the TensorFlow.js references')
    .option('--no-tfjs-cpu', "CPU: skip TensorFlow.js's cpu backend (plain JS, minutes in all)")
    .option('--no-torch', 'CPU: skip the PyTorch reference')
    .option('--no-onnxruntime', 'CPU: skip the onnxruntime-node reference')
    .option('--rounds <n>', 'CPU: rounds of fresh processes per side, interleaved (default 3, --quick 1)')
    .option('--threads <n>', 'CPU: threads of every side (OMP_NUM_THREADS, torch.set_num_threads, intraOpNumThreads)', String(os.cpus().length))
    .option('--isa <isa>', `CPU: cap every side at this instruction set (${CPU_ISA_CAPS.join(', ')}), as on a CPU without AVX-512; onnxruntime through CPUID faulting where Linux offers it`)
    .option('--no-epoch', 'skip the epoch and memory figures')
    .option('--in-process', 'CPU: measure ours (and TensorFlow.js) in this process only, no rounds, no PyTorch or onnxruntime', false)
    .option('--no-ours', 'with --in-process: TensorFlow.js only (the side-by-side run gives it a process of its own)')
    .option('--results <file>', "rewrite this device's section of a RESULTS.md (e.g. bench/RESULTS.md)")
    .parse(process.argv);
  const opts = program.opts<Options>();
  if (opts.device !== 'cpu' && opts.device !== 'cuda') throw new Error(`--device must be cpu or cuda, got ${opts.device}`);
  const t0 = nowMs();
  const log = (msg: string) => process.stderr.write(`[${((nowMs() - t0) / 1000).toFixed(1).padStart(6)} s] ${msg}\n`);
  if (!opts.ours && !(opts.device === 'cpu' && opts.inProcess)) throw new Error('--no-ours applies to --in-process on the CPU');
  let files: BenchFile[];
  if (opts.device === 'cpu' && !opts.inProcess) {
    const rounds = Number(opts.rounds ?? (opts.quick ? 1 : 3));
    const threads = Number(opts.threads);
    if (!Number.isSafeInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a positive integer, got ${opts.rounds}`);
    if (!Number.isSafeInteger(threads) || threads < 1) throw new Error(`--threads must be a positive integer, got ${opts.threads}`);
    if (opts.isa !== undefined && !(CPU_ISA_CAPS as readonly string[]).includes(opts.isa)) throw new Error(`--isa must be one of ${CPU_ISA_CAPS.join(', ')}, got ${opts.isa}`);
    const load0 = os.loadavg();
    const isa = opts.isa as CpuIsaCap | undefined;
    const cpuidCap = isa ? cpuidCapAvx2() : undefined;
    if (cpuidCap) log(`CPUID cap: ${'how' in cpuidCap ? cpuidCap.how : 'needless' in cpuidCap ? `not needed, ${cpuidCap.needless}` : `unavailable, ${cpuidCap.missing}`}`);
    files = runRounds({ rounds, threads, quick: opts.quick, only: opts.only, tfjs: opts.tfjs, tfjsCpu: opts.tfjsCpu, torch: opts.torch, onnxruntime: opts.onnxruntime, isa, cpuidCap, log });
    const [l1, l5] = os.loadavg();
    if (isa && cpuidCap) files[0]?.env.notes.push(capNote(isa, cpuidCap));
    files[0]?.env.notes.push(`load average (1 min, 5 min) over the side-by-side run: at start ${load0[0].toFixed(2)}, ${load0[1].toFixed(2)}; at end ${l1.toFixed(2)}, ${l5.toFixed(2)} on ${os.cpus().length} cores`);
  } else {
    if (opts.isa !== undefined) throw new Error('--isa applies to the side-by-side CPU run; in one process set KG_CPU_ISA instead');
    files = [await measureHere(opts, log)];
  }
  if (opts.json) {
    // One file per side: ours at FILE, the references beside it (FILE.torch.json, ...), as compare.ts takes them.
    files.forEach((f, i) => {
      const impl = f.figures[0]?.impl ?? f.env.framework;
      const out = i === 0 ? opts.json! : opts.json!.replace(/(\.json)?$/, `.${impl}.json`);
      fs.writeFileSync(out, JSON.stringify(f, null, 2) + '\n');
      log(`wrote ${out}`);
    });
  }
  log(`done in ${((nowMs() - t0) / 1000).toFixed(1)} s`);
  const merged = merge(files);
  if (opts.results) {
    // A capped run has its own section: it does not replace the CPU's own figures.
    updateResultsFile(opts.results, merged, deviceHeading(merged, opts.isa), opts.isa ? `${merged.device}-${opts.isa}` : merged.device);
    log(`updated ${opts.results}`);
  }
  process.stdout.write('\n' + renderAll(merged));
  if (merged.figures.some((f) => f.status === 'wrong')) process.exitCode = 2;
}

/** What --isa did to each side, for the notes under the table. */
function capNote(isa: CpuIsaCap, cap: CpuidCap): string {
  const vars = `ours KG_CPU_ISA, OpenBLAS OPENBLAS_CORETYPE=Haswell, oneDNN DNNL_MAX_CPU_ISA, ATen ATEN_CPU_CAPABILITY`;
  const onnx = 'how' in cap
    ? `and every side's ${cap.how}, which caps onnxruntime's MLAS too`
    : 'needless' in cap
      ? `${cap.needless}, so onnxruntime runs AVX2 as well`
      : `onnxruntime's MLAS could not be capped (${cap.missing}) and runs the CPU's widest`;
  return `--isa ${isa}: every side capped at ${isa.toUpperCase()} (${vars}); ${onnx}`;
}

/** Ours (and TensorFlow.js on the CPU) in this process. */
async function measureHere(opts: Options, log: (msg: string) => void): Promise<BenchFile> {
  const device = opts.device as Device;
  const re = opts.only ? new RegExp(opts.only, 'i') : null;
  const load0 = os.loadavg();

  const notes: string[] = [];
  const versions: Record<string, string> = {};
  const loaded: OursResult = opts.ours ? loadOurs(device) : { ok: false, reason: 'not measured in this process (--no-ours)' };
  if (loaded.ok) {
    Object.assign(versions, loaded.ours.versions);
    notes.push(...loaded.ours.notes);
  } else if (opts.ours) {
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
  else if (tfjs && !opts.tfjsCpu) notes.push('--no-tfjs-cpu: tfjs-cpu not run (plain JS; seconds to tens of seconds a call)');
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
    tfjsBackends: tfjs ? tfjs.backends.filter((b) => b === 'wasm' || (!opts.quick && opts.tfjsCpu)) : [],
    log,
    ceilings: {},
    epoch: opts.epoch,
  };
  log(`device ${device}${opts.quick ? ', --quick' : ''}${re ? `, --only ${re.source}` : ''}`);
  for (const c of CASES) figures.push(...(await c.run(ctx)));
  // --no-ours: the cases' placeholder rows for ours would stand in for the figures of ours' own process.
  const kept = opts.ours ? figures : figures.filter((f) => !f.impl.startsWith('kernelgrad'));

  if (device === 'cpu') {
    const [l1, l5] = os.loadavg();
    notes.push(`load average (1 min, 5 min) at start ${load0[0].toFixed(2)}, ${load0[1].toFixed(2)}; at end ${l1.toFixed(2)}, ${l5.toFixed(2)} on ${os.cpus().length} cores`);
  }
  return {
    schema: SCHEMA,
    env: collectEnv({ framework: opts.ours ? 'kernelgrad' : 'tfjs', device, quick: opts.quick, deviceName: loaded.ok ? loaded.ours.deviceName : undefined, versions, notes }),
    figures: kept,
  };
}

main().catch((e) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
