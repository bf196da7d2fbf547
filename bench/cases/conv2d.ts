// conv2d at the seed network's two layers: forward (with bias), backward data, backward filter
// (weight and bias). GFLOP/s at 2 x multiply-adds of the forward for each of the three.
import type { Figure } from '../lib/schema';
import { Ctx, cycler, gflops, rotationSets, runMeasured, skipped } from '../lib/context';
import { CONV_SHAPES, ConvCase, convFlops, convOut } from '../lib/shapes';
import { normal, numel } from '../lib/rng';
import { Checker, ConvDims, convBwdBiasAt, convBwdDataAt, convBwdWeightAt, convFwdAt, sampleIndices } from '../reference/plain';
import { disposeAll } from '../lib/ours';
import type { ConvShapeArg } from '../../lib/native';
import { TF_IMPL, tf, useBackend } from '../reference/tfjs/setup';
import { convBwdData, convBwdFilter, convFwd } from '../reference/tfjs/ops';

const OPS = ['conv.fwd', 'conv.bwd_data', 'conv.bwd_filter'] as const;
const SAMPLES = 400;
const TOL = 1e-5; // error / sum of |terms| of each dot product

function dims(s: ConvCase): ConvDims {
  const [n, c, h, w] = s.x;
  const [k, , kh, kw] = s.w;
  const [, , oh, ow] = convOut(s);
  return { n, c, h, w, k, kh, kw, stride: s.stride, pad: s.pad, oh, ow };
}

/** idx -> coordinates of a 4-D row-major tensor. */
function unravel(idx: number, shape: readonly number[]): number[] {
  const out = new Array(shape.length);
  for (let i = shape.length - 1; i >= 0; i--) {
    out[i] = idx % shape[i];
    idx = Math.floor(idx / shape[i]);
  }
  return out;
}

function ours(ctx: Ctx, s: ConvCase, xd: Float32Array, wd: Float32Array, bd: Float32Array, dyd: Float32Array): Figure[] {
  const o = ctx.ours!;
  const nat = o.native;
  const d = dims(s);
  const yShape = convOut(s);
  const shape: ConvShapeArg = [d.n, d.c, d.h, d.w, d.k, d.kh, d.kw, s.stride, s.stride, s.pad, s.pad, 1];
  const sets = rotationSets(ctx, 4 * (xd.length + dyd.length));
  const x = Array.from({ length: sets }, () => o.storage(xd));
  const dy = Array.from({ length: sets }, () => o.storage(dyd));
  const y = Array.from({ length: sets }, () => o.storage(dyd.length));
  const dx = Array.from({ length: sets }, () => o.storage(xd.length));
  const w = o.storage(wd);
  const b = o.storage(bd);
  const dw = o.storage(wd.length);
  const db = o.storage(bd.length);
  const flops = convFlops(s);
  const note = sets > 1 ? `${sets} buffer sets cycled (cold L2)` : undefined;
  const out: Figure[] = [];
  const want = (op: string) => ctx.wanted(op, s.label, 'kernelgrad');
  try {
    if (want('conv.fwd')) {
      const next = cycler(sets);
      out.push(runMeasured(ctx, { case: 'conv.fwd', shape: s.label, impl: 'kernelgrad' }, () => ({
        fn: () => { const i = next(); nat.conv2dForward(shape, x[i], w, b, y[i]); },
        check: () => {
          nat.conv2dForward(shape, x[0], w, b, y[0]);
          const got = y[0].read();
          const ck = new Checker(TOL);
          for (const idx of sampleIndices(got.length, SAMPLES, 21)) {
            const [n, k, i, j] = unravel(idx, yShape);
            const [ref, sc] = convFwdAt(d, xd, wd, bd, n, k, i, j);
            ck.add(got[idx], ref, sc + 1e-12, () => `y[${idx}]`);
          }
          return ck.result(`${SAMPLES} sampled outputs`);
        },
        metric: gflops(flops), sync: o.sync, note,
      })));
    }
    if (want('conv.bwd_data')) {
      const next = cycler(sets);
      out.push(runMeasured(ctx, { case: 'conv.bwd_data', shape: s.label, impl: 'kernelgrad' }, () => ({
        fn: () => { const i = next(); nat.conv2dBackwardData(shape, dy[i], w, dx[i]); },
        check: () => {
          nat.conv2dBackwardData(shape, dy[0], w, dx[0]);
          const got = dx[0].read();
          const ck = new Checker(TOL);
          for (const idx of sampleIndices(got.length, SAMPLES, 22)) {
            const [n, c, h, ww] = unravel(idx, s.x);
            const [ref, sc] = convBwdDataAt(d, dyd, wd, n, c, h, ww);
            ck.add(got[idx], ref, sc + 1e-12, () => `dx[${idx}]`);
          }
          return ck.result(`${SAMPLES} sampled dx`);
        },
        metric: gflops(flops), sync: o.sync, note,
      })));
    }
    if (want('conv.bwd_filter')) {
      const next = cycler(sets);
      out.push(runMeasured(ctx, { case: 'conv.bwd_filter', shape: s.label, impl: 'kernelgrad' }, () => ({
        fn: () => {
          const i = next();
          nat.conv2dBackwardWeight(shape, x[i], dy[i], dw, db);
        },
        check: () => {
          nat.conv2dBackwardWeight(shape, x[0], dy[0], dw, db);
          const gw = dw.read();
          const gb = db.read();
          const ck = new Checker(TOL);
          for (const idx of sampleIndices(gw.length, SAMPLES, 23)) {
            const [k, c, p, q] = unravel(idx, s.w);
            const [ref, sc] = convBwdWeightAt(d, xd, dyd, k, c, p, q);
            ck.add(gw[idx], ref, sc + 1e-12, () => `dw[${idx}]`);
          }
          for (let k = 0; k < d.k; k++) {
            const [ref, sc] = convBwdBiasAt(d, dyd, k);
            ck.add(gb[k], ref, sc + 1e-12, () => `db[${k}]`);
          }
          return ck.result(`${Math.min(SAMPLES, gw.length)} sampled dw, all db`);
        },
        metric: gflops(flops), sync: o.sync, note: [note, 'weight + bias'].filter(Boolean).join('; '),
      })));
    }
  } finally {
    o.sync();
    disposeAll(x, dy, y, dx, w, b, dw, db);
  }
  return out;
}

