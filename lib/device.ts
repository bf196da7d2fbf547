// Devices: what exists on this machine and how a user names it.
import * as os from 'os';
import { DeviceCode, native } from './native';
import { describe } from './options';

export type Device = 'cpu' | 'cuda';

export interface CpuDeviceInfo {
  type: 'cpu';
  name: string;
  threads: number;
  /** The vector instructions the CPU kernels use (KG_CPU_ISA=avx2 or baseline narrows it). */
  isa: 'avx512' | 'avx2' | 'baseline';
}

export interface CudaDeviceInfo {
  type: 'cuda';
  index: number;
  name: string;
  /** Total device memory in bytes. */
  memory: number;
  computeCapability: string;
  /** The CPU emulator of CUDA (KG_EMULATED_CUDA=1 with `npm run build:emu`), not a GPU. */
  emulated: boolean;
  /**
   * false for the entry that stands for a CUDA installation that cannot be used (a driver too old
   * for kernelgrad's CUDA runtime, say): `reason` says why, and tensors cannot go there.
   */
  usable: boolean;
  reason?: string;
}

export type DeviceInfo = CpuDeviceInfo | CudaDeviceInfo;

interface CudaState {
  /** Usable devices, and at most one unusable entry that says why none is. */
  listed: CudaDeviceInfo[];
  /** Why there is no usable CUDA device, in words for an error message; '' when there is one. */
  why: string;
}

let cudaState: CudaState | undefined;

function queryCuda(): CudaState {
  if (!native.builtWithCuda()) {
    return { listed: [], why: 'kernelgrad was built without CUDA (nvcc was not found when it was installed)' };
  }
  const q = native.cudaDevices();
  const listed: CudaDeviceInfo[] = q.devices.map((d) => ({
    type: 'cuda' as const,
    index: d.index,
    name: d.name,
    memory: d.totalMemory,
    computeCapability: `${d.major}.${d.minor}`,
    emulated: d.emulated,
    usable: true,
  }));
  if (listed.length > 0) return { listed, why: '' };
  if (q.error === '') return { listed, why: 'no CUDA device was found (is the NVIDIA driver installed and a GPU visible?)' };
  // A driver is there but the runtime cannot use it: list it, so it does not look like "no GPU".
  if (q.driverVersion > 0) {
    listed.push({
      type: 'cuda', index: 0, name: 'CUDA (unusable)', memory: 0, computeCapability: '', emulated: false,
      usable: false, reason: q.error,
    });
  }
  return { listed, why: `no usable CUDA device: ${q.error}` };
}

function cuda(): CudaState {
  if (cudaState === undefined) cudaState = queryCuda();
  return cudaState;
}

/**
 * Everything here: the CPU first, then each CUDA device with its name and memory. A CUDA
 * installation that cannot be used appears as one entry with `usable: false` and the reason.
 */
export function devices(): DeviceInfo[] {
  const cpu: CpuDeviceInfo = { type: 'cpu', name: os.cpus()[0]?.model ?? 'cpu', threads: native.cpuThreads(), isa: native.cpuIsa() };
  return [cpu, ...cuda().listed];
}

/**
 * The number of threads the CPU kernels use, the calling thread included (1: everything on the
 * calling thread). The default is the number of CPUs this process may run on, or OMP_NUM_THREADS
 * where set. Results are bitwise the same for any count.
 */
export function setCpuThreads(threads: number): void {
  if (typeof threads !== 'number') throw new TypeError(`kg.setCpuThreads: threads must be a number, got ${typeof threads}`);
  if (!Number.isInteger(threads) || threads < 1 || threads > 1024) {
    throw new RangeError(`kg.setCpuThreads: threads must be an integer from 1 to 1024, got ${threads}`);
  }
  native.setCpuThreads(threads);
}

/** True when a usable CUDA device is present (a GPU, or the emulator in the emulated build). */
export function cudaAvailable(): boolean {
  return cuda().listed.some((d) => d.usable);
}

/** Why no CUDA device can be used ('' when one can): the runtime's error and versions. */
export function cudaUnavailableReason(): string {
  return cuda().why;
}

let defaultChoice: Device | undefined;

/**
 * Where tensors go when no device is named: 'cuda' when a GPU is present, else 'cpu'. The
 * environment variable KG_DEVICE=cpu|cuda or setDefaultDevice() overrides the automatic choice.
 */
export function defaultDevice(): Device {
  if (defaultChoice === undefined) {
    const env = process.env.KG_DEVICE;
    defaultChoice = env ? parseDevice(env) : cudaAvailable() ? 'cuda' : 'cpu';
  }
  return defaultChoice;
}

/** Sets the device used when none is named (validated: 'cuda' needs a GPU). */
export function setDefaultDevice(device: Device | string): void {
  defaultChoice = parseDevice(device, 'kg.setDefaultDevice');
}

/**
 * Validates a user-supplied device name; 'cuda:0' is accepted as 'cuda' (one GPU is used). `fn`,
 * when given, names the public function in the error.
 */
export function parseDevice(device: unknown, fn?: string): Device {
  const prefix = fn === undefined ? '' : `${fn}: `;
  if (device === undefined) return defaultDevice();
  if (device === 'cpu') return 'cpu';
  if (device === 'cuda' || device === 'cuda:0' || device === 'gpu') {
    if (!cudaAvailable()) throw new Error(`${prefix}device 'cuda' requested, but ${cudaUnavailableReason()}; use device 'cpu'`);
    return 'cuda';
  }
  if (typeof device !== 'string') throw new TypeError(`${prefix}device must be 'cpu' or 'cuda', got ${describe(device)}`);
  throw new TypeError(`${prefix}unknown device ${JSON.stringify(device)}: expected 'cpu' or 'cuda'`);
}

/** The device for logs: 'cuda (kernelgrad CUDA emulator)' under the emulator, so such runs say so. */
export function deviceLabel(device: Device): string {
  const gpu = device === 'cuda' ? cuda().listed.find((d) => d.usable) : undefined;
  return gpu?.emulated ? `cuda (${gpu.name})` : device;
}

export function deviceCode(device: Device): DeviceCode {
  return device === 'cuda' ? DeviceCode.Cuda : DeviceCode.Cpu;
}
