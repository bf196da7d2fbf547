// kg.memory: the host caching allocator behind every CPU tensor (native/cpu/host_allocator.h).
// A disposed tensor's block is kept for the next tensor of its size class, its pages still mapped,
// so a training loop stops asking the system for memory after its first step.
// KG_HOST_CACHE_MB (read at startup) caps the cached bytes: default 1024, 0 turns caching off.
import { HostMemoryStats, native } from './native';

export type { HostMemoryStats };

/** Bytes held by CPU tensors (allocated) and from the system (reserved), with peaks and counts. */
export function stats(): HostMemoryStats {
  return native.hostMemoryStats();
}

/** Returns the cached free blocks to the system (live tensors keep theirs). */
export function emptyCache(): void {
  native.hostEmptyCache();
}
