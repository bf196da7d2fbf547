// The CPU run side by side: kernelgrad, PyTorch, onnxruntime-node and TensorFlow.js, each in a
// fresh process, interleaved over rounds (round r starts with side r mod 4), so that a machine
// that gets busier or cooler during the run hurts every side alike. Every side runs with the same
// thread count. A figure is the median of its rounds' medians (the figure of the median round, so
// its throughput and check stay consistent); `rounds` in the JSON holds every round's median.
//
// TensorFlow.js and our epoch/memory figures run in the first round only: they take minutes and
// are not the targets' subject.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { BenchFile, Figure } from './schema';
import { figureKey } from './schema';
import type { CpuidCap } from './cpuid-cap';
import { cpuModel } from './env';
import { NET } from './shapes';

export interface RoundsOptions {
  rounds: number;
  threads: number;
  quick: boolean;
  only?: string;
  tfjs: boolean;
  tfjsCpu: boolean;
  torch: boolean;
  onnxruntime: boolean;
  /** Cap every side at this instruction set (an AVX2-only machine's view); undefined: each side's widest. */
  isa?: CpuIsaCap;
  /** With isa: the CPUID cap (cpuid-cap.ts), for the sides no variable narrows. */
  cpuidCap?: CpuidCap;
  log(msg: string): void;
}

export const CPU_ISA_CAPS = ['avx2'] as const;
export type CpuIsaCap = (typeof CPU_ISA_CAPS)[number];

// The variables through which each side's instruction set can be narrowed. Without --isa every
// side runs at its widest, so none of them may leak in from the caller's environment: a shell
// that sets OPENBLAS_CORETYPE=Haswell (some images do) halves OpenBLAS's SGEMM on an AVX-512 CPU.
const ISA_VARIABLES = ['KG_CPU_ISA', 'OPENBLAS_CORETYPE', 'DNNL_MAX_CPU_ISA', 'ONEDNN_MAX_CPU_ISA', 'ATEN_CPU_CAPABILITY'];

/** The environment of every side: the thread count, and the ISA variables (and CPUID cap) for `isa` only. */
export function sideEnv(o: Pick<RoundsOptions, 'threads' | 'isa' | 'cpuidCap' | 'log'>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: String(o.threads) };
  for (const v of ISA_VARIABLES) {
    if (env[v] !== undefined) o.log(`${v}=${env[v]} left out of the sides' environment${o.isa ? ` (--isa ${o.isa} sets its own)` : ' (every side runs at its widest ISA; --isa avx2 narrows them all)'}`);
    delete env[v];
  }
  if (o.isa === 'avx2') {
    // ours; OpenBLAS's AVX2 kernels; oneDNN (PyTorch's convolutions); ATen's own loops.
    Object.assign(env, { KG_CPU_ISA: 'avx2', OPENBLAS_CORETYPE: 'Haswell', DNNL_MAX_CPU_ISA: 'AVX2', ATEN_CPU_CAPABILITY: 'avx2' });
    // And the CPUID every side reads (onnxruntime's only way), where that can be capped.
    if (o.cpuidCap && 'env' in o.cpuidCap) Object.assign(env, o.cpuidCap.env);
  }
  return env;
}

interface Side {
  name: string;
  framework: BenchFile['env']['framework'];
  /** Runs in the first round only (TensorFlow.js: minutes, and not the targets' subject). */
  firstRoundOnly?: boolean;
  /** The command for round `r` writing `json`, or why this side cannot run here. */
  command(json: string, r: number): { cmd: string; args: string[]; env: NodeJS.ProcessEnv } | { missing: string };
  /** Rows that say "unavailable" when the side cannot run (the cases it would have given). */
  absentRows: Array<[string, string]>;
  impl: string;
}

const ROOT = path.join(__dirname, '..', '..');
const TS_NODE = [require.resolve('ts-node/dist/bin.js'), '--transpile-only'];