async function tfjs(ctx: Ctx, s: ConvCase, xd: Float32Array, wd: Float32Array, bd: Float32Array, dyd: Float32Array): Promise<Figure[]> {
  const out: Figure[] = [];
  const flops = convFlops(s);
  const [n, c, h, w] = s.x;
  const [k, , kh, kw] = s.w;
  const [, , oh, ow] = convOut(s);
  for (const be of ctx.tfjsBackends) {
    const impl = TF_IMPL[be];
    if (!OPS.some((op) => ctx.wanted(op, s.label, impl))) continue;
    await useBackend(be);
    // Values are laid out NHWC / HWCK; the numbers are the same random draws (timing only).
    const x = tf.tensor4d(xd, [n, h, w, c]);
    const wt = tf.tensor4d(wd, [kh, kw, c, k]);
    const b = tf.tensor1d(bd);
    const dy = tf.tensor4d(dyd, [n, oh, ow, k]);
    try {
      if (ctx.wanted('conv.fwd', s.label, impl))
        out.push(runMeasured(ctx, { case: 'conv.fwd', shape: s.label, impl }, () => ({
          fn: () => tf.tidy(() => void convFwd(x, wt, b, s.stride, s.pad)), metric: gflops(flops), note: 'tf.fused.conv2d, NHWC',
        })));
      if (ctx.wanted('conv.bwd_data', s.label, impl))
        out.push(runMeasured(ctx, { case: 'conv.bwd_data', shape: s.label, impl }, () => ({
          fn: () => tf.tidy(() => void convBwdData(dy, wt, [n, h, w, c], s.stride, s.pad)), metric: gflops(flops),
        })));
      if (ctx.wanted('conv.bwd_filter', s.label, impl)) {
        const m = { case: 'conv.bwd_filter', shape: s.label, impl };
        // The cpu backend's filter gradient reads every element through buffer.get(): ~3 s at L1,
        // ~90 s at L2 on 2 cores. L2's cost is inside the tfjs-cpu training step anyway.
        if (be === 'cpu' && convFlops(s) > 1e8) out.push(skipped(ctx, m, 'skipped', 'about 90 s a call (per-element loops); it is inside net.train_step tfjs-cpu'));
        else out.push(runMeasured(ctx, m, () => ({
            fn: () => tf.tidy(() => void convBwdFilter(x, dy, [kh, kw, c, k], s.stride, s.pad)),
            metric: gflops(flops),
            kind: be === 'cpu' ? 'slow' : 'kernel',
            note: be === 'wasm' ? 'weight + bias; weight via the supplied kernel (conv2d of transposed tensors)' : 'weight + bias',
          })));
      }
    } finally {
      tf.dispose([x, wt, b, dy]);
    }
  }
  return out;
}

export async function run(ctx: Ctx): Promise<Figure[]> {
  const out: Figure[] = [];
  for (const s of CONV_SHAPES) {
    if (!OPS.some((op) => ctx.wanted(op, s.label))) continue;
    ctx.log(`conv2d ${s.label}`);
    const xd = normal(numel(s.x), 31);
    const wd = normal(numel(s.w), 32, 0, 0.1);
    const bd = normal(s.w[0], 33, 0, 0.1);
    const dyd = normal(numel(convOut(s)), 34);
    if (ctx.ours) { if (OPS.some((op) => ctx.wanted(op, s.label, 'kernelgrad'))) out.push(...ours(ctx, s, xd, wd, bd, dyd)); }
    else for (const op of OPS) if (ctx.wanted(op, s.label, 'kernelgrad')) out.push(skipped(ctx, { case: op, shape: s.label, impl: 'kernelgrad' }, 'unavailable', ctx.oursMissing));
    if (ctx.device === 'cpu' && ctx.tfjs) out.push(...(await tfjs(ctx, s, xd, wd, bd, dyd)));
  }
  return out;
}
