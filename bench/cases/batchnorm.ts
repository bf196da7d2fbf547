// Batch norm: training forward, inference forward, backward, at the seed network's shapes and
// large ones, and the fused batch norm + ReLU (ours: one op each way; PyTorch: relu(batch_norm)).
// Bandwidth counted at the minimal bytes (BN_BYTES_PER_ELEM).
import type { Figure } from '../lib/schema';
import { Ctx, cycler, gbs, rotationSets, runMeasured, skipped } from '../lib/context';
import { BN_BYTES_PER_ELEM, BN_SHAPES, BnCase, BnOp, bnNcl } from '../lib/shapes';
import { normal, numel, uniform } from '../lib/rng';
import { checkBnBackward, checkBnInferFwd, checkBnTrainFwd, sampleIndices } from '../reference/plain';
import { disposeAll } from '../lib/ours';
import { TF_IMPL, tf, useBackend } from '../reference/tfjs/setup';
import { bnInfer, bnTrain, bnTrainGrads, nhwc } from '../reference/tfjs/ops';
import type { BnRunningUpdateArgs } from '../../lib/native';

/** The training forward alone: no running statistics, no status words. */
const NO_UPDATE: BnRunningUpdateArgs = [null, null, 0, false, null, false, null, 0];

const EPS = 1e-5;
const OPS: BnOp[] = ['bn.train_fwd', 'bn.infer_fwd', 'bn.backward', 'bn_relu.train_fwd', 'bn_relu.backward'];
/** What TensorFlow.js runs (it has no fused batch norm + ReLU). */
const TFJS_OPS: BnOp[] = ['bn.train_fwd', 'bn.infer_fwd', 'bn.backward'];

interface Data {
  x: Float32Array;
  dy: Float32Array;
  gamma: Float32Array;
  beta: Float32Array;
  rmean: Float32Array;
  rvar: Float32Array;
}

/** Random values; past 16M elements a random block of a prime length is tiled (generating 205M
 *  values in JS takes tens of seconds, which GPU time should not wait for). */
function big(n: number, gen: (m: number) => Float32Array): Float32Array {
  if (n <= 1 << 24) return gen(n);
  const block = gen(4_000_037);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += block.length) out.set(n - i >= block.length ? block : block.subarray(0, n - i), i);
  return out;
}

function makeData(s: BnCase): Data {
  const n = numel(s.shape);
  const c = s.shape[1];
  return {
    // an offset mean (|mean| >> std would show E[x^2]-E[x]^2 cancellation)
    x: big(n, (m) => uniform(m, 11, 4, 6)),
    dy: big(n, (m) => normal(m, 12)),
    gamma: normal(c, 13, 1, 0.1),
    beta: normal(c, 14, 0, 0.1),
    rmean: normal(c, 15, 5, 0.05),
    rvar: uniform(c, 16, 0.25, 0.4),
  };
}

