// The bandwidth ceiling: a large copy through our `copy` kernel (device-to-device on the GPU, a
// memcpy-like copy on the CPU), GB/s counting bytes read plus bytes written.
import type { Figure } from '../lib/schema';
import { Ctx, gbs, runMeasured, skipped } from '../lib/context';
import { COPY_ELEMS, copyLabel } from '../lib/shapes';
import { uniform } from '../lib/rng';
import { Checker, sampleIndices } from '../reference/plain';
import { disposeAll } from '../lib/ours';

export async function run(ctx: Ctx): Promise<Figure[]> {
  const label = copyLabel(ctx.device);
  if (!ctx.wanted('ceiling.copy', label, 'kernelgrad')) return [];
  ctx.log(`copy ${label}`);
  if (!ctx.ours) return [skipped(ctx, { case: 'ceiling.copy', shape: label, impl: 'kernelgrad' }, 'unavailable', ctx.oursMissing)];
  const o = ctx.ours;
  const n = COPY_ELEMS[ctx.device];
  // One random block repeated: filling 256M floats from JS would take longer than the copies.
  const block = uniform(1 << 20, 61);
  const x = o.storage(n);
  const y = o.storage(n);
  try {
    const host = new Float32Array(n);
    for (let i = 0; i < n; i += block.length) host.set(block, i);
    x.write(host);
    const f = runMeasured(ctx, { case: 'ceiling.copy', shape: label, impl: 'kernelgrad' }, () => ({
      fn: () => o.native.copy(x, y),
      check: () => {
        o.native.copy(x, y);
        const got = y.read();
        const ck = new Checker(0);
        for (const i of sampleIndices(n, 100000, 62)) ck.add(got[i], host[i], 1, () => `y[${i}]`);
        return ck.result('100000 sampled elements, exact');
      },
      metric: gbs(8 * n),
      sync: o.sync,
      kind: 'step',
      note: `${(4 * n) / (1 << 20)} MiB read + written`,
    }));
    if (f.status === 'ok') ctx.ceilings.copyGBs = f.metric!.value;
    return [f];
  } finally {
    o.sync();
    disposeAll(x, y);
  }
}
