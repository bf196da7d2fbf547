// GEMM, fp32, C = A B (row-major, no transposes): the dense layer's 64x800x128 and a large square
// one (1024^3 and 2048^3 on the CPU, 4096^3 on the GPU) whose rate serves as the compute ceiling. Label MxKxN.
import type { Figure } from '../lib/schema';
import { Ctx, cycler, gflops, rotationSets, runMeasured, skipped } from '../lib/context';
import { GEMM_SHAPES, GemmCase } from '../lib/shapes';
import { uniform } from '../lib/rng';
import { checkSampled, gemmAt } from '../reference/plain';
import { disposeAll } from '../lib/ours';
import { TF_IMPL, tf, useBackend } from '../reference/tfjs/setup';
import { gemm } from '../reference/tfjs/ops';

const TOL = 1e-5; // error / sum of |a_ik b_kj|

function ours(ctx: Ctx, g: GemmCase, ad: Float32Array, bd: Float32Array): Figure {
  const o = ctx.ours!;
  const sets = rotationSets(ctx, 4 * (ad.length + bd.length + g.m * g.n));
  const a = Array.from({ length: sets }, () => o.storage(ad));
  const b = Array.from({ length: sets }, () => o.storage(bd));
  const c = Array.from({ length: sets }, () => o.storage(g.m * g.n));
  const next = cycler(sets);
  try {
    return runMeasured(ctx, { case: 'gemm', shape: g.label, impl: 'kernelgrad' }, () => ({
      fn: () => { const i = next(); o.native.gemm(false, false, g.m, g.n, g.k, 1, a[i], b[i], 0, c[i]); },
      check: () => {
        o.native.gemm(false, false, g.m, g.n, g.k, 1, a[0], b[0], 0, c[0]);
        const got = c[0].read();
        return checkSampled(g.m * g.n, 300, 51, TOL, (idx) => gemmAt(ad, bd, g.k, g.n, Math.floor(idx / g.n), idx % g.n), got, 'C')
          .result('300 sampled entries');
      },
      metric: gflops(2 * g.m * g.n * g.k),
      sync: o.sync,
      kind: g.m >= 1024 ? 'step' : 'kernel',
      note: sets > 1 ? `${sets} buffer sets cycled (cold L2)` : undefined,
    }));
  } finally {
    o.sync();
    disposeAll(a, b, c);
  }
}

export async function run(ctx: Ctx): Promise<Figure[]> {
  const out: Figure[] = [];
  for (const g of GEMM_SHAPES) {
    if (!g.devices.includes(ctx.device) || !ctx.wanted('gemm', g.label)) continue;
    ctx.log(`gemm ${g.label}`);
    const ad = uniform(g.m * g.k, 52);
    const bd = uniform(g.k * g.n, 53);
    const flops = 2 * g.m * g.n * g.k;
    if (ctx.ours) {
      if (ctx.wanted('gemm', g.label, 'kernelgrad')) {
        const f = ours(ctx, g, ad, bd);
        out.push(f);
        if (f.status === 'ok') ctx.ceilings.gemmGFs = Math.max(ctx.ceilings.gemmGFs ?? 0, f.metric!.value);
      }
    } else out.push(skipped(ctx, { case: 'gemm', shape: g.label, impl: 'kernelgrad' }, 'unavailable', ctx.oursMissing));
    if (ctx.device === 'cpu' && ctx.tfjs) {
      for (const be of ctx.tfjsBackends) {
        const impl = TF_IMPL[be];
        if (!ctx.wanted('gemm', g.label, impl)) continue;
        if (be === 'cpu' && g.m >= 2048) {
          out.push(skipped(ctx, { case: 'gemm', shape: g.label, impl }, 'skipped', 'plain JS: over 30 s a call'));
          continue;
        }
        await useBackend(be);
        const a = tf.tensor2d(ad, [g.m, g.k]);
        const b = tf.tensor2d(bd, [g.k, g.n]);
        try {
          out.push(runMeasured(ctx, { case: 'gemm', shape: g.label, impl }, () => ({
            fn: () => tf.tidy(() => void gemm(a, b)), metric: gflops(flops), kind: g.m >= 1024 ? (be === 'cpu' ? 'slow' : 'step') : 'kernel', note: 'tf.matMul',
          })));
        } finally {
          tf.dispose([a, b]);
        }
      }
    }
  }
  return out;
}
