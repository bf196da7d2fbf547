// The CPU kernels' instruction set: the widest the CPU has, a narrower one when KG_CPU_ISA asks,
// never a wider one. Every narrower path this CPU can run is checked by running the GEMM,
// convolution and batch norm tests (and the fused inference blocks built on them) again in a child
// jest with KG_CPU_ISA set (the choice is made once, at load).
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as kg from '../../lib';
import { native } from '../../lib/native';

type Isa = 'avx512' | 'avx2' | 'baseline';
const ORDER: Isa[] = ['baseline', 'avx2', 'avx512'];

/** What this CPU supports, from /proc/cpuinfo (the addon asks CPUID; this is an independent read). */
function widestOfCpu(): Isa {
  const info = fs.existsSync('/proc/cpuinfo') ? fs.readFileSync('/proc/cpuinfo', 'utf8') : '';
  const flags = new Set((/^flags\s*:(.*)$/m.exec(info)?.[1] ?? '').trim().split(/\s+/));
  if (['avx512f', 'avx512vl', 'avx512dq', 'avx512bw', 'avx2', 'fma'].every((f) => flags.has(f))) return 'avx512';
  if (flags.has('avx2') && flags.has('fma')) return 'avx2';
  return 'baseline';
}

function narrower(a: Isa, b: Isa): Isa {
  return ORDER.indexOf(a) < ORDER.indexOf(b) ? a : b;
}

const asked = process.env.KG_CPU_ISA as Isa | undefined;
const onLinuxX64 = process.platform === 'linux' && process.arch === 'x64';
const linuxTest = onLinuxX64 ? test : test.skip;

linuxTest('the kernels use the widest ISA of the CPU, or the narrower one KG_CPU_ISA names', () => {
  const best = widestOfCpu();
  const want = asked && ORDER.includes(asked) ? narrower(asked, best) : best;
  expect(native.cpuIsa()).toBe(want);
  expect(kg.devices()[0]).toMatchObject({ type: 'cpu', isa: want });
});

// The hot loops' AVX2 clones: in every build but the one that tests the baseline code
// (`npm run test:baseline` loads it with KG_BASELINE_BUILD=1).
linuxTest('the multiversioned loops have their AVX2 clones, except in the baseline build', () => {
  expect(native.cpuMultiversioned()).toBe(process.env.KG_BASELINE_BUILD !== '1');
});

// Only in the parent run: the child runs set KG_CPU_ISA themselves.
const parentTest = onLinuxX64 && !asked ? test : test.skip;
const root = path.resolve(__dirname, '../..');

function runChild(isa: string, files: string[]): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [path.join(root, 'node_modules/jest/bin/jest.js'), '--runInBand', ...files], {
    cwd: root,
    env: { ...process.env, KG_CPU_ISA: isa },
    encoding: 'utf8',
    timeout: 300_000,
  });
  return { status: r.status, out: `${r.stdout}\n${r.stderr}` };
}

parentTest.each(ORDER.slice(0, -1))('GEMM, convolutions and batch norm pass on the %s path too', (isa) => {
  const best = widestOfCpu();
  if (ORDER.indexOf(isa as Isa) >= ORDER.indexOf(best)) return; // the parent run already covers the widest
  const r = runChild(isa, ['test/native/isa.test.ts', 'test/native/gemm.test.ts', 'test/native/conv2d.test.ts', 'test/native/batchnorm.test.ts',
    'test/native/reduce.test.ts', 'test/native/pool.test.ts', 'test/core/batchnorm-relu-pool.test.ts', 'test/nn/inference-blocks.test.ts']);
  if (r.status !== 0) throw new Error(`KG_CPU_ISA=${isa}: jest exited ${r.status}\n${r.out.slice(-4000)}`);
  expect(r.out).toMatch(/Tests:.*\b[1-9]\d* passed/);
  expect(r.out).not.toMatch(/Tests:.*failed/);
});

parentTest('a wider ISA than the CPU has is never chosen', () => {
  if (widestOfCpu() === 'avx512') return; // nothing wider to ask for here
  const r = runChild('avx512', ['test/native/isa.test.ts']);
  expect(r.status).toBe(0);
});

