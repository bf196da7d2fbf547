// The one typed declaration of the native addon (native/napi), and its loader. Everything else in
// lib/ goes through this file; nothing else calls `bindings` or touches the addon's names.
import bindings from 'bindings';
import * as fs from 'fs';
import * as path from 'path';

/**
 * A block of float32 memory on one device, owned by a JS object (native/napi/storage.h). Once
 * disposed it holds nothing: numel is 0, and reading device or the values throws.
 */
export interface Storage {
  readonly numel: number;
  readonly device: 'cpu' | 'cuda';
  readonly disposed: boolean;
  dispose(): void;
  /** A copy of the contents (synchronizes with the GPU). */
  read(): Float32Array;
  write(data: Float32Array): void;
  /** Copies another storage of the same size, from any device. */
  copyFrom(src: Storage): void;
  /** Tells the garbage collector about the bytes, if that was left out when it was made (setGcReporting). */
  reportToGc(): void;
}

export interface StorageConstructor {
  new (device: DeviceCode, numel: number): Storage;
}

export const enum DeviceCode {
  Cpu = 0,
  Cuda = 1,
}

export const enum BinaryOpCode {
  Add = 0,
  Sub = 1,
  Mul = 2,
  Div = 3,
}

/** [n, c, h, w, k, kh, kw, strideH, strideW, padH, padW, groups] (kg/shapes.h ConvShape). */
export type ConvShapeArg = [number, number, number, number, number, number, number, number, number, number, number, number];
/** [n, c, h, w, kh, kw, strideH, strideW] */
export type PoolShapeArg = [number, number, number, number, number, number, number, number];
/** [n, c, h, w, kh, kw, strideH, strideW, padH, padW] */
export type MaxPoolShapeArg = [number, number, number, number, number, number, number, number, number, number];
/** [n, c, l]: batch norm views every input as (n, c, l), l = h*w or 1. */
export type BnShapeArg = [number, number, number];
/**
 * What batch norm's training forward does besides normalizing (kg/batchnorm_update.h): running
 * statistics (both or neither) moved with `momentum` (the old value's weight; with `cumulative`,
 * count / (count + 1) read on the device), the unbiased running variance when `unbiased`, the batch
 * count (only with running statistics), and the per-channel failure kinds at status[statusOffset..].
 */
export type BnRunningUpdateArgs = [
  runningMean: Storage | null, runningVar: Storage | null, momentum: number, unbiased: boolean,
  numBatchesTracked: Storage | null, cumulative: boolean, status: Storage | null, statusOffset: number,
];
/** [outer, groups, inner, params, run]: group norm, layer norm and batch renorm (kg/shapes.h NormShape). */
export type NormShapeArg = [number, number, number, number, number];

export interface CudaDeviceInfo {
  index: number;
  name: string;
  totalMemory: number;
  major: number;
  minor: number;
  /** The CPU emulator of CUDA (build-emu), not a GPU. */
  emulated: boolean;
}

/** What the CUDA runtime said when asked for its devices (native/include/kg/cuda_runtime.h). */
export interface CudaDeviceQuery {
  devices: CudaDeviceInfo[];
  /** Why there are no devices (the cudaGetDeviceCount error, with both versions); '' if none. */
  error: string;
  /** e.g. 'cudaErrorInsufficientDriver'; '' if none. */
  errorName: string;
  /** CUDA version the driver supports, as 1000 * major + 10 * minor; 0 without a driver. */
  driverVersion: number;
  /** CUDA runtime version the addon is linked with, same encoding; 0 without CUDA. */
  runtimeVersion: number;
}

export interface CudaMemoryStats {
  allocated: number;
  reserved: number;
  peakAllocated: number;
  peakReserved: number;
  numMallocs: number;
}

/** Cumulative counts of the GPU work kernelgrad issued (native/include/kg/cuda_runtime.h). */
export interface CudaCounters {
  /** Kernels launched directly, not through a graph. */
  kernelLaunches: number;
  /** CUDA graph replays. */
  graphReplays: number;
  /** Kernels run by graph replays. */
  graphKernels: number;
  /** Waits for the stream to drain: reading a tensor on the host, kg.cuda.synchronize(). */
  hostSyncs: number;
  /** Waits for a result queued earlier (a step-late loss readback); they do not drain the stream. */
  eventWaits: number;
}

/** A native object (a CUDA graph, a readback) freed by its finalizer or its dispose binding. */
export type CudaHandle = { readonly __cudaHandle: unique symbol };

