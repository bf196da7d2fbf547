// Inference of the seed network, moving statistics (eval mode): throughput at batch 1000 and, on
// the CPU, latency at batch 1. Ours is checked first against the plain float64 network's logits.
import type { Check, Figure } from '../lib/schema';
import { Ctx, imgs, runMeasured, skipped } from '../lib/context';
import { NET } from '../lib/shapes';
import { uniform } from '../lib/rng';
import { initParams, initRunningStats, plainInfer } from '../reference/plain-net';
import { Checker } from '../reference/plain';
import { makeOursNet } from '../lib/ours-net';
import type { Ours } from '../lib/ours';
import { TF_IMPL, tf, useBackend } from '../reference/tfjs/setup';
import { makeTfjsNet } from '../reference/tfjs/net';

const CASE = 'net.infer';

/** Logits against the float64 network's, to 1e-4 of the largest logit. */
export function checkLogits(got: Float32Array, ref: Float64Array | number[], what: string): Check {
  let scale = 0;
  for (const v of ref) scale = Math.max(scale, Math.abs(v));
  const ck = new Checker(1e-4);
  if (got.length !== ref.length) ck.add(NaN, 0, 1);
  for (let i = 0; i < ref.length; i++) ck.add(got[i], ref[i], scale, () => `logit ${i}`);
  return ck.result(`${what}, error / max |logit|`);
}

function checkOursInfer(o: Ours, n: number): Check {
  const p = initParams(8);
  const stats = initRunningStats(9);
  const xd = uniform(n * 784, 81, 0, 1);
  const net = makeOursNet(o, p);
  net.setRunning(stats);
  const x = o.kg.tensor(xd, [n, 1, 28, 28], { device: o.device });
  try {
    const y = net.infer(x);
    const got = y.toArray();
    y.dispose();
    return checkLogits(got, plainInfer(p, stats, xd, n, NET.eps), `batch ${n} logits`);
  } finally {
    x.dispose();
    net.dispose();
  }
}

/** Throughput at batch 1000 and, on the CPU, latency at batch 1: [batch, shape label]. */
export function inferenceBatches(ctx: Ctx): Array<[number, string]> {
  const batches: Array<[number, string]> = [[NET.inferBatch, NET.inferLabel]];
  if (ctx.device === 'cpu') batches.push([NET.latencyBatch, NET.latencyLabel]);
  return batches;
}

export async function run(ctx: Ctx): Promise<Figure[]> {
  const out: Figure[] = [];
  for (const [n, shape] of inferenceBatches(ctx)) if (ctx.wanted(CASE, shape)) out.push(...(await runBatch(ctx, n, shape)));
  return out;
}

async function runBatch(ctx: Ctx, n: number, shape: string): Promise<Figure[]> {
  ctx.log(`inference ${shape}`);
  const out: Figure[] = [];
  const xd = uniform(n * 784, 83, 0, 1);
  const p = initParams(1);
  const stats = initRunningStats(2);
  if (ctx.ours && ctx.wanted(CASE, shape, 'kernelgrad')) {
    const o = ctx.ours;
    let net: ReturnType<typeof makeOursNet> | undefined;
    let x: import('../../lib/tensor').Tensor | undefined;
    out.push(runMeasured(ctx, { case: CASE, shape, impl: 'kernelgrad' }, () => {
      net = makeOursNet(o, p);
      net.setRunning(stats);
      x = o.kg.tensor(xd, [n, 1, 28, 28], { device: o.device });
      return {
        fn: () => net!.infer(x!).dispose(),
        check: () => checkOursInfer(o, ctx.quick ? 32 : 128),
        kind: n > 1 ? 'step' : 'kernel',
        sync: o.sync,
        metric: imgs(n),
        note: 'bnCnn() in eval mode',
        dispose: () => { x?.dispose(); net?.dispose(); },
      };
    }));
  } else if (!ctx.ours) out.push(skipped(ctx, { case: CASE, shape, impl: 'kernelgrad' }, 'unavailable', ctx.oursMissing));

  if (ctx.device === 'cpu' && ctx.tfjs) {
    for (const be of ctx.tfjsBackends) {
      const impl = TF_IMPL[be];
      if (!ctx.wanted(CASE, shape, impl)) continue;
      await useBackend(be);
      const net = makeTfjsNet(p);
      const x = tf.tensor4d(xd, [n, 28, 28, 1]);
      out.push(runMeasured(ctx, { case: CASE, shape, impl }, () => ({
        fn: () => net.infer(x).dispose(),
        kind: n === 1 ? 'kernel' : be === 'cpu' ? 'huge' : 'step',
        metric: imgs(n),
        note: 'NHWC, moving statistics',
        dispose: () => { x.dispose(); net.dispose(); },
      })));
    }
  }
  return out;
}