/** Debian's python3 with PyTorch (`apt-get install python3-torch`), or KG_BENCH_PYTHON. */
function findTorchPython(): string | { missing: string } {
  const candidates = process.env.KG_BENCH_PYTHON ? [process.env.KG_BENCH_PYTHON] : ['/usr/bin/python3', 'python3'];
  for (const py of candidates) {
    const r = spawnSync(py, ['-c', 'import torch'], { stdio: 'ignore', timeout: 60000 });
    if (r.status === 0) return py;
  }
  return { missing: `no python3 with PyTorch (tried ${candidates.join(', ')}): apt-get install python3-torch python3-numpy libopenblas0-pthread, or set KG_BENCH_PYTHON` };
}

/** The folder where libopenblas0-pthread puts its libblas.so.3 (`dpkg -L` lists it). */
export function openblasDir(): string | undefined {
  const r = spawnSync('dpkg', ['-L', 'libopenblas0-pthread'], { encoding: 'utf8', timeout: 20000 });
  const lib = r.status === 0 ? r.stdout.split('\n').find((l) => l.endsWith('/libblas.so.3')) : undefined;
  return lib ? path.dirname(lib) : undefined;
}

function sides(o: RoundsOptions): Side[] {
  const common = () => [...(o.quick ? ['--quick'] : []), ...(o.only ? ['--only', o.only] : [])];
  const threadsEnv = sideEnv(o);
  const python = o.torch ? findTorchPython() : { missing: 'not run (--no-torch)' };
  const blas = openblasDir();
  return [
    {
      name: 'kernelgrad',
      framework: 'kernelgrad',
      impl: 'kernelgrad',
      absentRows: [],
      command: (json, r) => ({
        cmd: process.execPath,
        args: [...TS_NODE, path.join(ROOT, 'bench', 'run.ts'), '--in-process', '--no-tfjs', '--json', json, ...common(), ...(r > 0 ? ['--no-epoch'] : [])],
        env: threadsEnv,
      }),
    },
    {
      name: 'PyTorch',
      framework: 'pytorch',
      impl: 'torch',
      absentRows: [['net.train_step', NET.trainLabel], ['net.infer', NET.inferLabel]],
      command: (json) => {
        if (typeof python !== 'string') return python;
        const env: NodeJS.ProcessEnv = { ...threadsEnv, OPENBLAS_NUM_THREADS: String(o.threads) };
        if (blas) env.LD_LIBRARY_PATH = [blas, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':');
        return { cmd: python, args: [path.join(ROOT, 'bench', 'reference', 'torch_cpu.py'), '--json', json, '--threads', String(o.threads), ...common()], env };
      },
    },
    {
      name: 'onnxruntime-node',
      framework: 'onnxruntime',
      impl: 'onnxruntime',
      absentRows: [['net.infer', NET.inferLabel], ['net.infer', NET.latencyLabel]],
      command: (json) =>
        o.onnxruntime
          ? { cmd: process.execPath, args: [...TS_NODE, path.join(ROOT, 'bench', 'reference', 'onnxruntime.ts'), '--json', json, '--threads', String(o.threads), ...common()], env: threadsEnv }
          : { missing: 'not run (--no-onnxruntime)' },
    },
    // TensorFlow.js in a process of its own: run in ours' first round, as it was, it slowed the
    // figures of ours measured after it (that round's batch norm 64x50x9x9 three times slower than
    // the other rounds', the training step a fifth).
    ...(o.tfjs
      ? [{
          name: 'TensorFlow.js',
          framework: 'tfjs' as const,
          impl: 'tfjs',
          firstRoundOnly: true,
          absentRows: [],
          command: (json: string) => ({
            cmd: process.execPath,
            args: [...TS_NODE, path.join(ROOT, 'bench', 'run.ts'), '--in-process', '--no-ours', '--no-epoch', '--json', json, ...common(),
              ...(o.tfjsCpu ? [] : ['--no-tfjs-cpu'])],
            env: threadsEnv,
          }),
        }]
      : []),
  ];
}

