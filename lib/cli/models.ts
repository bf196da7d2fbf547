// The models `kernelgrad train` builds (--model bnCnn|fastCnn|resnet), and what their checkpoints record.
import { InvalidArgumentError } from 'commander';
import type { Device } from '../device';
import type { Module } from '../nn/module';
import { UsageError } from './options';

export type ModelName = 'bnCnn' | 'fastCnn' | 'resnet';

export function parseModelName(value: string): ModelName {
  const v = value.toLowerCase().replace(/[-_]/g, '');
  if (v === 'bncnn') return 'bnCnn';
  if (v === 'fastcnn') return 'fastCnn';
  if (v === 'resnet') return 'resnet';
  throw new InvalidArgumentError("must be 'bnCnn', 'fastCnn' or 'resnet'.");
}

export interface ModelChoice {
  model: ModelName;
  /** ResNet only. */
  depth?: number;
  width?: number;
}

export interface BuiltModel {
  model: Module;
  architecture: string;
  /** For the checkpoint's metadata. */
  layers: string;
}

/** Refuses model options that do not fit the model or the images. */
export function checkModelChoice(choice: ModelChoice, inputShape: readonly number[]): void {
  if (choice.model !== 'resnet') {
    if (choice.depth !== undefined) throw new UsageError('--depth applies to --model resnet only');
    if (choice.width !== undefined) throw new UsageError('--width applies to --model resnet only');
  }
  if (choice.model !== 'resnet' && (inputShape[0] !== 1 || inputShape[1] !== 28 || inputShape[2] !== 28)) {
    throw new UsageError(`--model ${choice.model} takes 1x28x28 MNIST images, this dataset has ${inputShape.join('x')}; use --model resnet`);
  }
  if (choice.depth !== undefined && (choice.depth < 8 || (choice.depth - 2) % 6 !== 0)) {
    throw new UsageError(`--depth ${choice.depth}: a ResNet has 6n + 2 layers (8, 14, 20, 32, ...)`);
  }
}

export async function buildModel(choice: ModelChoice, inputShape: readonly number[], device: Device, seed: number): Promise<BuiltModel> {
  if (choice.model === 'bnCnn') {
    const { bnCnn, BN_CNN_ARCHITECTURE, BN_CNN_SUMMARY } = await import('../models/bn-cnn');
    return { model: bnCnn({ device, seed }), architecture: BN_CNN_ARCHITECTURE, layers: BN_CNN_SUMMARY };
  }
  if (choice.model === 'fastCnn') {
    const { fastCnn, FAST_CNN_ARCHITECTURE, FAST_CNN_SUMMARY } = await import('../models/fast-cnn');
    return { model: fastCnn({ device, seed }), architecture: FAST_CNN_ARCHITECTURE, layers: FAST_CNN_SUMMARY };
  }
  const { resnet, RESNET_ARCHITECTURE } = await import('../models/resnet');
  const depth = choice.depth ?? 20;
  const width = choice.width ?? 16;
  return {
    model: resnet({ depth, width, inChannels: inputShape[0], classes: 10, device, seed }),
    architecture: RESNET_ARCHITECTURE,
    layers: `ResNet-${depth} width ${width} (stem, 3 stages of ${(depth - 2) / 6} basic blocks, global average pool, fc)`,
  };
}
