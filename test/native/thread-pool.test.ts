// The CPU kernels' thread pool (native/cpu/thread_pool.h): how many threads it takes, loops from
// several Node threads at once, and processes that end with its workers alive.
import { spawnSync } from 'child_process';
import * as os from 'os';
import * as path from 'path';
import { Worker } from 'worker_threads';
import * as kg from '../../lib';
import { native } from '../../lib/native';
import { Rng, bitwiseEqual, disposeAll, empty, store, withThreads } from './reference';

afterEach(disposeAll);

const root = path.resolve(__dirname, '../..');
const addon = JSON.stringify(path.join(root, 'build/Release/kernelgrad.node'));

/** Runs `script` in a fresh node with `env` added; its stdout. */
function child(script: string, env: NodeJS.ProcessEnv): string {
  const r = spawnSync(process.execPath, ['-e', script], { cwd: root, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`child exited ${r.status} (${r.signal}): ${r.stderr}`);
  return r.stdout;
}

const threadsOfChild = (env: NodeJS.ProcessEnv) => Number(child(`process.stdout.write(String(require(${addon}).cpuThreads()))`, env));

test('the threads: OMP_NUM_THREADS where set, else the CPUs the process may use', () => {
  expect(threadsOfChild({ OMP_NUM_THREADS: '3' })).toBe(3);
  const cpus = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  expect(threadsOfChild({ OMP_NUM_THREADS: undefined })).toBe(cpus);
  expect(threadsOfChild({ OMP_NUM_THREADS: 'many' })).toBe(cpus); // not a count: ignored
});

// A product large enough for every thread (1.3e8 flops), and its bits on one thread.
const M = 200, N = 300, K = 1100;
const A = new Rng(3).array(M * K), B = new Rng(4).array(K * N);
function product(): Float32Array {
  const C = empty(M * N, NaN);
  native.gemm(false, false, M, N, K, 1, store(A), store(B), 0, C);
  return C.read();
}

test('loops from several Node threads at once: each gets the bits of one thread', async () => {
  const alone = withThreads(1, product);
  const script = `
    const { parentPort, workerData: d } = require('worker_threads');
    const native = require(d.bindings)('kernelgrad');
    const st = (a) => { const s = new native.Storage(0, a.length); s.write(a); return s; };
    const a = st(d.A), b = st(d.B), out = [];
    for (let r = 0; r < 5; r++) {
      const c = new native.Storage(0, d.M * d.N);
      native.gemm(false, false, d.M, d.N, d.K, 1, a, b, 0, c);
      out.push(c.read());
    }
    parentPort.postMessage(out);`;
  const bindings = require.resolve('bindings', { paths: [root] });
  const run = () => new Promise<Float32Array[]>((resolve, reject) => {
    const w = new Worker(script, { eval: true, workerData: { bindings, A, B, M, N, K } });
    w.once('message', resolve);
    w.once('error', reject);
  });
  const workers = Promise.all([run(), run(), run()]);
  const here = withThreads(4, () => Array.from({ length: 5 }, product)); // meanwhile, on this thread
  const results = [...(await workers).flat(), ...here];
  expect(results.length).toBe(20);
  for (const r of results) expect(bitwiseEqual(r, alone)).toBe(true);
});

test('more threads than CPUs give the same bits', () => {
  expect(bitwiseEqual(withThreads(2 * os.cpus().length + 1, product), withThreads(1, product))).toBe(true);
});

test('a process ends while the workers wait for work', () => {
  const script = `
    const native = require(${addon});
    const n = 1 << 20, x = new native.Storage(0, n), y = new native.Storage(0, n);
    x.write(new Float32Array(n).fill(-1.5));
    native.reluForward(x, y);
    native.gemm(false, false, 256, 256, 256, 1, new native.Storage(0, 65536), new native.Storage(0, 65536), 0, new native.Storage(0, 65536));
    process.stdout.write('done');`;
  const t0 = Date.now();
  expect(child(script, { OMP_NUM_THREADS: '4' })).toBe('done');
  expect(Date.now() - t0).toBeLessThan(30_000);
});

test('kg.setCpuThreads sets the count kg.devices() reports, and rejects what is not a count', () => {
  const before = native.cpuThreads();
  try {
    kg.setCpuThreads(3);
    expect(kg.devices()[0]).toMatchObject({ type: 'cpu', threads: 3 });
    kg.setCpuThreads(1);
    expect(native.cpuThreads()).toBe(1);
  } finally {
    native.setCpuThreads(before);
  }
  expect(() => kg.setCpuThreads(0)).toThrow(RangeError);
  expect(() => kg.setCpuThreads(2.5)).toThrow(/kg\.setCpuThreads: threads must be an integer from 1 to 1024, got 2\.5/);
  expect(() => kg.setCpuThreads(1025)).toThrow(RangeError);
  expect(() => kg.setCpuThreads(NaN)).toThrow(RangeError);
  expect(() => kg.setCpuThreads('2' as unknown as number)).toThrow(TypeError);
  expect(native.cpuThreads()).toBe(before);
});
