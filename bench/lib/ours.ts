// kernelgrad, loaded lazily: a missing build or a machine without a GPU becomes an 'unavailable'
// row with the reason instead of a crash, so the references still run.
import type * as KG from '../../lib';
import type { Native, Storage } from '../../lib/native';
import type { Device } from './shapes';

export interface Ours {
  kg: typeof KG;
  native: Native;
  /** The kernelgrad device tensors are made on ('cpu' when KG_BENCH_FAKE_CUDA poses as cuda). */
  device: Device;
  /** Waits for queued GPU work; a no-op on the CPU. */
  sync(): void;
  /** A native buffer on our device holding `data` (or `numel` uninitialized floats). */
  storage(data: Float32Array | number): Storage;
  deviceName: string;
  versions: Record<string, string>;
  notes: string[];
}

export type OursResult = { ok: true; ours: Ours } | { ok: false; reason: string };

let cached: OursResult | undefined;

export function loadOurs(device: Device): OursResult {
  if (cached) return cached;
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const kg = require('../../lib') as typeof KG;
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const { native } = require('../../lib/native') as { native: Native };
    const infos = kg.devices();
    let deviceName = infos[0].name;
    const notes: string[] = [];
    // Development only: KG_BENCH_FAKE_CUDA=1 runs the --device cuda code path (GPU shapes, buffer
    // rotation, the epoch) on CPU memory, to test the bench without a GPU. Its figures mean nothing.
    const fake = device === 'cuda' && process.env.KG_BENCH_FAKE_CUDA === '1';
    if (fake) {
      deviceName = 'FAKE GPU (KG_BENCH_FAKE_CUDA: CPU memory posing as cuda)';
      notes.push('KG_BENCH_FAKE_CUDA=1: these "cuda" figures were measured on the CPU; they test the bench, not kernelgrad');
      device = 'cpu';
    } else if (device === 'cuda') {
      const gpu = infos.find((d) => d.type === 'cuda' && d.usable);
      if (!gpu) throw new Error(kg.cuda.unavailableReason());
      deviceName = gpu.name;
    } else {
      notes.push(`kernelgrad CPU threads: ${native.cpuThreads()}; ISA ${infos[0].type === 'cpu' ? infos[0].isa : 'unknown'} (kg.devices()[0].isa)`);
    }
    const code = device === 'cuda' ? 1 : 0;
    const sync = device === 'cuda' ? () => native.cudaSynchronize() : () => {};
    const pkg = require('../../package.json') as { version: string };
    const ours: Ours = {
      kg,
      native,
      device,
      sync,
      storage(data) {
        if (typeof data === 'number') return new native.Storage(code, data);
        const s = new native.Storage(code, data.length);
        s.write(data);
        return s;
      },
      deviceName,
      versions: { kernelgrad: pkg.version },
      notes,
    };
    cached = { ok: true, ours };
  } catch (e) {
    const msg = e instanceof Error ? e.message.split('\n')[0] : String(e);
    cached = { ok: false, reason: msg };
  }
  return cached;
}

/** Frees native buffers now (they would otherwise wait for the garbage collector). */
export function disposeAll(...xs: Array<{ dispose(): void } | null | undefined | Array<{ dispose(): void }>>): void {
  for (const x of xs) {
    if (!x) continue;
    if (Array.isArray(x)) x.forEach((s) => s.dispose());
    else x.dispose();
  }
}
