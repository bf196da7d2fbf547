// kg.io: files. Safetensors checkpoints and atomic writes.
export { writeFileAtomic } from './atomic';
export { encodeSafetensors, encodeSafetensorsParts, decodeSafetensors, readSafetensors, writeSafetensors } from './safetensors';
export type { TensorData, TensorLike, SafetensorsContents } from './safetensors';
export { saveCheckpoint, loadCheckpoint, loadCheckpointInto } from './checkpoint';
export type { LoadedCheckpoint } from './checkpoint';
