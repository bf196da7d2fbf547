// Inference of the seed network with its batch norms folded into the layers before them
// (kg.nn.foldBatchNorm) against the same network unfolded, both ours, in eval mode at batch 1000
// (and 1 on the CPU): the column "x kernelgrad-unfolded" is the speed-up folding gives. The folded
// logits are checked against the plain float64 network first.
import type { Check, Figure } from '../lib/schema';
import { Ctx, imgs, runMeasured, skipped } from '../lib/context';
import { NET } from '../lib/shapes';
import { uniform } from '../lib/rng';
import { initParams, initRunningStats, plainInfer } from '../reference/plain-net';
import { checkLogits, inferenceBatches } from './inference';
import { makeOursNet } from '../lib/ours-net';
import type { Ours } from '../lib/ours';
import type { Tensor } from '../../lib/tensor';
import type { Module } from '../../lib/nn/module';

const CASE = 'net.infer_folded';
const UNFOLDED = 'kernelgrad-unfolded';

/** The seed network with the tutorial's parameters and the given moving statistics, folded or not. */
function makeModel(o: Ours, paramSeed: number, statsSeed: number, folded: boolean): { model: Module; dispose(): void } {
  const net = makeOursNet(o, initParams(paramSeed));
  net.setRunning(initRunningStats(statsSeed));
  if (!folded) return { model: net.model.eval(), dispose: () => net.dispose() };
  const model = o.kg.nn.foldBatchNorm(net.model);
  net.dispose();
  return { model, dispose: () => model.dispose() };
}

function checkFolded(o: Ours, n: number): Check {
  const xd = uniform(n * 784, 81, 0, 1);
  const m = makeModel(o, 8, 9, true);
  const x = o.kg.tensor(xd, [n, 1, 28, 28], { device: o.device });
  try {
    const got = o.kg.tidy(() => m.model.forward(x).toArray());
    return checkLogits(got, plainInfer(initParams(8), initRunningStats(9), xd, n, NET.eps), `batch ${n} folded logits`);
  } finally {
    x.dispose();
    m.dispose();
  }
}

export async function run(ctx: Ctx): Promise<Figure[]> {
  const out: Figure[] = [];
  for (const [n, shape] of inferenceBatches(ctx)) {
    if (!ctx.wanted(CASE, shape)) continue;
    ctx.log(`folded inference ${shape}`);
    const o = ctx.ours;
    if (!o) {
      out.push(skipped(ctx, { case: CASE, shape, impl: 'kernelgrad' }, 'unavailable', ctx.oursMissing));
      continue;
    }
    const xd = uniform(n * 784, 83, 0, 1);
    for (const [impl, folded] of [['kernelgrad', true], [UNFOLDED, false]] as const) {
      if (!ctx.wanted(CASE, shape, impl)) continue;
      let m: ReturnType<typeof makeModel> | undefined;
      let x: Tensor | undefined;
      out.push(runMeasured(ctx, { case: CASE, shape, impl }, () => {
        m = makeModel(o, 1, 2, folded);
        x = o.kg.tensor(xd, [n, 1, 28, 28], { device: o.device });
        return {
          fn: () => o.kg.tidy(() => { m!.model.forward(x!); }),
          check: folded ? () => checkFolded(o, ctx.quick ? 32 : 128) : undefined,
          kind: n > 1 ? 'step' : 'kernel',
          sync: o.sync,
          metric: imgs(n),
          note: folded ? 'kg.nn.foldBatchNorm(bnCnn()): 3 batch norms merged into conv1, conv2, fc1' : 'bnCnn() in eval mode, as net.infer',
          dispose: () => { x?.dispose(); m?.dispose(); },
        };
      }));
    }
  }
  return out;
}
