// Model checkpoints as safetensors files: the state dict (parameters and running statistics, by
// their dotted names, PyTorch layouts) plus string metadata (architecture, epoch, ...).
//
// Two namings: this library's (bn1.gamma, bn1.runningMean, ...) and PyTorch's (bn1.weight,
// bn1.running_mean, ..., bn1.num_batches_tracked as int64), which PyTorch's
// load_state_dict(strict=True) takes as it is. Only batch norm's names differ; files in either
// naming load into a model.
import { Device, parseDevice } from '../device';
import { BatchNorm } from '../nn/batchnorm';
import { Module } from '../nn/module';
import { tensor, zeros } from '../ops/creation';
import { describe, readChoice, readOptions } from '../options';
import type { Tensor } from '../tensor';
import { StagedFile, stageFileAtomic } from './atomic';
import { encodeSafetensorsParts, readSafetensors, TensorData, TensorLike } from './safetensors';

export type CheckpointNames = 'kernelgrad' | 'pytorch';

export interface SaveCheckpointOptions {
  /** 'kernelgrad' (default): the state dict's own names. 'pytorch': PyTorch's batch-norm names. */
  names?: CheckpointNames;
}

/** Batch norm's names here and in PyTorch. */
const PYTORCH_BN_NAMES: Record<string, string> = {
  gamma: 'weight',
  beta: 'bias',
  runningMean: 'running_mean',
  runningVar: 'running_var',
  numBatchesTracked: 'num_batches_tracked',
};
/** Stored as int64 with PyTorch's names, as PyTorch does. */
const COUNTER = 'numBatchesTracked';

/**
 * Writes the model's state dict and `metadata` to `file` atomically (temp file, fsync, rename),
 * with this library's names or, with `{ names: 'pytorch' }`, PyTorch's.
 */
export function saveCheckpoint(file: string, model: Module, metadata: Record<string, string> = {}, options?: SaveCheckpointOptions): void {
  stageCheckpoint(file, model, metadata, options).commit();
}

/**
 * The checkpoint written and fsynced to a temporary file, to be committed (renamed into place)
 * together with other files, e.g. the run's metrics, so that they change at the same moment.
 */
export function stageCheckpoint(file: string, model: Module, metadata: Record<string, string> = {}, options?: SaveCheckpointOptions): StagedFile {
  const fn = 'kg.io.saveCheckpoint';
  checkModel(model, fn);
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) {
    throw new TypeError(`${fn}: metadata must be an object of strings by name, got ${describe(metadata)}`);
  }
  const names = readChoice(readOptions(options, fn, ['names']).names, fn, 'names', ['kernelgrad', 'pytorch'], 'kernelgrad');
  const state = names === 'pytorch' ? pytorchStateDict(model) : model.stateDict();
  return stageFileAtomic(file, encodeSafetensorsParts(state, { format: 'pt', framework: 'kernelgrad', ...metadata }));
}

/** The state dict under PyTorch's names, in the same order, the batch counters as int64. */
function pytorchStateDict(model: Module): Record<string, TensorData | TensorLike> {
  const renames = batchNormRenames(model);
  const out: Record<string, TensorData | TensorLike> = Object.create(null);
  for (const [name, t] of Object.entries(model.stateDict())) {
    const renamed = renames.get(name);
    if (renamed === undefined) out[name] = t;
    else out[renamed] = name.endsWith(`.${COUNTER}`) || name === COUNTER ? { shape: [...t.shape], data: t.toArray(), dtype: 'I64' } : t;
  }
  return out;
}

/** Our name -> PyTorch's, for every batch-norm tensor of the model. */
function batchNormRenames(model: Module): Map<string, string> {
  const renames = new Map<string, string>();
  for (const [prefix, m] of model.namedModules()) {
    if (!(m instanceof BatchNorm)) continue;
    const at = (name: string) => (prefix === '' ? name : `${prefix}.${name}`);
    for (const name of Object.keys(m.stateDict())) renames.set(at(name), at(PYTORCH_BN_NAMES[name] ?? name));
  }
  return renames;
}

export interface LoadedCheckpoint {
  /** Tensors by name, on the requested device. The caller owns them (dispose after loading). */
  stateDict: Record<string, Tensor>;
  metadata: Record<string, string>;
}

/**
 * Reads a safetensors checkpoint into tensors on `device` (default: `kg.defaultDevice()`), by the
 * names in the file. Tensors of other dtypes (a PyTorch file's int64 counters, float16 weights)
 * are converted to float32, or refused by name when a value cannot be held.
 */
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

/**
 * Loads a checkpoint file into `model` (values copied in place; keys and shapes must match), in
 * either naming (see `toModelNames`).
 */
export function loadCheckpointInto(file: string, model: Module): Record<string, string> {
  checkModel(model, 'kg.io.loadCheckpointInto');
  const first = model.parameters()[0] ?? model.namedBuffers()[0]?.[1];
  const { stateDict, metadata } = loadCheckpoint(file, { device: first?.device });
  const added: Tensor[] = [];
  try {
    model.loadStateDict(toModelNames(model, stateDict, added));
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  } finally {
    for (const t of [...Object.values(stateDict), ...added]) t.dispose();
  }
  return metadata;
}

/**
 * `stateDict` with the model's names: PyTorch's batch-norm names are mapped to this library's,
 * and a batch counter missing from the file (one written before the counter was kept) counts 0,
 * as in PyTorch. Tensors it creates are pushed onto `created` (the caller disposes them). Keys
 * the model does not know are kept, so that `loadStateDict` names them.
 */
export function toModelNames(model: Module, stateDict: Record<string, Tensor>, created: Tensor[] = []): Record<string, Tensor> {
  const own = model.stateDict();
  const fromPytorch = new Map([...batchNormRenames(model)].map(([ours, theirs]) => [theirs, ours]));
  const out: Record<string, Tensor> = Object.create(null);
  for (const [name, t] of Object.entries(stateDict)) {
    const ours = name in own ? name : (fromPytorch.get(name) ?? name);
    if (ours in out) {
      throw new Error(`${model.constructor.name}.loadStateDict: '${ours}' is given twice, under this library's name and under PyTorch's`);
    }
    out[ours] = t;
  }
  for (const [name, t] of Object.entries(own)) {
    if ((name === COUNTER || name.endsWith(`.${COUNTER}`)) && !(name in out)) {
      const zero = zeros(t.shape, { device: t.device });
      created.push(zero);
      out[name] = zero;
    }
  }
  return out;
}

function checkModel(model: Module, fn: string): void {
  if (!(model instanceof Module)) throw new TypeError(`${fn}: model must be a kg.nn.Module, got ${describe(model)}`);
}
