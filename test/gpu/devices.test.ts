// How a process sees the CUDA device, checked in fresh processes (the device list is read once per
// process). Under the emulator, which can pose as a machine whose driver is too old for the CUDA
// runtime, the unusable installation must show as such, with the runtime's reason, in
// kg.devices(), in the error for a CUDA tensor and in `--device cuda`; on a GPU, the device a
// fresh process lists must be a real, usable one.
import { spawnSync } from 'child_process';
import * as path from 'path';
import { describeGpu, emulated } from './helpers';

const ROOT = path.resolve(__dirname, '../..');

function node(args: string[], env: Record<string, string>) {
  const r = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, ...env },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const LIST = `
const kg = require('./lib');
let error = '';
try { kg.zeros([2], { device: 'cuda' }); } catch (e) { error = e.message; }
console.log(JSON.stringify({ devices: kg.devices(), available: kg.cuda.isAvailable(), reason: kg.cuda.unavailableReason(), error }));
`;

function listIn(env: Record<string, string>) {
  const r = node(['-e', LIST], env);
  if (r.code !== 0) throw new Error(`the child process exited with ${r.code}:\n${r.stderr}`);
  return JSON.parse(r.stdout);
}

describeGpu('CUDA device discovery', () => {
  if (emulated) {
    test('a driver too old for the runtime is listed as an unusable CUDA entry with the reason', () => {
      const got = listIn({ EMU_DEVICE_COUNT_ERROR: 'insufficient-driver' });
      const cuda = got.devices.filter((d: { type: string }) => d.type === 'cuda');
      expect(cuda).toHaveLength(1);
      expect(cuda[0]).toMatchObject({ usable: false });
      expect(cuda[0].reason).toMatch(/cudaGetDeviceCount failed: cudaErrorInsufficientDriver/);
      expect(cuda[0].reason).toMatch(/driver supports CUDA 11\.8; .*CUDA runtime is 12\.4/);
      expect(got.available).toBe(false);
      expect(got.reason).toContain(cuda[0].reason);
      expect(got.error).toMatch(/device 'cuda' requested, but no usable CUDA device: .*cudaErrorInsufficientDriver/);
    });

    test('a driver but no GPU: listed as unusable with cudaErrorNoDevice as the reason', () => {
      const got = listIn({ EMU_DEVICE_COUNT_ERROR: 'no-device' });
      const cuda = got.devices.filter((d: { type: string }) => d.type === 'cuda');
      expect(cuda).toMatchObject([{ usable: false }]);
      expect(got.available).toBe(false);
      expect(got.reason).toMatch(/cudaErrorNoDevice: no CUDA-capable device is detected/);
    });

    test('--device cuda prints the reason and exits non-zero, without a stack trace', () => {
      const r = node([path.join(ROOT, 'lib/cli/main.ts'), 'train', '--device', 'cuda', '--epochs', '1'], {
        EMU_DEVICE_COUNT_ERROR: 'insufficient-driver',
        KG_DEBUG: '',
      });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/cudaErrorInsufficientDriver: CUDA driver version is insufficient/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    });
  }

  test('a fresh process lists one usable CUDA device, emulated exactly when the emulator is loaded', () => {
    const got = listIn({});
    const cuda = got.devices.filter((d: { type: string }) => d.type === 'cuda');
    expect(cuda.length).toBeGreaterThan(0);
    expect(cuda[0]).toMatchObject({ usable: true, emulated });
    expect(got.available).toBe(true);
    expect(got.reason).toBe('');
    expect(got.error).toBe('');
    if (emulated) expect(cuda[0].name).toBe('kernelgrad CUDA emulator');
  });
});
