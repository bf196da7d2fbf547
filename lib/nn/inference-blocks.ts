// Where a Sequential may run a stretch of its layers as one fused inference call instead of layer
// by layer, on the CPU, with no gradient being recorded: Conv2d followed by any of BatchNorm
// (normalizing with its moving statistics), ReLU and AvgPool2d, in that order; and Linear followed
// by any of BatchNorm and ReLU. When a Sequential consists of such blocks alone (and Flatten), it
// runs as one chain of them, one native call in all (lib/ops/inference-chain.ts). The fused calls
// give bitwise the results of the layers one by one (lib/ops/conv-block.ts, lib/ops/dense-block.ts);
// anything they do not cover -- another device,
// gradients, a subclass with its own forward, shapes that would make a layer throw -- runs layer
// by layer, so every error still comes from the layer that raises it.
import { isRecording } from '../autograd/tape';
import { ConvBlock, convBlockInference, convBlockOutput } from '../ops/conv-block';
import { DenseBlock, denseBlockInference } from '../ops/dense-block';
import { ChainStep, PreparedChain, prepareChain, runPreparedChain } from '../ops/inference-chain';
import { pair } from '../ops/conv';
import type { Tensor } from '../tensor';
import { ReLU } from './activation';
import { BatchNorm } from './batchnorm';
import { Conv2d } from './conv2d';
import { Flatten } from './flatten';
import { Linear } from './linear';
import type { Module } from './module';
import { AvgPool2d } from './pooling';

/** The convolution block that starts at layers[i], for an input of shape x, if it can be fused: the block and how many layers it takes. */
function convBlockAt(layers: readonly Module[], i: number, x: readonly number[]): { block: ConvBlock; layers: number } | null {
  const conv = layers[i];
  // Exact classes only, so that a subclass's own forward is never bypassed.
  if (conv.constructor !== Conv2d) return null;
  const c = conv as Conv2d;
  if (x.length !== 4 || x[1] !== c.inChannels || c.weight.device !== 'cpu') return null;
  const op = 'kg.nn.Conv2d';
  const block: ConvBlock = {
    weight: c.weight,
    bias: c.bias,
    stride: pair(c.stride, 1, op, 'stride', 1),
    padding: pair(c.padding, 0, op, 'padding', 0),
    groups: c.groups,
    batchNorm: null,
    relu: false,
    pool: null,
  };
  let j = normalizeAndRectify(layers, i + 1, c.outChannels, block);
  if (layers[j]?.constructor === AvgPool2d) {
    const p = layers[j] as AvgPool2d;
    block.pool = { kernelSize: pair(p.kernelSize, 1, 'kg.nn.AvgPool2d', 'kernelSize', 1), stride: pair(p.stride, 1, 'kg.nn.AvgPool2d', 'stride', 1) };
    j++;
  }
  if (j === i + 1 || !convBlockOutput(block, x[2], x[3])) return null;
  return { block, layers: j - i };
}

/** Runs the convolution block that starts at layers[i] on x if it can be fused: its output and how many layers it took. */
export function runConvBlock(layers: readonly Module[], i: number, x: Tensor): { y: Tensor; layers: number } | null {
  if (isRecording() || x.device !== 'cpu') return null;
  const found = convBlockAt(layers, i, x.shape);
  return found && { y: convBlockInference(x, found.block), layers: found.layers };
}

/** The same for a Linear followed by BatchNorm and ReLU; a Linear alone counts too (its bias add is a call of its own otherwise). */
function denseBlockAt(layers: readonly Module[], i: number, x: readonly number[]): { block: DenseBlock; layers: number } | null {
  const dense = layers[i];
  if (dense.constructor !== Linear) return null;
  const d = dense as Linear;
  if (x.length !== 2 || x[1] !== d.inFeatures || d.weight.device !== 'cpu') return null;
  const block: DenseBlock = { weight: d.weight, bias: d.bias, batchNorm: null, relu: false };
  const j = normalizeAndRectify(layers, i + 1, d.outFeatures, block);
  if (j === i + 1 && !block.bias) return null;
  return { block, layers: j - i };
}

/** Runs the dense block that starts at layers[i] on x if it can be fused. */
export function runDenseBlock(layers: readonly Module[], i: number, x: Tensor): { y: Tensor; layers: number } | null {
  if (isRecording() || x.device !== 'cpu') return null;
  const found = denseBlockAt(layers, i, x.shape);
  return found && { y: denseBlockInference(x, found.block), layers: found.layers };
}

/**
 * What a Sequential keeps between inference calls: the prepared chain of its layers and what it
 * was prepared from. The chain is used again while every module, every tensor it reads, every
 * option that shapes it and the input's per-sample shape are the same objects and values.
 */
export interface ChainCache {
  key: unknown[];
  /** The chain for `key`, or null when those layers form none (they then run one by one). */
  chain: PreparedChain | null;
}

// One cache per Sequential, outside the object: a copy of a module (cloneModule copies its fields)
// gets a cache of its own.
const caches = new WeakMap<object, ChainCache>();

