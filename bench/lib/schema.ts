// The one JSON schema that both sides write: `npm run bench -- --json FILE` (kernelgrad and the
// TensorFlow.js references) and `python3 bench/reference/torch_ref.py --json FILE` (PyTorch).
// bench/compare.ts merges any number of such files into one table. Keep torch_ref.py in step.

export const SCHEMA = 'kernelgrad-bench/1';

export type Status =
  | 'ok' // measured
  | 'skipped' // deliberately not run (--quick, --only, too slow); `note` says why
  | 'unavailable' // the implementation cannot run here (not installable, not built, no GPU)
  | 'failed' // it threw; `note` holds the error
  | 'wrong'; // the plain float64 reference disagreed, so it was not timed

export type Unit = 'GB/s' | 'GFLOP/s' | 'img/s' | 'MiB';

export interface Check {
  status: 'pass' | 'fail';
  /** Largest error found, in the units `how` describes. */
  maxErr: number;
  tol: number;
  /** What was compared, e.g. "full 64x20x26x26" or "sampled 4 channels of 32x256x56x56". */
  how: string;
}

/** One measured figure: one case at one shape by one implementation. */
export interface Figure {
  /** Canonical case key, identical on every side, e.g. 'bn.train_fwd', 'conv.bwd_filter', 'net.train_step'. */
  case: string;
  /** Canonical shape label, identical on every side, e.g. '64x20x26x26', 'L2 64x20x13x13 w50x20x5x5'. */
  shape: string;
  /** 'kernelgrad', 'tfjs-wasm', 'tfjs-cpu', 'tfjs-node', 'torch', 'torch-cl', 'torch-graph', ... */
  impl: string;
  device: 'cpu' | 'cuda';
  status: Status;
  median_ms?: number;
  min_ms?: number;
  reps?: number;
  /** The throughput figure derived from the median (bandwidth at minimal bytes, GFLOP/s, images/s) or a size. */
  metric?: { unit: Unit; value: number };
  check?: Check;
  note?: string;
  /** CPU runs over several rounds: every round's median (the figure is the median round's). */
  rounds?: number[];
}

export interface Env {
  date: string;
  framework: 'kernelgrad' | 'pytorch' | 'onnxruntime' | 'tfjs';
  device: 'cpu' | 'cuda';
  /** The CPU model for cpu runs, the GPU name for cuda runs. */
  deviceName: string;
  driver?: string;
  cpu: { model: string; cores: number };
  os: string;
  quick: boolean;
  argv: string[];
  versions: Record<string, string>;
  notes: string[];
}

export interface BenchFile {
  schema: string;
  env: Env;
  figures: Figure[];
}

export function figureKey(f: Pick<Figure, 'case' | 'shape'>): string {
  return `${f.case} ${f.shape}`;
}