// Batch norm's statistics accumulate in double, 8 lanes to a vector with AVX-512 and 4 with AVX2,
// each lane over the same elements in the same order: the two builds give the same bits.
parentTest('batch norm (also fused with ReLU and pool) and the pool are bitwise equal on the AVX-512 and AVX2 paths', () => {
  if (widestOfCpu() !== 'avx512') return; // only one of the two paths runs here
  const script = `
    const native = require(${JSON.stringify(path.join(root, 'build/Release/kernelgrad.node'))});
    const n = 6, c = 3, l = 1000, m = n * c * l;
    const x = new native.Storage(0, m), dy = new native.Storage(0, m);
    const xs = new Float32Array(m), ds = new Float32Array(m);
    for (let i = 0; i < m; i++) { xs[i] = Math.sin(i * 0.37) * 3 + (i % 7); ds[i] = Math.cos(i * 0.11); }
    x.write(xs); dy.write(ds);
    const st = (k) => new native.Storage(0, k);
    const gamma = st(c), beta = st(c); gamma.write(new Float32Array([1.5, 0.5, 2])); beta.write(new Float32Array(c));
    const y = st(m), mean = st(c), lo = st(c), inv = st(c), dx = st(m), dg = st(c), db = st(c);
    native.batchNormForwardTrain([n, c, l], x, gamma, beta, 1e-5, y, mean, lo, inv, null, null, null, 0, false, null, false, null, 0);
    native.batchNormBackwardTrain([n, c, l], x, dy, gamma, mean, lo, inv, dx, dg, db);
    // Fused with ReLU and the 2x2 pool (AVX-512 kernels of their own) on 25x40 planes: rows of 20
    // windows, an odd last row.
    const pool = [n, c, 25, 40, 2, 2, 2, 2], pooled = n * c * 12 * 20;
    const py = st(pooled), pdy = st(pooled), pdx = st(m), pg = st(c), pb = st(c), pool1 = st(pooled);
    pdy.write(ds.subarray(0, pooled));
    native.batchNormReluPoolForwardTrain(pool, x, gamma, beta, 1e-5, py, mean, lo, inv, null, null, null, 0, false, null, false, null, 0);
    native.batchNormReluPoolBackwardTrain(pool, x, pdy, gamma, beta, mean, lo, inv, pdx, pg, pb);
    native.avgPool2dForward([n, c, 25, 40, 2, 2, 2, 2], x, pool1);
    // Inference on 9x9 planes (runs ending in a partial vector), with NaN, infinities and -0 in x.
    const ix = st(n * c * 81), iy = st(n * c * 81), iry = st(n * c * 81), rv = st(c);
    const xi = xs.slice(0, n * c * 81);
    xi[3] = NaN; xi[90] = Infinity; xi[91] = -Infinity; xi[200] = -0; xi[400] = 1e-40;
    ix.write(xi); rv.write(new Float32Array([0.5, 2, 1e-3]));
    native.batchNormForwardInfer([n, c, 81], ix, gamma, beta, mean, rv, 1e-5, iy);
    native.batchNormReluForwardInfer([n, c, 81], ix, gamma, beta, mean, rv, 1e-5, iry);
    const out = [y, mean, lo, inv, dx, dg, db, py, pdx, pg, pb, pool1, iy, iry].map((s) => Array.from(new Uint32Array(s.read().buffer)));
    process.stdout.write(JSON.stringify(out));`;
  const run = (isa: string) => {
    const r = spawnSync(process.execPath, ['-e', script], { cwd: root, env: { ...process.env, KG_CPU_ISA: isa }, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`KG_CPU_ISA=${isa}: ${r.stderr}`);
    return JSON.parse(r.stdout) as number[][];
  };
  expect(run('avx2')).toEqual(run('avx512'));
});

// The GEMM kernels sum each element's products in k order, one FMA at a time, with AVX-512 (up to
// four 16-column panels per kernel) as with AVX2 (one panel as two 8-column halves): the same bits.
// So are the convolutions that run through the GEMM (more than one input channel), all three
// directions. (The one-input-channel direct kernels are not: their filter gradient sums in lanes.)
parentTest('GEMM and the GEMM-based convolutions are bitwise equal on the AVX-512 and AVX2 paths', () => {
  if (widestOfCpu() !== 'avx512') return;
  const script = `
    const native = require(${JSON.stringify(path.join(root, 'build/Release/kernelgrad.node'))});
    const st = (m, f) => { const s = new native.Storage(0, m); if (f) { const a = new Float32Array(m); for (let i = 0; i < m; i++) a[i] = f(i); s.write(a); } return s; };
    // Each output as its length and an FNV-1a hash of its bits (the arrays themselves are megabytes of JSON).
    const bits = (s) => {
      const u = new Uint32Array(s.read().buffer);
      let h = 0x811c9dc5;
      for (const v of u) h = Math.imul(h ^ v, 0x01000193) >>> 0;
      return u.length + ':' + h.toString(16);
    };
    const out = [];
    // Partial tiles, one to four panels per group, several k blocks, every transpose; last panels
    // of 1, 2, 4 and 5 rows (the kernels compute 2, 4 or 6), with A packed and read in place.
    for (const [ta, tb, m, n, k] of [[false, false, 37, 150, 1100], [true, false, 64, 65, 77], [false, true, 7, 33, 513], [true, true, 100, 18, 600],
      [false, false, 2, 70, 40], [false, false, 50, 300, 33], [true, false, 5, 40, 9]]) {
      const A = st(m * k, (i) => Math.sin(i * 0.37)), B = st(k * n, (i) => Math.cos(i * 0.13)), C = st(m * n, (i) => i % 5);
      native.gemm(ta, tb, m, n, k, 1, A, B, 0.5, C);
      out.push(bits(C));
    }
    // The tutorial's layer 2, a strided padded layer, and a ResNet-like 3x3 layer (the last two
    // through the shifted views of conv2d_shifted.cpp, the third's backward data too; with 37 and
    // 40 filters their filter gradients are GEMMs, where 16 or fewer would sum vectors' lanes, 8
    // or 16 of them, in conv2d_shifted_weight_lanes.cpp); then two more size-keeping layers on the
    // shifted path: a 5x5 kernel on 7x9 planes (one partial chunk of wide columns) and a 3x5 one
    // on 20x21 (seven chunks).
    for (const shape of [[8, 20, 13, 13, 50, 5, 5, 1, 1, 0, 0, 1], [5, 3, 17, 19, 37, 3, 3, 2, 1, 1, 1, 1], [6, 8, 10, 10, 40, 3, 3, 1, 1, 1, 1, 1],
      [3, 5, 7, 9, 22, 5, 5, 1, 1, 2, 2, 1], [2, 6, 20, 21, 18, 3, 5, 1, 1, 1, 2, 1]]) {
      const [n, c, h, w, kk, kh, kw, sh, sw, ph, pw] = shape;
      const oh = Math.floor((h + 2 * ph - kh) / sh) + 1, ow = Math.floor((w + 2 * pw - kw) / sw) + 1;
      const x = st(n * c * h * w, (i) => Math.sin(i * 0.7)), wt = st(kk * c * kh * kw, (i) => Math.cos(i * 0.3)), b = st(kk, (i) => i * 0.1);
      const y = st(n * kk * oh * ow), dx = st(n * c * h * w), dw = st(kk * c * kh * kw), db = st(kk);
      native.conv2dForward(shape, x, wt, b, y);
      native.conv2dBackwardData(shape, y, wt, dx);
      native.conv2dBackwardWeight(shape, x, y, dw, db);
      out.push(bits(y), bits(dx), bits(dw), bits(db));
    }
    // A stride-2 layer's backward data, phase by phase (conv2d_strided_data.cpp): four stride-1
    // convolutions on the shifted path. (Its 12 filters' gradient sums lanes: not compared.)
    {
      const shape = [4, 8, 15, 16, 12, 3, 3, 2, 2, 1, 1, 1];
      const x = st(4 * 8 * 15 * 16, (i) => Math.sin(i * 0.7)), wt = st(12 * 8 * 9, (i) => Math.cos(i * 0.3));
      const y = st(4 * 12 * 8 * 8), dx = st(4 * 8 * 15 * 16);
      native.conv2dForward(shape, x, wt, null, y);
      native.conv2dBackwardData(shape, y, wt, dx);
      out.push(bits(y), bits(dx));
    }
    process.stdout.write(JSON.stringify(out));`;
  const run = (isa: string) => {
    const r = spawnSync(process.execPath, ['-e', script], { cwd: root, env: { ...process.env, KG_CPU_ISA: isa }, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`KG_CPU_ISA=${isa}: ${r.stderr}`);
    return JSON.parse(r.stdout) as string[];
  };
  const [wide, narrow] = [run('avx512'), run('avx2')];
  expect(wide.length).toBe(29);
  expect(narrow).toEqual(wide);
});
