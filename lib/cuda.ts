// kg.cuda: the GPU's memory and synchronization. Harmless on a machine without one.
import { cudaAvailable, cudaUnavailableReason } from './device';
import { CudaCounters, CudaMemoryStats, native } from './native';

export type { CudaCounters, CudaMemoryStats };

/** True when a CUDA device is present and usable. */
export function isAvailable(): boolean {
  return cudaAvailable();
}

/**
 * Why no CUDA device is usable, '' when one is: built without CUDA, no GPU, or the CUDA runtime's
 * error (a driver too old for it, say) with the driver's and the runtime's versions.
 */
export function unavailableReason(): string {
  return cudaUnavailableReason();
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

/**
 * Cumulative counts of the GPU work issued so far: kernels launched directly, graph replays, the
 * kernels those replays ran, waits that drain the stream (host syncs) and waits for a result
 * queued earlier (event waits). Differences between two calls give the work of what ran between
 * them, e.g. per training step. All zero without CUDA.
 */
export function counters(): CudaCounters {
  return native.cudaCounters();
}
