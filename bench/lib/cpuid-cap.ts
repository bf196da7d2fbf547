// `--isa avx2` for the sides without a switch of their own: onnxruntime's MLAS picks its kernels
// from the CPUID instruction, so under --isa avx2 it ran AVX-512 against everyone else's AVX2.
// bench/isa-cap/cpuid-avx2.c, preloaded into every side, makes CPUID answer as an AVX2-only CPU
// would (through Linux's CPUID faulting); GLIBC_TUNABLES narrows glibc's own string functions,
// which it chose before the preload ran. Built here with the system's C compiler and checked
// (a CPUID of the preloaded process must read AVX512F off) before any side runs with it.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

const ROOT = path.join(__dirname, '..', '..');
const SOURCE = path.join(ROOT, 'bench', 'isa-cap', 'cpuid-avx2.c');
const LIBRARY = path.join(ROOT, 'build', 'bench', 'cpuid-avx2.so');
const GLIBC_AVX2 = 'glibc.cpu.hwcaps=-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,-AVX512CD';

export type CpuidCap =
  | { env: Record<string, string>; how: string }  // variables that cap a side's process
  | { needless: string }  // the CPU has no AVX-512: every side is at AVX2 already
  | { missing: string };  // capping by CPUID is not possible here, and why

/** The CPU's feature flags (/proc/cpuinfo), or undefined off Linux. */
function cpuFlags(): Set<string> | undefined {
  try {
    const line = fs.readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('flags'));
    return line ? new Set(line.split(':')[1].trim().split(/\s+/)) : undefined;
  } catch {
    return undefined;
  }
}

function build(): string | undefined {
  const fresh = fs.existsSync(LIBRARY) && fs.statSync(LIBRARY).mtimeMs >= fs.statSync(SOURCE).mtimeMs;
  if (fresh) return undefined;
  fs.mkdirSync(path.dirname(LIBRARY), { recursive: true });
  const errors: string[] = [];
  for (const cc of [process.env.CC, 'cc', 'gcc'].filter((c): c is string => !!c)) {
    const r = spawnSync(cc, ['-O2', '-shared', '-fPIC', '-o', LIBRARY, SOURCE, '-ldl'], { encoding: 'utf8', timeout: 60000 });
    if (r.status === 0) return undefined;
    errors.push(`${cc}: ${r.error?.message ?? r.stderr.trim().split('\n')[0]}`);
  }
  return `cannot build ${path.relative(ROOT, SOURCE)} (${errors.join('; ')})`;
}

/** Whether this process runs under the cap (a side started with cpuidCapAvx2()'s environment). */
export function underCpuidCap(env: NodeJS.ProcessEnv = process.env): boolean {
  return (env.LD_PRELOAD ?? '').split(/[\s:]+/).includes(LIBRARY);
}

/** How to run a side as on an AVX2-only CPU through CPUID, or why that cannot be done here. */
export function cpuidCapAvx2(): CpuidCap {
  const flags = cpuFlags();
  if (process.platform !== 'linux' || process.arch !== 'x64' || !flags) return { missing: 'needs Linux on x86-64' };
  if (!flags.has('avx512f')) return { needless: 'the CPU has no AVX-512' };
  if (!flags.has('cpuid_fault')) return { missing: 'the CPU or kernel has no CPUID faulting (cpuid_fault in /proc/cpuinfo)' };
  const failed = build();
  if (failed) return { missing: failed };
  const env = { LD_PRELOAD: [LIBRARY, process.env.LD_PRELOAD].filter(Boolean).join(' '), GLIBC_TUNABLES: GLIBC_AVX2 };
  const check = spawnSync(process.execPath, ['-e', '0'], { env: { ...process.env, ...env, KG_CPUID_CAP_CHECK: '1' }, encoding: 'utf8', timeout: 60000 });
  const said = (check.stderr ?? '').split('\n').find((l) => l.startsWith('cpuid-avx2:'));
  if (check.status !== 0 || said !== 'cpuid-avx2: AVX2 on, AVX512F off') {
    return { missing: `the CPUID cap did not take (${said ?? `exit status ${check.status}`})` };
  }
  return { env, how: `CPUID answered without AVX-512 (${path.relative(ROOT, SOURCE)}, preloaded)` };
}