function ours(ctx: Ctx, s: BnCase, d: Data): Figure[] {
  const o = ctx.ours!;
  const nat = o.native;
  const ncl = bnNcl(s.shape);
  const n = numel(s.shape);
  const c = ncl[1];
  const channels = n <= 4_000_000 ? sampleIndices(c, c, 0) : sampleIndices(c, 3, 17);
  const how = channels.length === c ? `full ${s.label}` : `channels ${channels.join(',')} of ${s.label}`;
  const sets = rotationSets(ctx, n * 4 * 2);
  const x = Array.from({ length: sets }, () => o.storage(d.x));
  const y = Array.from({ length: sets }, () => o.storage(n));
  const gamma = o.storage(d.gamma);
  const beta = o.storage(d.beta);
  const rmean = o.storage(d.rmean);
  const rvar = o.storage(d.rvar);
  const sm = o.storage(c);
  const sml = o.storage(c);
  const si = o.storage(c);
  const bv = o.storage(c);
  const out: Figure[] = [];
  const note = sets > 1 ? `${sets} buffer sets cycled (cold L2)` : undefined;
  try {
    const want = (op: string) => ctx.wanted(op, s.label, 'kernelgrad');
    if (want('bn.train_fwd')) {
      const next = cycler(sets);
      out.push(
        runMeasured(ctx, { case: 'bn.train_fwd', shape: s.label, impl: 'kernelgrad' }, () => ({
          fn: () => {
            const i = next();
            nat.batchNormForwardTrain(ncl, x[i], gamma, beta, EPS, y[i], sm, sml, si, bv, ...NO_UPDATE);
          },
          check: () => {
            nat.batchNormForwardTrain(ncl, x[0], gamma, beta, EPS, y[0], sm, sml, si, bv, ...NO_UPDATE);
            return checkBnTrainFwd(d.x, ncl, d.gamma, d.beta, EPS, channels, y[0].read(), sm.read(), si.read(), bv.read()).result(how);
          },
          metric: gbs(BN_BYTES_PER_ELEM['bn.train_fwd'] * n),
          sync: o.sync,
          note,
        })),
      );
    }
    if (want('bn.infer_fwd')) {
      const next = cycler(sets);
      out.push(
        runMeasured(ctx, { case: 'bn.infer_fwd', shape: s.label, impl: 'kernelgrad' }, () => ({
          fn: () => {
            const i = next();
            nat.batchNormForwardInfer(ncl, x[i], gamma, beta, rmean, rvar, EPS, y[i]);
          },
          check: () => {
            nat.batchNormForwardInfer(ncl, x[0], gamma, beta, rmean, rvar, EPS, y[0]);
            return checkBnInferFwd(d.x, ncl, d.gamma, d.beta, d.rmean, d.rvar, EPS, channels, y[0].read()).result(how);
          },
          metric: gbs(BN_BYTES_PER_ELEM['bn.infer_fwd'] * n),
          sync: o.sync,
          note,
        })),
      );
    }
    if (want('bn.backward')) {
      // y buffers become dx; dy gets its own sets.
      const dy = Array.from({ length: sets }, () => o.storage(d.dy));
      const dg = o.storage(c);
      const db = o.storage(c);
      const next = cycler(sets);
      out.push(
        runMeasured(ctx, { case: 'bn.backward', shape: s.label, impl: 'kernelgrad' }, () => ({
          fn: () => {
            const i = next();
            nat.batchNormBackwardTrain(ncl, x[i], dy[i], gamma, sm, sml, si, y[i], dg, db);
          },
          check: () => {
            nat.batchNormForwardTrain(ncl, x[0], gamma, beta, EPS, y[0], sm, sml, si, bv, ...NO_UPDATE);
            nat.batchNormBackwardTrain(ncl, x[0], dy[0], gamma, sm, sml, si, y[0], dg, db);
            return checkBnBackward(d.x, d.dy, ncl, d.gamma, EPS, channels, y[0].read(), dg.read(), db.read()).result(how);
          },
          metric: gbs(BN_BYTES_PER_ELEM['bn.backward'] * n),
          sync: o.sync,
          note: [note, 'dx, dgamma, dbeta from saved mean/invstd'].filter(Boolean).join('; '),
          dispose: () => disposeAll(dy, dg, db),
        })),
      );
    }
    if (want('bn_relu.train_fwd')) {
      const next = cycler(sets);
      out.push(
        runMeasured(ctx, { case: 'bn_relu.train_fwd', shape: s.label, impl: 'kernelgrad' }, () => ({
          fn: () => {
            const i = next();
            nat.batchNormReluForwardTrain(ncl, x[i], gamma, beta, EPS, y[i], sm, sml, si, bv, ...NO_UPDATE);
          },
          check: () => {
            nat.batchNormReluForwardTrain(ncl, x[0], gamma, beta, EPS, y[0], sm, sml, si, bv, ...NO_UPDATE);
            return checkBnTrainFwd(d.x, ncl, d.gamma, d.beta, EPS, channels, y[0].read(), sm.read(), si.read(), bv.read(), 1e-4, true).result(how);
          },
          metric: gbs(BN_BYTES_PER_ELEM['bn_relu.train_fwd'] * n),
          sync: o.sync,
          note: [note, 'batchNormRelu: one kernel'].filter(Boolean).join('; '),
        })),
      );
    }
    if (want('bn_relu.backward')) {
      // The forward's output per set (the ReLU's mask), and dx buffers of their own.
      for (let i = 0; i < sets; i++) nat.batchNormReluForwardTrain(ncl, x[i], gamma, beta, EPS, y[i], sm, sml, si, bv, ...NO_UPDATE);
      const dy = Array.from({ length: sets }, () => o.storage(d.dy));
      const dx = Array.from({ length: sets }, () => o.storage(n));
      const dg = o.storage(c);
      const db = o.storage(c);
      const next = cycler(sets);
      out.push(
        runMeasured(ctx, { case: 'bn_relu.backward', shape: s.label, impl: 'kernelgrad' }, () => ({
          fn: () => {
            const i = next();
            nat.batchNormReluBackwardTrain(ncl, x[i], y[i], dy[i], gamma, sm, sml, si, dx[i], dg, db);
          },
          check: () => {
            nat.batchNormReluBackwardTrain(ncl, x[0], y[0], dy[0], gamma, sm, sml, si, dx[0], dg, db);
            // Batch norm's backward of dy masked where the output is 0.
            const yv = y[0].read();
            const masked = d.dy.map((g, j) => (yv[j] > 0 ? g : 0));
            return checkBnBackward(d.x, masked, ncl, d.gamma, EPS, channels, dx[0].read(), dg.read(), db.read()).result(how);
          },
          metric: gbs(BN_BYTES_PER_ELEM['bn_relu.backward'] * n),
          sync: o.sync,
          note: [note, 'batchNormRelu backward: one kernel, the mask read from y'].filter(Boolean).join('; '),
          dispose: () => disposeAll(dy, dx, dg, db),
        })),
      );
    }
  } finally {
    o.sync();
    disposeAll(x, y, gamma, beta, rmean, rvar, sm, sml, si, bv);
  }
  return out;
}

