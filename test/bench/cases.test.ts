// Every benchmark case of ours runs and passes its own check: `npm run bench` with --quick, in this
// process only (no references), each figure written to a JSON file. A case that breaks -- an op
// whose binding changed under it, a check that no longer holds -- fails here rather than as a
// "failed" row in the next full run. (Timings are not looked at: tests check behaviour.)
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { BenchFile } from '../../bench/lib/schema';

const root = path.resolve(__dirname, '../..');

test('every kernelgrad case of the CPU bench runs and passes its check', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kg-bench-'));
  const json = path.join(dir, 'cpu.json');
  try {
    // The MNIST race trains to 99% (its own test lives in test/train); everything else runs.
    const r = spawnSync(process.execPath, [path.join(root, 'node_modules/ts-node/dist/bin.js'), '--transpile-only', 'bench/run.ts',
      '--quick', '--in-process', '--no-tfjs', '--no-epoch', '--only', '^(?!race)', '--json', json], { cwd: root, encoding: 'utf8', timeout: 300_000 });
    if (r.status !== 0) throw new Error(`bench exited ${r.status}\n${(r.stdout + r.stderr).slice(-3000)}`);
    const file = JSON.parse(fs.readFileSync(json, 'utf8')) as BenchFile;
    const ours = file.figures.filter((f) => f.impl === 'kernelgrad');
    const cases = new Set(ours.map((f) => f.case));
    for (const c of ['gemm', 'bn.train_fwd', 'bn.backward', 'bn_relu.backward', 'conv.fwd', 'conv.bwd_data', 'conv.bwd_filter', 'pool.fwd', 'pool.bwd', 'net.train_step', 'net.infer']) {
      expect(cases).toContain(c);
    }
    const broken = ours.filter((f) => f.status !== 'ok' || (f.check && f.check.status !== 'pass'));
    expect(broken.map((f) => `${f.case} ${f.shape}: ${f.status} ${f.check?.status ?? ''} ${f.note ?? ''}`)).toEqual([]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 300_000);

// The side-by-side run measures TensorFlow.js in a process of its own (`--in-process --no-ours`):
// that process's file holds TensorFlow.js's figures and no placeholder rows for ours.
test('--no-ours measures TensorFlow.js alone, and applies to --in-process only', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kg-bench-'));
  const json = path.join(dir, 'tfjs.json');
  const bench = (...args: string[]) =>
    spawnSync(process.execPath, [path.join(root, 'node_modules/ts-node/dist/bin.js'), '--transpile-only', 'bench/run.ts', ...args],
      { cwd: root, encoding: 'utf8', timeout: 300_000 });
  try {
    const r = bench('--quick', '--in-process', '--no-ours', '--no-epoch', '--only', 'gemm 64x800x128', '--json', json);
    if (r.status !== 0) throw new Error(`bench exited ${r.status}\n${(r.stdout + r.stderr).slice(-3000)}`);
    const file = JSON.parse(fs.readFileSync(json, 'utf8')) as BenchFile;
    expect(file.env.framework).toBe('tfjs');
    expect(file.figures.filter((f) => f.impl.startsWith('kernelgrad'))).toEqual([]);
    expect(file.figures.find((f) => f.impl === 'tfjs-wasm' && f.case === 'gemm')?.status).toBe('ok');

    const wrong = bench('--no-ours', '--only', 'gemm 64x800x128', '--rounds', '1');
    expect(wrong.status).not.toBe(0);
    expect(wrong.stderr).toContain('--no-ours applies to --in-process');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 300_000);
