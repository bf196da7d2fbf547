// kg.autograd: record ops on the tape, then call backward() on the result.
export { record, pause, isRecording } from './tape';
export type { RecordOptions } from './tape';
export { detectAnomaly, isDetectingAnomaly } from './anomaly';
export { backward } from './backward';
export type { BackwardOptions } from './backward';
export type { GradNode, GradRule } from './node';
