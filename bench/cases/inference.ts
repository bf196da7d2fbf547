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
    const ref = plainInfer(p, stats, xd, n, NET.eps);
    let scale = 0;
    for (const v of ref) scale = Math.max(scale, Math.abs(v));
    const ck = new Checker(1e-4);
    if (got.length !== ref.length) ck.add(NaN, 0, 1);
    for (let i = 0; i < ref.length; i++) ck.add(got[i], ref[i], scale, () => `logit ${i}`);
    return ck.result(`batch ${n} logits, error / max |logit|`);
  } finally {
    x.dispose();
    net.dispose();
  }
}

export async function run(ctx: Ctx): Promise<Figure[]> {
  const batches: Array<[number, string]> = [[NET.inferBatch, NET.inferLabel]];
  if (ctx.device === 'cpu') batches.push([NET.latencyBatch, NET.latencyLabel]);
  const out: Figure[] = [];
  for (const [n, shape] of batches) if (ctx.wanted(CASE, shape)) out.push(...(await runBatch(ctx, n, shape)));
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
