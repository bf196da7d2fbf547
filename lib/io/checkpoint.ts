// Model checkpoints as safetensors files: the state dict (parameters and running statistics, by
// their dotted names, PyTorch layouts) plus string metadata (architecture, epoch, ...).
import { Device, parseDevice } from '../device';
import { Module } from '../nn/module';
import { tensor } from '../ops/creation';
import { describe, readOptions } from '../options';
import type { Tensor } from '../tensor';
import { StagedFile, stageFileAtomic } from './atomic';
import { encodeSafetensorsParts, readSafetensors } from './safetensors';

/** Writes `model.stateDict()` and `metadata` to `file` atomically (temp file, fsync, rename). */
export function saveCheckpoint(file: string, model: Module, metadata: Record<string, string> = {}): void {
  stageCheckpoint(file, model, metadata).commit();
}

/**
 * The checkpoint written and fsynced to a temporary file, to be committed (renamed into place)
 * together with other files, e.g. the run's metrics, so that they change at the same moment.
 */
export function stageCheckpoint(file: string, model: Module, metadata: Record<string, string> = {}): StagedFile {
  checkModel(model, 'kg.io.saveCheckpoint');
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) {
    throw new TypeError(`kg.io.saveCheckpoint: metadata must be an object of strings by name, got ${describe(metadata)}`);
  }
  return stageFileAtomic(file, encodeSafetensorsParts(model.stateDict(), { format: 'pt', framework: 'kernelgrad', ...metadata }));
}

export interface LoadedCheckpoint {
  /** Tensors by name, on the requested device. The caller owns them (dispose after loading). */
  stateDict: Record<string, Tensor>;
  metadata: Record<string, string>;
}

/** Reads a safetensors checkpoint into tensors on `device` (default: `kg.defaultDevice()`). */
export function loadCheckpoint(file: string, options?: { device?: Device }): LoadedCheckpoint {
  const fn = 'kg.io.loadCheckpoint';
  const opts = readOptions(options, fn, ['device']);
  const device = opts.device === undefined ? undefined : parseDevice(opts.device, fn);
  if (typeof file !== 'string') throw new TypeError(`${fn}: file must be a path string, got ${describe(file)}`);
  const { tensors, metadata } = readSafetensors(file);
  const stateDict: Record<string, Tensor> = Object.create(null); // any name, __proto__ included
  for (const [name, t] of Object.entries(tensors)) stateDict[name] = tensor(t.data, t.shape, { device });
  return { stateDict, metadata };
}

/** Loads a checkpoint file into `model` (values copied in place; keys and shapes must match). */
export function loadCheckpointInto(file: string, model: Module): Record<string, string> {
  checkModel(model, 'kg.io.loadCheckpointInto');
  const first = model.parameters()[0] ?? model.namedBuffers()[0]?.[1];
  const { stateDict, metadata } = loadCheckpoint(file, { device: first?.device });
  try {
    model.loadStateDict(stateDict);
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  } finally {
    for (const t of Object.values(stateDict)) t.dispose();
  }
  return metadata;
}

function checkModel(model: Module, fn: string): void {
  if (!(model instanceof Module)) throw new TypeError(`${fn}: model must be a kg.nn.Module, got ${describe(model)}`);
}
