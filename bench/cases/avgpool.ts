// Average pooling 2x2 stride 2 (no padding; 9 is odd, so 9 -> 4 and the last row and column are
// not read). Bandwidth at the minimal bytes: forward reads x and writes y, backward reads dy and
// writes all of dx (zeros included).
import type { Figure } from '../lib/schema';
import { Ctx, cycler, gbs, rotationSets, runMeasured, skipped } from '../lib/context';
import { POOL_SHAPES, PoolCase, poolOut } from '../lib/shapes';
import { normal, numel } from '../lib/rng';
import { checkFull, poolBwd64, poolFwd64 } from '../reference/plain';
import { disposeAll } from '../lib/ours';
import type { PoolShapeArg } from '../../lib/native';
import { TF_IMPL, tf, useBackend } from '../reference/tfjs/setup';
import { poolBwd, poolFwd } from '../reference/tfjs/ops';

const OPS = ['pool.fwd', 'pool.bwd'] as const;

function ours(ctx: Ctx, s: PoolCase, xd: Float32Array, dyd: Float32Array): Figure[] {
  const o = ctx.ours!;
  const nat = o.native;
  const [n, c, h, w] = s.x;
  const shape: PoolShapeArg = [n, c, h, w, 2, 2, 2, 2];
  const bytes = 4 * (xd.length + dyd.length);
  const sets = rotationSets(ctx, bytes);
  const x = Array.from({ length: sets }, () => o.storage(xd));
  const y = Array.from({ length: sets }, () => o.storage(dyd.length));
  const dy = Array.from({ length: sets }, () => o.storage(dyd));
  const dx = Array.from({ length: sets }, () => o.storage(xd.length));
  const note = sets > 1 ? `${sets} buffer sets cycled (cold L2)` : undefined;
  const out: Figure[] = [];
  try {
    if (ctx.wanted('pool.fwd', s.label, 'kernelgrad')) {
      const next = cycler(sets);
      out.push(runMeasured(ctx, { case: 'pool.fwd', shape: s.label, impl: 'kernelgrad' }, () => ({
        fn: () => { const i = next(); nat.avgPool2dForward(shape, x[i], y[i]); },
        check: () => {
          nat.avgPool2dForward(shape, x[0], y[0]);
          return checkFull(y[0].read(), poolFwd64(xd, s.x), 1e-6, 'y').result(`full ${s.label}`);
        },
        metric: gbs(bytes), sync: o.sync, note,
      })));
    }
    if (ctx.wanted('pool.bwd', s.label, 'kernelgrad')) {
      const next = cycler(sets);
      out.push(runMeasured(ctx, { case: 'pool.bwd', shape: s.label, impl: 'kernelgrad' }, () => ({
        fn: () => { const i = next(); nat.avgPool2dBackward(shape, dy[i], dx[i]); },
        check: () => {
          nat.avgPool2dBackward(shape, dy[0], dx[0]);
          return checkFull(dx[0].read(), poolBwd64(dyd, s.x), 1e-6, 'dx').result(`full ${s.label}`);
        },
        metric: gbs(bytes), sync: o.sync, note,
      })));
    }
  } finally {
    o.sync();
    disposeAll(x, y, dy, dx);
  }
  return out;
}

async function tfjs(ctx: Ctx, s: PoolCase, xd: Float32Array, dyd: Float32Array): Promise<Figure[]> {
  const out: Figure[] = [];
  const [n, c, h, w] = s.x;
  const [, , oh, ow] = poolOut(s);
  const bytes = 4 * (xd.length + dyd.length);
  for (const be of ctx.tfjsBackends) {
    const impl = TF_IMPL[be];
    if (!OPS.some((op) => ctx.wanted(op, s.label, impl))) continue;
    await useBackend(be);
    const x = tf.tensor4d(xd, [n, h, w, c]);
    const dy = tf.tensor4d(dyd, [n, oh, ow, c]);
    try {
      if (ctx.wanted('pool.fwd', s.label, impl))
        out.push(runMeasured(ctx, { case: 'pool.fwd', shape: s.label, impl }, () => ({
          fn: () => tf.tidy(() => void poolFwd(x)), metric: gbs(bytes), note: 'NHWC',
        })));
      if (ctx.wanted('pool.bwd', s.label, impl))
        out.push(runMeasured(ctx, { case: 'pool.bwd', shape: s.label, impl }, () => ({
          fn: () => tf.tidy(() => void poolBwd(dy, x)), metric: gbs(bytes), note: 'AvgPoolGrad, NHWC',
        })));
    } finally {
      tf.dispose([x, dy]);
    }
  }
  return out;
}

export async function run(ctx: Ctx): Promise<Figure[]> {
  const out: Figure[] = [];
  for (const s of POOL_SHAPES) {
    if (!OPS.some((op) => ctx.wanted(op, s.label))) continue;
    ctx.log(`avg-pool ${s.label}`);
    const xd = normal(numel(s.x), 41);
    const dyd = normal(numel(poolOut(s)), 42);
    if (ctx.ours) { if (OPS.some((op) => ctx.wanted(op, s.label, 'kernelgrad'))) out.push(...ours(ctx, s, xd, dyd)); }
    else for (const op of OPS) if (ctx.wanted(op, s.label, 'kernelgrad')) out.push(skipped(ctx, { case: op, shape: s.label, impl: 'kernelgrad' }, 'unavailable', ctx.oursMissing));
    if (ctx.device === 'cpu' && ctx.tfjs) out.push(...(await tfjs(ctx, s, xd, dyd)));
  }
  return out;
}
