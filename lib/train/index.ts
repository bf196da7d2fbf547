// kg.train: the training loop, evaluation, metrics and plots.
export { fit, stepsPerEpoch, trainStep } from './loop';
export type { FitOptions, StepResult } from './loop';
export { evaluateAccuracy } from './evaluate';
export { MovingAverage, AccuracyCounter, formatEpochLine } from './metrics';
export type { EpochMetrics, RunMetrics } from './metrics';
export { trainingPlotSpec, renderSvg, svgToPng, writeTrainingPlot } from './plot';
export { compileStep } from './compile';
export type { CompileStepOptions, CompiledStep } from './compile';
