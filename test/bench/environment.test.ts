// The environment each side of the CPU bench runs in: every side at its widest instruction set
// unless --isa caps them all, whatever the caller's shell holds; and a capped run's table in its
// own section of RESULTS.md.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { sideEnv } from '../../bench/lib/rounds';
import { updateResultsFile } from '../../bench/lib/report';
import type { Merged } from '../../bench/lib/report';

const NARROWING = { KG_CPU_ISA: 'baseline', OPENBLAS_CORETYPE: 'Haswell', DNNL_MAX_CPU_ISA: 'SSE41', ATEN_CPU_CAPABILITY: 'default' };

function withEnv<T>(vars: Record<string, string>, f: () => T): T {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  try {
    return f();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

test('without --isa, the variables that narrow a side are left out, and the log says so', () => {
  const logged: string[] = [];
  const env = withEnv(NARROWING, () => sideEnv({ threads: 3, log: (m) => logged.push(m) }));
  for (const name of Object.keys(NARROWING)) {
    expect(env[name]).toBeUndefined();
    expect(logged.some((m) => m.startsWith(`${name}=`))).toBe(true);
  }
  expect(env.OMP_NUM_THREADS).toBe('3');
  expect(env.PATH).toBe(process.env.PATH);
});

test('--isa avx2 caps every side, whatever the shell held', () => {
  const env = withEnv(NARROWING, () => sideEnv({ threads: 2, isa: 'avx2', log: () => {} }));
  expect(env).toMatchObject({ KG_CPU_ISA: 'avx2', OPENBLAS_CORETYPE: 'Haswell', DNNL_MAX_CPU_ISA: 'AVX2', ATEN_CPU_CAPABILITY: 'avx2', OMP_NUM_THREADS: '2' });
});

test("a capped run's table goes to its own section: the CPU's own figures stay", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kg-results-'));
  try {
    const file = path.join(dir, 'RESULTS.md');
    const empty: Merged = { device: 'cpu', files: [], figures: [] };
    updateResultsFile(file, empty, '## CPU plain');
    updateResultsFile(file, empty, '## CPU capped', 'cpu-avx2');
    updateResultsFile(file, empty, '## CPU plain again');
    const text = fs.readFileSync(file, 'utf8');
    expect(text).toContain('## CPU capped');
    expect(text).toContain('## CPU plain again');
    expect(text).not.toContain('## CPU plain\n');
    expect(text.indexOf('<!-- results:cpu -->')).toBeLessThan(text.indexOf('<!-- results:cpu-avx2 -->'));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
