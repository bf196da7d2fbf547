// The fixed shapes of every case. bench/reference/torch_ref.py repeats them: keep both in step.
// Labels (the `shape` field of a Figure) are the join key between sides, so never reformat them.

export type Device = 'cpu' | 'cuda';

export interface BnCase {
  label: string;
  /** NCHW, or (N, C) for the dense layer. */
  shape: number[];
  /** Where the shape comes from. */
  origin: 'seed' | 'large';
  devices: Device[];
}

export const BN_SHAPES: BnCase[] = [
  { label: '64x20x26x26', shape: [64, 20, 26, 26], origin: 'seed', devices: ['cpu', 'cuda'] },
  { label: '64x50x9x9', shape: [64, 50, 9, 9], origin: 'seed', devices: ['cpu', 'cuda'] },
  { label: '64x128', shape: [64, 128], origin: 'seed', devices: ['cpu', 'cuda'] },
  { label: '32x256x56x56', shape: [32, 256, 56, 56], origin: 'large', devices: ['cpu', 'cuda'] },
  { label: '256x64x112x112', shape: [256, 64, 112, 112], origin: 'large', devices: ['cuda'] },
];

/** Minimal bytes per element: training forward reads x twice and writes y; inference reads x and
 *  writes y; backward reads x and dy twice and writes dx. fp32. */
// The fused batch norm + ReLU: its forward moves what batch norm's does; its backward also reads
// the output y (the ReLU's mask) in both passes.
export const BN_BYTES_PER_ELEM = {
  'bn.train_fwd': 12, 'bn.infer_fwd': 8, 'bn.backward': 20, 'bn_relu.train_fwd': 12, 'bn_relu.backward': 28,
} as const;
export type BnOp = keyof typeof BN_BYTES_PER_ELEM;

/** (N,C,L): batch norm views every input as n x c x l. */
export function bnNcl(shape: number[]): [number, number, number] {
  return [shape[0], shape[1], shape.length === 4 ? shape[2] * shape[3] : 1];
}

export interface ConvCase {
  label: string;
  x: [number, number, number, number];
  w: [number, number, number, number];
  stride: number;
  pad: number;
}

export const CONV_SHAPES: ConvCase[] = [
  { label: 'L1 64x1x28x28 w20x1x3x3', x: [64, 1, 28, 28], w: [20, 1, 3, 3], stride: 1, pad: 0 },
  { label: 'L2 64x20x13x13 w50x20x5x5', x: [64, 20, 13, 13], w: [50, 20, 5, 5], stride: 1, pad: 0 },
  // The race network's (lib/models/fast-cnn.ts): LeNet's 5x5 layers at batch 64 and the race's 256.
  { label: 'R1 64x1x28x28 w20x1x5x5', x: [64, 1, 28, 28], w: [20, 1, 5, 5], stride: 1, pad: 0 },
  { label: 'R2 64x20x12x12 w50x20x5x5', x: [64, 20, 12, 12], w: [50, 20, 5, 5], stride: 1, pad: 0 },
  { label: 'R1 256x1x28x28 w20x1x5x5', x: [256, 1, 28, 28], w: [20, 1, 5, 5], stride: 1, pad: 0 },
  { label: 'R2 256x20x12x12 w50x20x5x5', x: [256, 20, 12, 12], w: [50, 20, 5, 5], stride: 1, pad: 0 },
  // A CIFAR ResNet's 3x3 layers at batch 128 (He et al.'s ResNet-20/32/56): the three stages,
  // padding 1, and the stride-2 layer that enters the second stage.
  { label: 'C1 128x16x32x32 w16x16x3x3 p1', x: [128, 16, 32, 32], w: [16, 16, 3, 3], stride: 1, pad: 1 },
  { label: 'C2 128x32x16x16 w32x32x3x3 p1', x: [128, 32, 16, 16], w: [32, 32, 3, 3], stride: 1, pad: 1 },
  { label: 'C3 128x64x8x8 w64x64x3x3 p1', x: [128, 64, 8, 8], w: [64, 64, 3, 3], stride: 1, pad: 1 },
  { label: 'C2s 128x16x32x32 w32x16x3x3 s2p1', x: [128, 16, 32, 32], w: [32, 16, 3, 3], stride: 2, pad: 1 },
];

export function convOut(c: ConvCase): [number, number, number, number] {
  const [n, , h, w] = c.x;
  const [k, , kh, kw] = c.w;
  return [n, k, Math.floor((h + 2 * c.pad - kh) / c.stride) + 1, Math.floor((w + 2 * c.pad - kw) / c.stride) + 1];
}

/** Multiply-adds x 2 of the forward; each backward (data, filter) is the same count. */
export function convFlops(c: ConvCase): number {
  const [n, k, oh, ow] = convOut(c);
  return 2 * n * k * oh * ow * c.x[1] * c.w[2] * c.w[3];
}

export interface PoolCase {
  label: string;
  x: [number, number, number, number];
}

/** avg-pool 2x2 stride 2, no padding; 9 is odd, so the output is floor(9/2) = 4. */
export const POOL_SHAPES: PoolCase[] = [
  { label: '64x20x26x26', x: [64, 20, 26, 26] },
  { label: '64x50x9x9', x: [64, 50, 9, 9] },
];

export function poolOut(p: PoolCase): [number, number, number, number] {
  const [n, c, h, w] = p.x;
  return [n, c, Math.floor((h - 2) / 2) + 1, Math.floor((w - 2) / 2) + 1];
}

export interface GemmCase {
  label: string;
  m: number;
  k: number;
  n: number;
  devices: Device[];
}

export const GEMM_SHAPES: GemmCase[] = [
  { label: '64x800x128', m: 64, k: 800, n: 128, devices: ['cpu', 'cuda'] },
  { label: '1024^3', m: 1024, k: 1024, n: 1024, devices: ['cpu'] },
  { label: '2048^3', m: 2048, k: 2048, n: 2048, devices: ['cpu'] },
  { label: '4096^3', m: 4096, k: 4096, n: 4096, devices: ['cuda'] },
];

/** The seed network (the tutorial) and its run parameters. */
export const NET = {
  batch: 64,
  inferBatch: 1000,
  epochImages: 60000,
  lr: 0.001,
  eps: 1e-5,
  /** The tutorial's moving average: moving = moving * 0.9 + batch * 0.1. */
  momentum: 0.9,
  weightScale: 0.01,
  trainLabel: 'b64',
  inferLabel: 'b1000',
  /** Latency: one image at a time (CPU; what a server answering single requests sees). */
  latencyBatch: 1,
  latencyLabel: 'b1',
  epochLabel: '60000 b64',
};

/** The large copy that serves as the bandwidth ceiling: this many fp32 elements. */
export const COPY_ELEMS = { cpu: 64 << 20, cuda: 256 << 20 } as const; // 256 MiB, 1 GiB
export function copyLabel(device: Device): string {
  return device === 'cpu' ? '256MiB' : '1GiB';
}

/** The MNIST race (bench/cases/race.ts; its recipe is `kernelgrad train --recipe fast`'s). */
export const RACE = {
  label: 'fast-cnn b256 to 99%',
  /** Test accuracy to reach. */
  target: 0.99,
  /** Seed of the initial weights and of the shuffling. */
  seed: 1,
  /** Images per evaluation batch. */
  evalBatch: 1000,
  /** The targets on the CPU: at most this long, and this many times faster than PyTorch. */
  maxSeconds: 12,
  speedup: 2,
};