/** The host caching allocator's counters (native/cpu/host_allocator.h), in bytes. */
export interface HostMemoryStats {
  /** In blocks held by live tensors (each request rounded up to its size class). */
  allocated: number;
  /** Allocated plus cached, free for reuse. */
  reserved: number;
  peakAllocated: number;
  peakReserved: number;
  /** Blocks obtained from the system. */
  numMallocs: number;
  /** Requests served from the cache. */
  numReuses: number;
}

/** The addon's exports. Semantics of each kernel: native/include/kg/ops.inc. */
export interface Native {
  Storage: StorageConstructor;

  gemm(transA: boolean, transB: boolean, m: number, n: number, k: number, alpha: number, a: Storage, b: Storage, beta: number, c: Storage): void;
  /** The dense layer: y (m, n) = x (m, k) w^T + bias, w stored (n, k), the bias added as y is written. */
  linearForward(m: number, n: number, k: number, x: Storage, w: Storage, bias: Storage | null, y: Storage): void;
  /** dw (n, k) = dy (m, n)ᵀ x (m, k), and db (n) = the column sums of dy when given. */
  linearBackwardWeight(m: number, n: number, k: number, dy: Storage, x: Storage, dw: Storage, db: Storage | null): void;
  conv2dForward(shape: ConvShapeArg, x: Storage, w: Storage, bias: Storage | null, y: Storage): void;
  conv2dBackwardData(shape: ConvShapeArg, dy: Storage, w: Storage, dx: Storage): void;
  /** dw, and db (the bias gradient) when given. */
  conv2dBackwardWeight(shape: ConvShapeArg, x: Storage, dy: Storage, dw: Storage, db: Storage | null): void;
  conv2dBackwardBias(shape: ConvShapeArg, dy: Storage, db: Storage): void;
  avgPool2dForward(shape: PoolShapeArg, x: Storage, y: Storage): void;
  avgPool2dBackward(shape: PoolShapeArg, dy: Storage, dx: Storage): void;
  /**
   * conv2d -> batch norm with fixed statistics (gamma, beta, mean, var: all four or all null) ->
   * ReLU when relu -> average pooling when pool ([kh, kw, sh, sw]), in one pass; CPU only.
   */
  convBlockInfer(
    shape: ConvShapeArg, pool: [number, number, number, number] | null, x: Storage, w: Storage, bias: Storage | null,
    gamma: Storage | null, beta: Storage | null, mean: Storage | null, variance: Storage | null, eps: number, relu: boolean, y: Storage,
  ): void;
  /** y (m, n) = x (m, k) w^T + bias -> batch norm with fixed statistics (as convBlockInfer) -> ReLU when relu; CPU only. */
  denseBlockInfer(
    m: number, n: number, k: number, x: Storage, w: Storage, bias: Storage | null,
    gamma: Storage | null, beta: Storage | null, mean: Storage | null, variance: Storage | null, eps: number, relu: boolean, y: Storage,
  ): void;
  /**
   * Convolution and dense blocks run one after the other as one call (native/cpu/inference_blocks.h);
   * CPU only. spec: [n, c, h, w, steps, then per step conv (0, k, kh, kw, sh, sw, ph, pw, groups,
   * bias, bn, eps, relu, pool, pkh, pkw, psh, psw) or dense (1, out, bias, bn, eps, relu)]; weights
   * per step: w, bias when bias, gamma, beta, mean, var when bn.
   */
  inferenceChain(spec: Float64Array, x: Storage, y: Storage, ...weights: Storage[]): void;
  /** argmax receives each window's input position (row * w + col in its plane), as floats. */
  maxPool2dForward(shape: MaxPoolShapeArg, x: Storage, y: Storage, argmax: Storage): void;
  maxPool2dBackward(shape: MaxPoolShapeArg, dy: Storage, argmax: Storage, dx: Storage): void;
  /** Forward on (x, y) and backward on (dy, dx), with the same p and seed. */
  dropout(p: number, seed: number, x: Storage, y: Storage): void;

