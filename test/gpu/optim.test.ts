// The optimizer kernels on the GPU (adam.cu, sgd.cu's Nesterov flag, norm.cu) against the same
// float64 rules as the CPU tests (test/optim/reference.ts), over several steps on odd sizes and
// on sizes that are not multiples of the float4 width, and against the CPU kernels.
import * as kg from '../../lib';
import { AdamRef, AdamRule, SgdRef, trajectory, Trajectory, worstError } from '../optim/reference';
import { describeGpu, mismatch, normal, sized } from './helpers';

// Odd sizes, a float4 tail of 1-3 elements, and one size that spans many blocks.
const SHAPES = [[1], [3, 5], [17], [2, 3, 7], [sized(100003, 4099)]];

function expectClose(t: Trajectory, rtol: number, atol: number): void {
  t.want.forEach((want, k) => {
    const worst = worstError(t.got[k], want, rtol, atol);
    if (worst > 1) throw new Error(`parameter ${k} (${want.length} values): error ${worst.toFixed(2)} x the tolerance`);
  });
}

describeGpu('GPU optimizers against the float64 rules', () => {
  test.each([
    { decoupled: false, lr: 0.01, weightDecay: 0 },
    { decoupled: false, lr: 0.02, weightDecay: 0.1 },
    { decoupled: true, lr: 0.02, weightDecay: 0.1 },
    { decoupled: true, lr: 0.003, weightDecay: 0.5, betas: [0.5, 0.9] as [number, number], eps: 1e-3 },
  ])('Adam/AdamW, six steps with a changing rate and skipped steps: %o', ({ decoupled, lr, weightDecay, betas, eps }) => {
    const Optim = decoupled ? kg.optim.AdamW : kg.optim.Adam;
    const lrAt = (s: number) => lr * [1, 3, 0, 2, 0.5, 1][s];
    const rule = (s: number): AdamRule => ({ lr: lrAt(s), beta1: betas?.[0] ?? 0.9, beta2: betas?.[1] ?? 0.999, eps: eps ?? 1e-8, weightDecay, decoupled });
    const run = (device: kg.Device) =>
      trajectory({
        shapes: SHAPES,
        steps: 6,
        seed: 31,
        device,
        make: (params) => new Optim(params, { lr, weightDecay, betas, eps }),
        ref: (p) => new AdamRef(p),
        rule,
        lrAt,
        skip: (s, k) => k === 2 && s < 2,
      });
    const cuda = run('cuda');
    expectClose(cuda, 2e-6, 2e-6);
    // And the CPU kernel on the same run: the two agree to float32 rounding.
    const cpu = run('cpu');
    cuda.got.forEach((g, k) => expect(mismatch(g, cpu.got[k], 1e-6, 1e-6)).toBeNull());
  });

  test.each([
    { momentum: 0.9, nesterov: true, weightDecay: 0 },
    { momentum: 0.5, nesterov: true, weightDecay: 0.1 },
    { momentum: 0.9, nesterov: false, weightDecay: 5e-4 },
  ])('SGD, five steps: %o', ({ momentum, nesterov, weightDecay }) => {
    const lrAt = (s: number) => 0.01 * (1 + s);
    const t = trajectory({
      shapes: SHAPES,
      steps: 5,
      seed: 32,
      device: 'cuda',
      make: (params) => new kg.optim.SGD(params, { lr: 0.01, momentum, nesterov, weightDecay }),
      ref: (p) => new SgdRef(p),
      rule: (s) => ({ lr: lrAt(s), momentum, weightDecay, nesterov }),
      lrAt,
    });
    expectClose(t, 1e-6, 1e-6);
  });
});

describeGpu('GPU gradient clipping', () => {
  test('the norm over CUDA gradients matches float64, and clipping scales them to maxNorm', () => {
    const sizes = [1, 7, 1001, sized(300007, 20011)];
    const grads = sizes.map((n, i) => normal(n, 40 + i));
    const ps = sizes.map((n) => kg.zeros([n], { device: 'cuda' }).attachGrad());
    ps.forEach((p, i) => (p.grad = kg.tensor(grads[i], [sizes[i]], { device: 'cuda' })));
    let sum = 0;
    for (const g of grads) for (const x of g) sum += x * x;
    const want = Math.sqrt(sum);
    const got = kg.optim.clipGradNorm(ps, 1);
    expect(Math.abs(got - want) / want).toBeLessThan(1e-6);
    const coef = 1 / (want + 1e-6);
    ps.forEach((p, i) => expect(worstError(p.grad!.toArray(), grads[i].map((g) => g * coef), 1e-6, 0)).toBeLessThanOrEqual(1));
    // Deterministic: the same norm again, bit for bit.
    const again = kg.optim.clipGradNorm(ps, 10);
    expect(kg.optim.clipGradNorm(ps, 10)).toBe(again);
  });

  test('zero gradients give 0 without NaN; a non-finite one is a NonFiniteError; large entries do not overflow', () => {
    const p = kg.zeros([5], { device: 'cuda' }).attachGrad();
    p.grad = kg.zeros([5], { device: 'cuda' });
    expect(kg.optim.clipGradNorm([p], 1)).toBe(0);
    expect(Array.from(p.grad.toArray())).toEqual([0, 0, 0, 0, 0]);
    p.grad = kg.tensor([3e30, 0, -4e30, 0, 0], [5], { device: 'cuda' });
    expect(kg.optim.clipGradNorm([p], 1e40) / 5e30).toBeCloseTo(1, 6);
    p.grad = kg.tensor([1, NaN, 0, 0, 0], [5], { device: 'cuda' });
    expect(() => kg.optim.clipGradNorm([p], 1)).toThrow(kg.NonFiniteError);
  });

  test('gradients on both devices make one norm', () => {
    const a = kg.zeros([3], { device: 'cpu' }).attachGrad();
    const b = kg.zeros([2], { device: 'cuda' }).attachGrad();
    a.grad = kg.tensor([1, 2, 2], [3]);
    b.grad = kg.tensor([4, 0], [2], { device: 'cuda' });
    expect(kg.optim.clipGradNorm([a, b], 100)).toBeCloseTo(Math.sqrt(25), 6);
  });
});