/** Runs every side `rounds` times, interleaved; one merged BenchFile per side that ran. */
export function runRounds(o: RoundsOptions): BenchFile[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kernelgrad-bench-'));
  const all = sides(o);
  const results = new Map<string, BenchFile[]>();
  const absent: BenchFile[] = [];
  try {
    for (let r = 0; r < o.rounds; r++) {
      const order = all.map((_, i) => all[(i + r) % all.length]);
      for (const side of order) {
        if (side.firstRoundOnly && r > 0) continue;
        const json = path.join(dir, `${side.impl}-${r}.json`);
        const c = side.command(json, r);
        if ('missing' in c) {
          if (r === 0) {
            o.log(`${side.name} absent: ${c.missing}`);
            absent.push(absentFile(side, c.missing, o));
          }
          continue;
        }
        o.log(`round ${r + 1}/${o.rounds}: ${side.name} (fresh process, ${o.threads} threads)`);
        // The side's logs (stderr) show; its own table (stdout) is left out: the merged one follows.
        const run = spawnSync(c.cmd, c.args, { cwd: ROOT, env: c.env, stdio: ['ignore', 'ignore', 'inherit'], timeout: 20 * 60 * 1000 });
        if (!fs.existsSync(json)) {
          const why = run.error ? run.error.message : `exit status ${run.status}${run.signal ? `, signal ${run.signal}` : ''}`;
          o.log(`${side.name} round ${r + 1} wrote no figures (${why})`);
          if (r === 0) absent.push(absentFile(side, `its process failed (${why})`, o, 'failed'));
          continue;
        }
        const f = JSON.parse(fs.readFileSync(json, 'utf8')) as BenchFile;
        results.set(side.impl, [...(results.get(side.impl) ?? []), f]);
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const merged = all.flatMap((s) => {
    const files = results.get(s.impl);
    return files ? [mergeRounds(files)] : [];
  });
  // PyTorch's side names the CPU the same way ours does.
  for (const f of merged) if (f.env.framework !== 'kernelgrad') Object.assign(f.env, { deviceName: cpuModel(), cpu: { model: cpuModel(), cores: os.cpus().length } });
  return [...merged, ...absent];
}

function absentFile(side: Side, why: string, o: RoundsOptions, status: 'unavailable' | 'failed' = 'unavailable'): BenchFile {
  const re = o.only ? new RegExp(o.only, 'i') : null;
  const figures: Figure[] = side.absentRows
    .filter(([c, s]) => !re || re.test(`${c} ${s} ${side.impl}`))
    .map(([c, s]) => ({ case: c, shape: s, impl: side.impl, device: 'cpu', status, note: why }));
  return {
    schema: 'kernelgrad-bench/1',
    env: {
      date: new Date().toISOString(), framework: side.framework, device: 'cpu', deviceName: cpuModel(),
      cpu: { model: cpuModel(), cores: os.cpus().length }, os: `${os.type()} ${os.release()} ${os.arch()}`, quick: o.quick, argv: [],
      versions: {}, notes: [`${side.name} absent: ${why}`],
    },
    figures,
  };
}

/** One file from a side's rounds: per figure, the round with the median median_ms. */
export function mergeRounds(files: BenchFile[]): BenchFile {
  const byKey = new Map<string, Figure[]>();
  for (const f of files) {
    for (const fig of f.figures) {
      const k = `${figureKey(fig)} ${fig.impl}`;
      byKey.set(k, [...(byKey.get(k) ?? []), fig]);
    }
  }
  const figures = [...byKey.values()].map((figs) => {
    const timed = figs.filter((f) => f.status === 'ok' && f.median_ms !== undefined);
    if (timed.length < 2 || timed.length !== figs.length) return figs[0];
    const sorted = [...timed].sort((a, b) => a.median_ms! - b.median_ms!);
    const pick = sorted[(sorted.length - 1) >> 1];
    return { ...pick, rounds: timed.map((f) => f.median_ms!) };
  });
  const env = { ...files[0].env, notes: [...files[0].env.notes, `${files.length} round(s) in fresh processes, interleaved with the other sides; each figure is the median round's`] };
  return { ...files[0], env, figures };
}
