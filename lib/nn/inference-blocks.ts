// Where a Sequential may run a stretch of its layers as one fused inference call instead of layer
// by layer, on the CPU, with no gradient being recorded: Conv2d followed by any of BatchNorm
// (normalizing with its moving statistics), ReLU and AvgPool2d, in that order; and Linear followed
// by any of BatchNorm and ReLU. The fused calls give bitwise the results of the layers one by one
// (lib/ops/conv-block.ts, lib/ops/dense-block.ts); anything they do not cover -- another device,
// gradients, a subclass with its own forward, shapes that would make a layer throw -- runs layer
// by layer, so every error still comes from the layer that raises it.
import { isRecording } from '../autograd/tape';
import { ConvBlock, convBlockInference, convBlockOutput } from '../ops/conv-block';
import { DenseBlock, denseBlockInference } from '../ops/dense-block';
import { pair } from '../ops/conv';
import type { Tensor } from '../tensor';
import { ReLU } from './activation';
import { BatchNorm } from './batchnorm';
import { Conv2d } from './conv2d';
import { Linear } from './linear';
import type { Module } from './module';
import { AvgPool2d } from './pooling';

/** Runs the convolution block that starts at layers[i] on x if it can be fused: its output and how many layers it took. */
export function runConvBlock(layers: readonly Module[], i: number, x: Tensor): { y: Tensor; layers: number } | null {
  const conv = layers[i];
  // Exact classes only, so that a subclass's own forward is never bypassed.
  if (conv.constructor !== Conv2d || isRecording() || x.device !== 'cpu') return null;
  const c = conv as Conv2d;
  if (x.ndim !== 4 || x.shape[1] !== c.inChannels || c.weight.device !== 'cpu') return null;
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
  if (j === i + 1 || !convBlockOutput(block, x.shape[2], x.shape[3])) return null;
  return { y: convBlockInference(x, block), layers: j - i };
}

/** The same for a Linear followed by BatchNorm and ReLU; a Linear alone is fused too (its bias add is a call of its own otherwise). */
export function runDenseBlock(layers: readonly Module[], i: number, x: Tensor): { y: Tensor; layers: number } | null {
  const dense = layers[i];
  if (dense.constructor !== Linear || isRecording() || x.device !== 'cpu') return null;
  const d = dense as Linear;
  if (x.ndim !== 2 || x.shape[1] !== d.inFeatures || d.weight.device !== 'cpu') return null;
  const block: DenseBlock = { weight: d.weight, bias: d.bias, batchNorm: null, relu: false };
  const j = normalizeAndRectify(layers, i + 1, d.outFeatures, block);
  if (j === i + 1 && !block.bias) return null;
  return { y: denseBlockInference(x, block), layers: j - i };
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
