// The CPUID cap behind `npm run bench -- --isa avx2` (bench/isa-cap/cpuid-avx2.c): a process run
// under it sees a CPU without AVX-512 -- our addon, which reads CPUID like onnxruntime does, picks
// AVX2 with no KG_CPU_ISA set -- and otherwise behaves as it would without it: WebAssembly traps
// (Node's own SIGSEGV handler) still throw, and a SIGSEGV still ends the process.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { cpuidCapAvx2, underCpuidCap } from '../../bench/lib/cpuid-cap';
import { sideEnv } from '../../bench/lib/rounds';

const ADDON = path.join(__dirname, '..', '..', 'build', 'Release', 'kernelgrad.node');
const cap = cpuidCapAvx2();
const flags = fs.existsSync('/proc/cpuinfo') ? fs.readFileSync('/proc/cpuinfo', 'utf8') : '';

function underCap(script: string): ReturnType<typeof spawnSync> {
  if (!('env' in cap)) throw new Error('no cap');
  const env = { ...process.env, ...cap.env };
  delete env.KG_CPU_ISA;
  return spawnSync(process.execPath, ['-e', script], { env, encoding: 'utf8', timeout: 60000 });
}

test('the cap is used exactly where it can be: CPUID faulting on an AVX-512 CPU', () => {
  const canFault = /\bcpuid_fault\b/.test(flags) && process.arch === 'x64';
  if (!/\bavx512f\b/.test(flags)) expect('needless' in cap || 'missing' in cap).toBe(true);
  else expect('env' in cap).toBe(canFault);
});

test('sideEnv preloads the cap under --isa avx2 only', () => {
  const fake = { env: { LD_PRELOAD: '/x/cpuid-avx2.so', GLIBC_TUNABLES: 'glibc.cpu.hwcaps=-AVX512F' }, how: 'test' };
  expect(sideEnv({ threads: 2, isa: 'avx2', cpuidCap: fake, log: () => {} })).toMatchObject(fake.env);
  const plain = sideEnv({ threads: 2, cpuidCap: fake, log: () => {} });
  expect(plain.LD_PRELOAD).toBe(process.env.LD_PRELOAD);
  expect(plain.GLIBC_TUNABLES).toBe(process.env.GLIBC_TUNABLES);
});

test("a side knows it runs under the cap (onnxruntime's notes say so) from its LD_PRELOAD", () => {
  expect(underCpuidCap({ LD_PRELOAD: '' })).toBe(false);
  expect(underCpuidCap({ LD_PRELOAD: '/elsewhere/cpuid-avx2.so' })).toBe(false);
  if ('env' in cap) {
    expect(underCpuidCap({ ...cap.env })).toBe(true);
    expect(underCpuidCap({ LD_PRELOAD: `/lib/other.so:${cap.env.LD_PRELOAD}` })).toBe(true);
  }
});

const withCap = 'env' in cap ? describe : describe.skip;
withCap('a process under the cap', () => {
  test('reads no AVX-512 through CPUID: the addon picks AVX2 by itself', () => {
    const r = underCap(`process.stdout.write(require(${JSON.stringify(ADDON)}).cpuIsa())`);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('avx2');
  });

  test("keeps Node's SIGSEGV handling: a WebAssembly out-of-bounds load still throws", () => {
    // (module (memory 1) (func (export "f") (result i32) (i32.load (i32.const 131072))))
    const wasm = [0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 127, 3, 2, 1, 0, 5, 3, 1, 0, 1, 7, 5, 1, 1, 102, 0, 0, 10, 11, 1, 9, 0, 65, 128, 128, 8, 40, 2, 0, 11];
    const r = underCap(`const m = new WebAssembly.Instance(new WebAssembly.Module(new Uint8Array(${JSON.stringify(wasm)})));
      try { m.exports.f(); } catch (e) { process.stdout.write(e.constructor.name); }`);
    expect(r.stdout).toBe('RuntimeError');
  });

  test('still ends on a SIGSEGV', () => {
    const r = underCap(`process.kill(process.pid, 'SIGSEGV'); setTimeout(() => process.stdout.write('survived'), 200)`);
    expect(r.signal).toBe('SIGSEGV');
    expect(r.stdout).toBe('');
  });
});