/** The chain cache of `owner` (a Sequential). */
export function chainCacheOf(owner: object): ChainCache {
  let cache = caches.get(owner);
  if (!cache) caches.set(owner, (cache = { key: [], chain: null }));
  return cache;
}

/**
 * Calls visit on everything the chain of `layers` on x depends on, in a fixed order, until visit
 * returns false; returns whether it never did. Modules and tensors count by identity (a tensor's
 * values are read at each call; replacing a parameter or a module makes a new chain).
 */
function visitChainKey(layers: readonly Module[], x: Tensor, visit: (v: unknown) => boolean): boolean {
  if (!visit(layers.length) || !visit(x.shape[1]) || !visit(x.shape[2]) || !visit(x.shape[3])) return false;
  for (const m of layers) {
    if (!visit(m)) return false;
    if (m.constructor === Conv2d) {
      const c = m as Conv2d;
      if (!visit(c.weight) || !visit(c.bias) || !visit(c.stride) || !visit(c.padding) || !visit(c.groups)) return false;
    } else if (m.constructor === BatchNorm) {
      const b = m as BatchNorm;
      if (!visit(b.training) || !visit(b.frozen) || !visit(b.trackRunningStats) || !visit(b.eps) || !visit(b.affine)) return false;
      if (b.affine && (!visit(b.gamma) || !visit(b.beta))) return false;
      if (b.trackRunningStats && (!visit(b.runningMean) || !visit(b.runningVar))) return false;
    } else if (m.constructor === Linear) {
      const d = m as Linear;
      if (!visit(d.weight) || !visit(d.bias)) return false;
    } else if (m.constructor === AvgPool2d) {
      const p = m as AvgPool2d;
      if (!visit(p.kernelSize) || !visit(p.stride)) return false;
    }
  }
  return true;
}

function chainKey(layers: readonly Module[], x: Tensor): unknown[] {
  const key: unknown[] = [];
  visitChainKey(layers, x, (v) => key.push(v) > 0);
  return key;
}

function sameKey(key: readonly unknown[], layers: readonly Module[], x: Tensor): boolean {
  let i = 0;
  return visitChainKey(layers, x, (v) => key[i++] === v) && i === key.length;
}

/** The chain of blocks that `layers` form on x's per-sample shape, or null when they do not form one of at least two blocks. */
function buildChain(layers: readonly Module[], x: Tensor): PreparedChain | null {
  const steps: ChainStep[] = [];
  let shape: number[] = x.shape.slice();
  for (let i = 0; i < layers.length; ) {
    if (layers[i].constructor === Flatten) {
      shape = [shape[0], shape.slice(1).reduce((a, b) => a * b, 1)];
      i++;
      continue;
    }
    const conv = convBlockAt(layers, i, shape);
    if (conv) {
      const [oh, ow] = convBlockOutput(conv.block, shape[2], shape[3])!;
      shape = [shape[0], conv.block.weight.shape[0], oh, ow];
      steps.push({ conv: conv.block });
      i += conv.layers;
      continue;
    }
    const dense = denseBlockAt(layers, i, shape);
    if (!dense) return null;
    shape = [shape[0], dense.block.weight.shape[0]];
    steps.push({ dense: dense.block });
    i += dense.layers;
  }
  return steps.length >= 2 ? prepareChain(steps, x.shape.slice(1), shape.slice(1), x.device) : null;
}

/**
 * Runs all of `layers` on x as one chain of blocks if every layer belongs to one (Flatten may stand
 * between them) and there are at least two blocks; null otherwise, and the layers run as usual.
 * With a cache, the chain prepared on one call serves the next ones while nothing it depends on
 * changed (at batch 1, preparing it cost a sixth of the call).
 */
export function runInferenceChain(layers: readonly Module[], x: Tensor, cache?: ChainCache): Tensor | null {
  if (isRecording() || x.device !== 'cpu' || x.ndim !== 4) return null;
  if (cache && sameKey(cache.key, layers, x)) {
    // Layers that form no chain are not walked again for one on every call.
    if (!cache.chain) return null;
    if (cache.chain.reusable && cache.chain.tensors.every((t) => !t.disposed)) return runPreparedChain(x, cache.chain);
  }
  const chain = buildChain(layers, x);
  if (cache) {
    cache.key = chainKey(layers, x);
    cache.chain = chain;
  }
  return chain && runPreparedChain(x, chain);
}

/** Takes a BatchNorm in inference form (of `features` channels) at layers[j], then a ReLU, into the block; returns the next index. */
function normalizeAndRectify(layers: readonly Module[], j: number, features: number, block: ConvBlock | DenseBlock): number {
  const bn = layers[j];
  if (bn?.constructor === BatchNorm && (bn as BatchNorm).numFeatures === features) {
    const constants = (bn as BatchNorm).inferenceConstants();
    if (constants) {
      block.batchNorm = constants;
      j++;
    }
  }
  if (layers[j]?.constructor === ReLU) {
    block.relu = true;
    j++;
  }
  return j;
}