  /**
   * Training forward; with the arguments after batchVar (BnRunningUpdateArgs, kg/batchnorm_update.h)
   * it also writes each channel's failure kind to status[statusOffset + ch] (0: fine), updates the
   * running statistics of the channels that did not fail, and increments numBatchesTracked.
   */
  batchNormForwardTrain(shape: BnShapeArg, x: Storage, gamma: Storage, beta: Storage, eps: number, y: Storage, saveMean: Storage, saveMeanLo: Storage, saveInvstd: Storage, batchVar: Storage | null, ...update: BnRunningUpdateArgs): void;
  batchNormForwardInfer(shape: BnShapeArg, x: Storage, gamma: Storage, beta: Storage, mean: Storage, variance: Storage, eps: number, y: Storage): void;
  batchNormBackwardTrain(shape: BnShapeArg, x: Storage, dy: Storage, gamma: Storage, saveMean: Storage, saveMeanLo: Storage, saveInvstd: Storage, dx: Storage | null, dgamma: Storage, dbeta: Storage): void;
  batchNormBackwardInfer(shape: BnShapeArg, x: Storage, dy: Storage, gamma: Storage, mean: Storage, variance: Storage, eps: number, dx: Storage | null, dgamma: Storage, dbeta: Storage): void;
  /** The same four, fused with the ReLU after them: backward takes the fused output y after x. */
  batchNormReluForwardTrain(shape: BnShapeArg, x: Storage, gamma: Storage, beta: Storage, eps: number, y: Storage, saveMean: Storage, saveMeanLo: Storage, saveInvstd: Storage, batchVar: Storage | null, ...update: BnRunningUpdateArgs): void;
  batchNormReluForwardInfer(shape: BnShapeArg, x: Storage, gamma: Storage, beta: Storage, mean: Storage, variance: Storage, eps: number, y: Storage): void;
  /** Batch norm + ReLU + average pooling without overlap (stride = window), training form; y is the pooled output. */
  batchNormReluPoolForwardTrain(shape: PoolShapeArg, x: Storage, gamma: Storage, beta: Storage, eps: number, y: Storage, saveMean: Storage, saveMeanLo: Storage, saveInvstd: Storage, batchVar: Storage | null, ...update: BnRunningUpdateArgs): void;
  /** dy: the pooled gradient. */
  batchNormReluPoolBackwardTrain(shape: PoolShapeArg, x: Storage, dy: Storage, gamma: Storage, beta: Storage, saveMean: Storage, saveMeanLo: Storage, saveInvstd: Storage, dx: Storage | null, dgamma: Storage, dbeta: Storage): void;
  batchNormReluBackwardTrain(shape: BnShapeArg, x: Storage, y: Storage, dy: Storage, gamma: Storage, saveMean: Storage, saveMeanLo: Storage, saveInvstd: Storage, dx: Storage | null, dgamma: Storage, dbeta: Storage): void;
  batchNormReluBackwardInfer(shape: BnShapeArg, x: Storage, y: Storage, dy: Storage, gamma: Storage, mean: Storage, variance: Storage, eps: number, dx: Storage | null, dgamma: Storage, dbeta: Storage): void;

  normForward(shape: NormShapeArg, x: Storage, gamma: Storage, beta: Storage, eps: number, y: Storage, saveMean: Storage, saveMeanLo: Storage, saveInvstd: Storage): void;
  renormForward(shape: NormShapeArg, x: Storage, gamma: Storage, beta: Storage, eps: number, runningMean: Storage, runningVar: Storage, rMax: number, dMax: number, y: Storage, saveMean: Storage, saveMeanLo: Storage, saveInvstd: Storage, batchVar: Storage, r: Storage, d: Storage): void;
  normBackward(shape: NormShapeArg, x: Storage, dy: Storage, gamma: Storage, saveMean: Storage, saveMeanLo: Storage, saveInvstd: Storage, r: Storage | null, d: Storage | null, dx: Storage | null, dgamma: Storage, dbeta: Storage): void;

  binary(op: BinaryOpCode, shape: number[], aStrides: number[], bStrides: number[], a: Storage, b: Storage, out: Storage): void;
  fill(out: Storage, value: number): void;
  copy(x: Storage, out: Storage): void;
  axpby(alpha: number, x: Storage, beta: number, y: Storage): void;
  reluForward(x: Storage, y: Storage): void;
  reluBackward(x: Storage, dy: Storage, dx: Storage): void;
  reduceSum(outer: number, r: number, inner: number, scale: number, x: Storage, y: Storage): void;
  softmaxXentForward(n: number, k: number, logits: Storage, labels: Storage, loss: Storage): void;
  softmaxXentForwardSum(n: number, k: number, logits: Storage, labels: Storage, scale: number, out: Storage, grad: Storage | null): void;
  /** dloss: one value per row, or one for every row (the gradient of a sum); each is multiplied by scale. */
  softmaxXentBackward(n: number, k: number, logits: Storage, labels: Storage, dloss: Storage, scale: number, dlogits: Storage): void;
  argmaxRows(n: number, k: number, x: Storage, out: Storage): void;
  sgdUpdate(lr: number, momentum: number, weightDecay: number, nesterov: boolean, param: Storage, grad: Storage, velocity: Storage | null): void;
  /** sgdUpdate of every parameter, the rate read from the one-element `lr` on their device (one launch per 64 on the GPU). */
  sgdUpdateMany(momentum: number, nesterov: boolean, lr: Storage, params: Storage[], grads: Storage[], velocities: Storage[] | null, weightDecays: number[]): void;
  adamUpdate(beta1: number, beta2: number, stepSize: number, eps: number, l2: number, decay: number, param: Storage, grad: Storage, m: Storage, v: Storage): void;
  /** out[index] = the Euclidean norm of x. */
  l2Norm(x: Storage, out: Storage, index: number): void;

