// The seed network's whole training step at batch 64: forward, summed softmax cross-entropy,
// backward, SGD update (lr 0.001). Ours through the public API, checked first against the plain
// float64 network (loss, all 14 gradients, and the update).
import type { Check, Figure } from '../lib/schema';
import { Ctx, imgs, runMeasured, skipped } from '../lib/context';
import { NET } from '../lib/shapes';
import { labels as makeLabels, uniform } from '../lib/rng';
import { initParams, PARAM_NAMES, plainTrainStep, relL2 } from '../reference/plain-net';
import { makeOursNet } from '../lib/ours-net';
import type { Ours } from '../lib/ours';
import { TF_IMPL, tf, useBackend } from '../reference/tfjs/setup';
import { makeTfjsNet } from '../reference/tfjs/net';

const CASE = 'net.train_step';
const SHAPE = NET.trainLabel;
const GRAD_TOL = 2e-4; // relative L2 error of each gradient, and of each update

/** One step of ours against the plain network at batch n. */
export function checkOursStep(o: Ours, n: number): Check {
  const kg = o.kg;
  const p0 = initParams(7);
  const xd = uniform(n * 784, 71, 0, 1);
  const ld = makeLabels(n, 10, 72);
  const net = makeOursNet(o, p0);
  const x = kg.tensor(xd, [n, 1, 28, 28], { device: o.device });
  const y = kg.tensor(ld, [n], { device: o.device });
  try {
    const ref = plainTrainStep(p0, xd, ld, n, NET.eps);
    const got = net.lossAndGrads(x, y);
    let worst = Math.abs(got.loss - ref.loss) / Math.abs(ref.loss);
    let where = `loss ${got.loss} vs ${ref.loss}`;
    for (const name of PARAM_NAMES) {
      const e = relL2(got.grads[name], ref.grads[name], ref.scales[name]);
      if (!(e <= worst)) {
        worst = Number.isNaN(e) ? Infinity : e;
        where = `grad ${name}`;
      }
    }
    const before = net.params();
    net.update();
    const after = net.params();
    for (const name of PARAM_NAMES) {
      const want = before[name].map((v, i) => v - NET.lr * got.grads[name][i]);
      const delta = before[name].map((v, i) => v - want[i]); // the update itself
      const moved = after[name].map((v, i) => before[name][i] - v);
      const e = relL2(moved, delta);
      if (!(e <= worst)) {
        worst = Number.isNaN(e) ? Infinity : e;
        where = `SGD update of ${name}`;
      }
    }
    const status = worst <= GRAD_TOL ? 'pass' : 'fail';
    return { status, maxErr: worst, tol: GRAD_TOL, how: `batch ${n}: loss, 14 gradients, SGD update (rel. L2; pre-BN biases vs sum |terms|)` + (status === 'pass' ? '' : `; worst: ${where}`) };
  } finally {
    x.dispose();
    y.dispose();
    net.dispose();
  }
}

export async function run(ctx: Ctx): Promise<Figure[]> {
  if (!ctx.wanted(CASE, SHAPE)) return [];
  ctx.log(`training step ${SHAPE}`);
  const out: Figure[] = [];
  const n = NET.batch;
  const xd = uniform(n * 784, 73, 0, 1);
  const ld = makeLabels(n, 10, 74);
  const p = initParams(1);
  if (ctx.ours && ctx.wanted(CASE, SHAPE, 'kernelgrad')) {
    const o = ctx.ours;
    let net: ReturnType<typeof makeOursNet> | undefined;
    let x: import('../../lib/tensor').Tensor | undefined;
    let y: import('../../lib/tensor').Tensor | undefined;
    out.push(runMeasured(ctx, { case: CASE, shape: SHAPE, impl: 'kernelgrad' }, () => {
      net = makeOursNet(o, p);
      x = o.kg.tensor(xd, [n, 1, 28, 28], { device: o.device });
      y = o.kg.tensor(ld, [n], { device: o.device });
      return {
        fn: () => net!.step(x!, y!),
        check: () => checkOursStep(o, ctx.quick ? 16 : 64),
        kind: 'step',
        sync: o.sync,
        metric: imgs(n),
        note: net.describe,
        dispose: () => { x?.dispose(); y?.dispose(); net?.dispose(); },
      };
    }));
  } else if (!ctx.ours) out.push(skipped(ctx, { case: CASE, shape: SHAPE, impl: 'kernelgrad' }, 'unavailable', ctx.oursMissing));

  if (ctx.device === 'cpu' && ctx.tfjs) {
    for (const be of ctx.tfjsBackends) {
      const impl = TF_IMPL[be];
      if (!ctx.wanted(CASE, SHAPE, impl)) continue;
      const m = { case: CASE, shape: SHAPE, impl };
      await useBackend(be);
      const net = makeTfjsNet(p);
      const x = tf.tensor4d(xd, [n, 28, 28, 1]);
      const y = tf.oneHot(tf.tensor1d(Array.from(ld), 'int32'), 10) as tf.Tensor2D;
      out.push(runMeasured(ctx, m, () => ({
        fn: () => net.step(x, y),
        kind: be === 'cpu' ? 'huge' : 'step', // tfjs-cpu: ~90 s a step (its filter gradient)
        metric: imgs(n),
        note: 'tf.train.sgd(0.001).minimize, summed tf.losses.softmaxCrossEntropy, NHWC' + (be === 'wasm' ? '; filter gradient supplied (wasm has none)' : ''),
        dispose: () => { tf.dispose([x, y]); net.dispose(); },
      })));
    }
  }
  return out;
}
