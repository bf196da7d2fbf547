// Devices: what exists on this machine and how a user names it.
import * as os from 'os';
import { DeviceCode, native } from './native';
import { describe } from './options';

export type Device = 'cpu' | 'cuda';

export interface CpuDeviceInfo {
  type: 'cpu';
  name: string;
  threads: number;
}

export interface CudaDeviceInfo {
  type: 'cuda';
  index: number;
  name: string;
  /** Total device memory in bytes. */
  memory: number;
  computeCapability: string;
}

export type DeviceInfo = CpuDeviceInfo | CudaDeviceInfo;

let cudaDevicesCache: CudaDeviceInfo[] | undefined;

function cudaDevices(): CudaDeviceInfo[] {
  if (cudaDevicesCache === undefined) {
    cudaDevicesCache = native.cudaDevices().map((d) => ({
      type: 'cuda' as const,
      index: d.index,
      name: d.name,
      memory: d.totalMemory,
      computeCapability: `${d.major}.${d.minor}`,
    }));
  }
  return cudaDevicesCache;
}

/** Everything usable here: the CPU first, then each CUDA device with its name and memory. */
export function devices(): DeviceInfo[] {
  const cpu: CpuDeviceInfo = { type: 'cpu', name: os.cpus()[0]?.model ?? 'cpu', threads: native.cpuThreads() };
  return [cpu, ...cudaDevices()];
}

/** True when a CUDA device is present and the addon was built with CUDA. */
export function cudaAvailable(): boolean {
  return cudaDevices().length > 0;
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
    if (!cudaAvailable()) {
      const why = native.builtWithCuda()
        ? 'no CUDA device was found (is the NVIDIA driver installed and a GPU visible?)'
        : 'kernelgrad was built without CUDA (nvcc was not found when it was installed)';
      throw new Error(`${prefix}device 'cuda' requested, but ${why}; use device 'cpu'`);
    }
    return 'cuda';
  }
  if (typeof device !== 'string') throw new TypeError(`${prefix}device must be 'cpu' or 'cuda', got ${describe(device)}`);
  throw new TypeError(`${prefix}unknown device ${JSON.stringify(device)}: expected 'cpu' or 'cuda'`);
}

export function deviceCode(device: Device): DeviceCode {
  return device === 'cuda' ? DeviceCode.Cuda : DeviceCode.Cpu;
}
