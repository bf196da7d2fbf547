// kg.train.compileStep on the CPU: no graph, the eager step, with the loss returned a step late as
// on CUDA (so a loop reads it the same way on both); its argument checks; kg.cuda.counters()
// without a GPU.
import * as kg from '../../lib';
import { Random } from '../../lib/random';

function batch(seed: number, n = 6): { x: kg.Tensor; y: Int32Array } {
  const r = new Random(seed);
  const x = kg.tensor(r.fillNormal(new Float32Array(n * 28 * 28)), [n, 1, 28, 28]);
  return { x, y: Int32Array.from({ length: n }, (_, i) => (i * 3 + seed) % 10) };
}

function setup() {
  const model = kg.models.bnCnn({ device: 'cpu', seed: 3, hidden: 16 });
  const optimizer = new kg.optim.SGD(model.parameters(), { lr: 0.02, momentum: 0.9 });
  model.train();
  return { model, optimizer };
}

test('on the CPU a compiled step is the eager step, its loss returned by the next call', () => {
  const eager = setup();
  const compiled = setup();
  const step = kg.train.compileStep({ model: compiled.model, optimizer: compiled.optimizer });
  expect(step.mode).toBe('cpu');
  const want: number[] = [];
  const got: Array<number | null> = [];
  for (let s = 0; s < 3; s++) {
    const { x, y } = batch(s);
    want.push(kg.train.trainStep(eager.model, eager.optimizer, x, y).meanLoss * x.shape[0]);
    got.push(step(x, y));
    x.dispose();
  }
  got.push(step.flush());
  expect(got[0]).toBeNull();
  expect(got.slice(1)).toEqual(want);
  expect(step.flush()).toBeNull();
  const params = (m: kg.nn.Module) => m.parameters().map((p) => Array.from(p.toArray()));
  expect(params(compiled.model)).toEqual(params(eager.model));
  step.dispose();
});

test('compileStep names what is wrong with its arguments', () => {
  const { model, optimizer } = setup();
  expect(() => kg.train.compileStep(undefined as never)).toThrow(/kg.train.compileStep: options \{ model, optimizer \} are required/);
  expect(() => kg.train.compileStep({ model: {} as never, optimizer })).toThrow(TypeError);
  expect(() => kg.train.compileStep({ model, optimizer: {} as never })).toThrow(/optimizer must be a kg.optim optimizer/);
  expect(() => kg.train.compileStep({ model, optimizer, graph: 1 as never })).toThrow(/graph must be true or false/);
  expect(() => kg.train.compileStep({ model, optimizer, extra: 1 } as never)).toThrow(/extra/);
  const step = kg.train.compileStep({ model, optimizer, loss: () => kg.zeros([2]) });
  const { x, y } = batch(0);
  expect(() => step(x, y)).toThrow(/loss must return a one-element tensor, got shape \[2\]/);
  expect(() => step(kg.zeros([]), y)).toThrow(/x needs a batch dimension/);
  step.dispose();
  expect(() => step(x, y)).toThrow(/the step was disposed/);
});

test('kg.cuda.counters() has every count, as numbers that never decrease', () => {
  const a = kg.cuda.counters();
  kg.add(kg.ones([3]), kg.ones([3]));
  const b = kg.cuda.counters();
  for (const k of ['kernelLaunches', 'graphReplays', 'graphKernels', 'hostSyncs', 'eventWaits'] as const) {
    expect(typeof b[k]).toBe('number');
    expect(b[k]).toBeGreaterThanOrEqual(a[k]);
  }
});
