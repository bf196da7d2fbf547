// Inference folding: a batch norm in inference mode is a per-channel affine map, so when it
// directly follows a convolution or a dense layer it can be merged into that layer's weights and
// bias, which removes a full pass over the activations (and the norm's kernel launch) per layer.
import { tensor } from '../ops/creation';
import { describe } from '../options';
import { Tensor } from '../tensor';
import { BatchNorm } from './batchnorm';
import { cloneModule, setParameter } from './clone';
import { Conv2d } from './conv2d';
import { Linear } from './linear';
import { Module } from './module';
import { Residual } from './residual';
import { Sequential } from './sequential';

type Foldable = Conv2d | Linear;

/** A tensor's values in float64, for the folding arithmetic. */
function values(t: Tensor | null | undefined, n: number, fill: number): Float64Array {
  return t ? Float64Array.from(t.toArray()) : new Float64Array(n).fill(fill);
}

function parameterOf(m: Module, name: string): Tensor | null {
  return m.namedParameters().find(([n]) => n === name)?.[1] ?? null;
}

// Batch norms that normalize with their running statistics in inference. One that keeps none
// (normalizing with the batch's statistics even in eval) is not an affine map and stays as it is.
function canFold(layer: Module, bn: Module): bn is BatchNorm {
  if (!(bn instanceof BatchNorm) || (bn as { trackRunningStats?: boolean }).trackRunningStats === false) return false;
  const out = layer instanceof Conv2d ? layer.outChannels : (layer as Linear).outFeatures;
  return out === bn.numFeatures;
}

/**
 * layer followed by bn, as one layer: with k = gamma / sqrt(runningVar + eps) per output channel,
 * weight' = weight * k and bias' = (bias - runningMean) * k + beta, in float64 and rounded once.
 */
function fold(layer: Foldable, bn: BatchNorm): Foldable {
  const out = bn.numFeatures;
  const gamma = values(parameterOf(bn, 'gamma'), out, 1);
  const beta = values(parameterOf(bn, 'beta'), out, 0);
  const mean = values(bn.runningMean, out, 0);
  const variance = values(bn.runningVar, out, 1);
  const bias = values(layer.bias, out, 0);
  const weight = Float64Array.from(layer.weight.toArray());
  const perChannel = weight.length / out;
  // The scale as the batch-norm kernels form it: invstd rounded to float32, then gamma * invstd.
  const eps = Math.fround(bn.eps);
  const k = gamma.map((g, c) => Math.fround(g * Math.fround(1 / Math.sqrt(Math.fround(variance[c]) + eps))));
  for (let i = 0; i < weight.length; i++) weight[i] *= k[Math.floor(i / perChannel)];
  const folded = cloneModule(layer);
  const { device } = layer.weight;
  setParameter(folded, 'weight', tensor(Float32Array.from(weight), layer.weight.shape, { device }));
  setParameter(folded, 'bias', tensor(Float32Array.from(bias, (b, c) => (b - mean[c]) * k[c] + beta[c]), [out], { device }));
  return folded;
}

function foldChildren(m: Module): Module {
  if (m instanceof Sequential) {
    const kids = m.children();
    const entries: Array<[string, Module]> = [];
    for (let i = 0; i < kids.length; i++) {
      const [name, layer] = kids[i];
      const next = kids[i + 1]?.[1];
      if ((layer instanceof Conv2d || layer instanceof Linear) && next && canFold(layer, next)) {
        entries.push([name, fold(layer, next)]);
        i++; // the batch norm is now part of the layer
      } else {
        entries.push([name, foldChildren(layer)]);
      }
    }
    return new Sequential(entries);
  }
  if (m instanceof Residual) return new Residual(foldChildren(m.body), m.shortcut ? foldChildren(m.shortcut) : null);
  return cloneModule(m);
}

/**
 * A new model for inference in which every BatchNorm that directly follows a Conv2d or a Linear
 * in a Sequential (including the bodies and shortcuts of Residual blocks) is merged into that
 * layer's weights and bias. Its eval() predictions equal the original's to float32 rounding; the
 * original is left untouched. The merged batch norms disappear from the state dict; other modules
 * are copied as they are. The result is in eval mode.
 */
export function foldBatchNorm(model: Module): Module {
  if (!(model instanceof Module)) throw new TypeError(`kg.nn.foldBatchNorm: model must be a Module, got ${describe(model)}`);
  return foldChildren(model).eval();
}
