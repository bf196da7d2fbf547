// kg.io: files. Safetensors checkpoints, ONNX export and atomic writes.
export { writeFileAtomic } from './atomic';
export { encodeSafetensors, encodeSafetensorsParts, decodeSafetensors, readSafetensors, writeSafetensors } from './safetensors';
export type { TensorData, TensorLike, SafetensorsContents } from './safetensors';
export { saveCheckpoint, loadCheckpoint, loadCheckpointInto } from './checkpoint';
export type { LoadedCheckpoint } from './checkpoint';
export { exportOnnx, encodeOnnx } from './onnx';
export type { ExportOnnxOptions } from './onnx';
