// kg.cuda: the GPU's memory and synchronization. Harmless on a machine without one.
import { cudaAvailable } from './device';
import { CudaMemoryStats, native } from './native';

export type { CudaMemoryStats };

/** True when a CUDA device is present and usable. */
export function isAvailable(): boolean {
  return cudaAvailable();
}

/** Bytes handed to tensors (allocated) and held from the driver (reserved), with peaks. */
export function memoryStats(): CudaMemoryStats {
  return native.cudaMemoryStats();
}

/** Returns the caching allocator's free blocks to the driver. */
export function emptyCache(): void {
  native.cudaEmptyCache();
}

/** Waits for all queued GPU work (for timing; reading a tensor already waits). */
export function synchronize(): void {
  native.cudaSynchronize();
}
