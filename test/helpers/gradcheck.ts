// Checks an op against its float64 reference: the forward values directly, and the gradients that
// autograd computes against central differences of the reference (in float64, so the numerical
// gradient is accurate to ~1e-9 and any error is ours).
import * as kg from '../../lib';
import { Random } from '../../lib/random';

export interface InputSpec {
  shape: number[];
  /** Fixed values (e.g. labels); random N(0, 1) when absent. */
  values?: Float32Array;
  /** Whether to check this input's gradient (default true). */
  grad?: boolean;
}

export interface OpCase {
  inputs: InputSpec[];
  ours: (xs: kg.Tensor[]) => kg.Tensor;
  ref: (xs: Float64Array[]) => Float64Array;
  /** Relative tolerance of the forward check (default 1e-5) and of the gradient check (1e-4). */
  forwardRtol?: number;
  gradRtol?: number;
  seed?: number;
  /** Where the inputs live and the op runs (default 'cpu'); the references always run in float64 here. */
  device?: kg.Device;
}

export function closeTo(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol: number, atol: number): string | null {
  if (actual.length !== expected.length) return `length ${actual.length} != ${expected.length}`;
  const bad: string[] = [];
  let count = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (!(Math.abs(a - e) <= atol + rtol * Math.abs(e))) {
      count++;
      if (bad.length < 5) bad.push(`[${i}] got ${a}, expected ${e}`);
    }
  }
  return count === 0 ? null : `${count} of ${actual.length} mismatch: ${bad.join('; ')}`;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

function dot(a: Float64Array, w: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * w[i];
  return s;
}

/** Runs the forward and gradient checks; throws with the first mismatches. */
export function checkOp(c: OpCase): void {
  const rng = new Random(c.seed ?? 1234);
  const values = c.inputs.map((s) => s.values ?? rng.fillNormal(new Float32Array(s.shape.reduce((a, b) => a * b, 1))));
  const tensors = c.inputs.map((s, i) => {
    const t = kg.tensor(values[i], s.shape, { device: c.device ?? 'cpu' });
    return s.grad === false ? t : t.attachGrad();
  });
  const x64 = values.map((v) => Float64Array.from(v));

  const out = kg.autograd.record(() => c.ours(tensors));
  const expected = c.ref(x64);
  const fwd = closeTo(out.toArray(), expected, c.forwardRtol ?? 1e-5, 1e-6 * Math.max(1, maxAbs(expected)));
  if (fwd) throw new Error(`forward: ${fwd}`);

  const head = rng.fillNormal(new Float32Array(out.numel));
  out.backward(kg.tensor(head, out.shape, { device: c.device ?? 'cpu' }));
  const w = Float64Array.from(head);

  c.inputs.forEach((spec, i) => {
    if (spec.grad === false) return;
    const x = x64[i];
    const numeric = new Float64Array(x.length);
    for (let j = 0; j < x.length; j++) {
      const saved = x[j];
      const h = 1e-6 * Math.max(1, Math.abs(saved));
      x[j] = saved + h;
      const up = dot(c.ref(x64), w);
      x[j] = saved - h;
      const down = dot(c.ref(x64), w);
      x[j] = saved;
      numeric[j] = (up - down) / (2 * h);
    }
    const grad = tensors[i].grad;
    if (!grad) throw new Error(`input ${i}: no gradient was computed`);
    const bad = closeTo(grad.toArray(), numeric, c.gradRtol ?? 1e-4, 2e-5 * Math.max(1, maxAbs(numeric)));
    if (bad) throw new Error(`gradient of input ${i} ${JSON.stringify(spec.shape)}: ${bad}`);
  });
}