  builtWithCuda(): boolean;
  cudaDevices(): CudaDeviceQuery;
  cudaMemoryStats(): CudaMemoryStats;
  cudaEmptyCache(): void;
  cudaSynchronize(): void;
  cudaCounters(): CudaCounters;
  cudaCaptureBegin(): void;
  cudaCaptureEnd(): CudaHandle;
  cudaCaptureAbandon(): void;
  cudaCapturing(): boolean;
  cudaGraphReplay(graph: CudaHandle): void;
  cudaGraphKernels(graph: CudaHandle): number;
  cudaGraphDispose(graph: CudaHandle): void;
  cudaReadbackCreate(floats: number): CudaHandle;
  cudaReadbackEnqueue(readback: CudaHandle, storage: Storage, offset: number): void;
  cudaReadbackRead(readback: CudaHandle): Float32Array;
  cudaReadbackDispose(readback: CudaHandle): void;
  hostMemoryStats(): HostMemoryStats;
  hostEmptyCache(): void;
  /**
   * Whether storages made from now on tell the garbage collector about their bytes (default true).
   * kg.tidy turns it off for the storages it frees itself, and announces those that outlive it.
   */
  setGcReporting(on: boolean): void;
  /** Threads of the CPU kernels' loops, the caller included: setCpuThreads, else OMP_NUM_THREADS, else the CPUs this process may use. */
  cpuThreads(): number;
  /** The CPU kernels' vector instruction set: the CPU's widest, or a narrower one named by KG_CPU_ISA. */
  cpuIsa(): 'avx512' | 'avx2' | 'baseline';
  /** Whether the CPU kernels' hot loops carry AVX2 clones (false in `npm run build:baseline`'s addon). */
  cpuMultiversioned(): boolean;
  setCpuThreads(n: number): void;
}

/**
 * The package root (where package.json is), found from this file whether it runs from lib/ (tests)
 * or dist/lib/ (the installed package).
 */
function packageRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) return path.resolve(__dirname, '..');
  }
}

/** The addon in `folder` (build-emu, build-baseline), which `variable` asked for. */
function loadVariant(folder: string, variable: string, what: string, how: string): Native {
  const file = path.join(packageRoot(), folder, 'Release', 'kernelgrad.node');
  if (!fs.existsSync(file)) {
    throw new Error(`kernelgrad: ${variable}=1 asks for the addon ${what}, but ${file} does not exist; build it with ${how}.`);
  }
  return require(file) as Native;
}

/**
 * KG_EMULATED_CUDA=1 loads the addon built by `npm run build:emu`, whose CUDA backend is the CPU
 * emulator (for running the GPU code without a GPU); KG_BASELINE_BUILD=1 the one built by
 * `npm run build:baseline` (the CPU kernels' baseline code only, to test it); otherwise the one
 * `npm install` built.
 */
function load(): Native {
  if (process.env.KG_EMULATED_CUDA === '1') {
    return loadVariant('build-emu', 'KG_EMULATED_CUDA', 'built against the CUDA emulator', '`npm run build:emu` (cmake, a C++17 compiler and python3)');
  }
  if (process.env.KG_BASELINE_BUILD === '1') {
    return loadVariant('build-baseline', 'KG_BASELINE_BUILD', "with the CPU kernels' baseline code only", '`npm run build:baseline`');
  }
  try {
    return bindings('kernelgrad') as Native;
  } catch (e) {
    const why = e instanceof Error ? e.message.split('\n')[0] : String(e);
    throw new Error(
      `kernelgrad: the native addon could not be loaded (${why}).\n` +
        'Build it with `npm rebuild kernelgrad` (or `npm run build:native` in a checkout); ' +
        'that needs cmake and a C++17 compiler, and nvcc for the CUDA kernels.',
    );
  }
}

/** The loaded addon. */
export const native: Native = load();