async function tfjs(ctx: Ctx, s: BnCase, d: Data): Promise<Figure[]> {
  const out: Figure[] = [];
  for (const b of ctx.tfjsBackends) {
    const impl = TF_IMPL[b];
    if (!TFJS_OPS.some((op) => ctx.wanted(op, s.label, impl))) continue;
    await useBackend(b);
    const shape = nhwc(s.shape);
    const x = tf.tensor(d.x, shape);
    const dy = tf.tensor(d.dy, shape);
    const gamma = tf.tensor1d(d.gamma);
    const beta = tf.tensor1d(d.beta);
    const rmean = tf.tensor1d(d.rmean);
    const rvar = tf.tensor1d(d.rvar);
    const n = numel(s.shape);
    // The large shape: tfjs's cpu backend (plain JS) takes ~20 s for one training forward and
    // over a minute for its gradient; wasm's gradient takes seconds.
    const big = n > 4_000_000;
    const fwd = () => tf.tidy(() => void bnTrain(x, gamma, beta, EPS));
    try {
      if (ctx.wanted('bn.train_fwd', s.label, impl))
        out.push(runMeasured(ctx, { case: 'bn.train_fwd', shape: s.label, impl }, () => ({
          fn: fwd, kind: big && b === 'cpu' ? 'huge' : big ? 'step' : 'kernel', metric: gbs(12 * n), note: 'tutorial-style ops (mean, variance, rsqrt, scale, shift), NHWC',
        })));
      if (ctx.wanted('bn.infer_fwd', s.label, impl))
        out.push(runMeasured(ctx, { case: 'bn.infer_fwd', shape: s.label, impl }, () => ({
          fn: () => tf.tidy(() => void bnInfer(x, gamma, beta, rmean, rvar, EPS)), kind: big ? 'step' : 'kernel', metric: gbs(8 * n), note: 'tf.batchNorm, NHWC',
        })));
      if (ctx.wanted('bn.backward', s.label, impl)) {
        const m = { case: 'bn.backward', shape: s.label, impl };
        if (big && b === 'cpu') out.push(skipped(ctx, m, 'skipped', 'over a minute a call'));
        else if (big && ctx.quick) out.push(skipped(ctx, m, 'skipped', 'seconds a call; run without --quick'));
        else
          out.push(runMeasured(ctx, m, () => ({
            fn: () => tf.tidy(() => void bnTrainGrads(x, gamma, beta, dy, EPS)), baseline: fwd, kind: big || b === 'cpu' ? 'slow' : 'kernel', metric: gbs(20 * n),
            note: 'tf.grads of the training forward',
          })));
      }
    } finally {
      tf.dispose([x, dy, gamma, beta, rmean, rvar]);
    }
  }
  return out;
}

export async function run(ctx: Ctx): Promise<Figure[]> {
  const out: Figure[] = [];
  for (const s of BN_SHAPES) {
    if (!s.devices.includes(ctx.device)) continue;
    if (!OPS.some((op) => ctx.wanted(op, s.label))) continue;
    ctx.log(`batch norm ${s.label}`);
    const d = makeData(s);
    if (ctx.ours) { if (OPS.some((op) => ctx.wanted(op, s.label, 'kernelgrad'))) out.push(...ours(ctx, s, d)); }
    else for (const op of OPS) if (ctx.wanted(op, s.label, 'kernelgrad')) out.push(skipped(ctx, { case: op, shape: s.label, impl: 'kernelgrad' }, 'unavailable', ctx.oursMissing));
    if (ctx.device === 'cpu' && ctx.tfjs) out.push(...(await tfjs(ctx, s, d)));
  }
  return out;
}
