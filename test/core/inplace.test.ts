// In-place writes: every one bumps the version of the memory it writes, so backward refuses to use
// values it saved that were overwritten since, and checks cached on a version (labels) are redone.
import * as kg from '../../lib';

const F = kg.nn.functional;
const { record } = kg.autograd;

describe('versions', () => {
  test('copy_, an SGD step, running statistics and gradient accumulation each bump the version', () => {
    const w = kg.tensor([1, 2, 3]).attachGrad();
    const view = w.reshape([3, 1]);
    let v = w.version;
    w.copy_(kg.tensor([4, 5, 6]));
    expect(w.version).toBe(++v);
    expect(view.version).toBe(v); // a reshape shares the memory and its version

    record(() => w.mul(w).sum()).backward();
    const g = w.grad!;
    const gv = g.version;
    record(() => w.mul(w).sum()).backward(); // accumulates into the same grad tensor
    expect(w.grad).toBe(g);
    expect(g.version).toBeGreaterThan(gv);

    new kg.optim.SGD([w], { lr: 0.1 }).step();
    expect(w.version).toBeGreaterThan(v);

    const mean = kg.zeros([2]);
    const variance = kg.ones([2]);
    const [mv, vv] = [mean.version, variance.version];
    F.batchNorm(kg.randn([4, 2], { seed: 1 }), kg.ones([2]), kg.zeros([2]), { training: true, runningMean: mean, runningVar: variance });
    expect(mean.version).toBe(mv + 1);
    expect(variance.version).toBe(vv + 1);
  });

  test('inference reads the running statistics without bumping them', () => {
    const mean = kg.zeros([2]);
    const variance = kg.ones([2]);
    F.batchNorm(kg.randn([4, 2], { seed: 1 }), kg.ones([2]), kg.zeros([2]), { training: false, runningMean: mean, runningVar: variance });
    expect([mean.version, variance.version]).toEqual([0, 0]);
  });
});

describe('backward after an in-place write', () => {
  test('a tensor saved by mul and overwritten by copy_ throws instead of giving the old gradient', () => {
    const w = kg.tensor([1, 2, 3]).attachGrad();
    const y = record(() => w.mul(w).sum());
    w.copy_(kg.tensor([10, 20, 30]));
    expect(() => y.backward()).toThrow(
      'backward: one of the tensors needed by mul for its gradient, [3], was modified in place after it was used (version 1, expected 0)',
    );
    expect(w.grad).toBeNull(); // nothing was accumulated
  });

  test('a write through a reshape of a saved tensor is seen too', () => {
    const w = kg.tensor([1, 2, 3, 4], [2, 2]).attachGrad();
    const x = kg.tensor([1, 0, 0, 1], [2, 2]);
    const y = record(() => kg.matmul(x, w).sum());
    x.reshape([4]).copy_(kg.tensor([5, 6, 7, 8]));
    expect(() => y.backward()).toThrow(/tensors needed by matmul for its gradient, \[2, 2\], was modified in place/);
  });

  test('an SGD step between forward and backward throws, naming the op', () => {
    const w = kg.randn([3, 2], { seed: 2 }).attachGrad();
    const x = kg.randn([4, 2], { seed: 3 }).attachGrad();
    w.grad = kg.ones([3, 2]).keep();
    const y = record(() => F.linear(x, w).sum());
    new kg.optim.SGD([w], { lr: 0.1 }).step();
    expect(() => y.backward()).toThrow(/needed by linear for its gradient, \[3, 2\], was modified in place after it was used \(version 1, expected 0\)/);
  });

  test('the rules that read no values are not affected', () => {
    const w = kg.tensor([1, 2]).attachGrad();
    const c = kg.tensor([3, 4]);
    const y = record(() => w.add(c).mul(2).sum());
    c.copy_(kg.tensor([0, 0])); // add only needs shapes; mul by a number reads only the scalar it made
    y.backward();
    expect(Array.from(w.grad!.toArray())).toEqual([2, 2]);
  });

  test("only what a needed gradient reads counts: mul's constant operand, not the parameter", () => {
    const w = kg.tensor([1, 2]).attachGrad();
    const c = kg.tensor([3, 4]);
    const y = record(() => w.mul(c).sum());
    w.copy_(kg.tensor([7, 7])); // dy/dw = c does not read w
    y.backward();
    expect(Array.from(w.grad!.toArray())).toEqual([3, 4]);
    const z = record(() => w.mul(c).sum());
    c.copy_(kg.tensor([0, 0]));
    expect(() => z.backward()).toThrow(/needed by mul for its gradient, \[2\]/);
  });

  test('labels overwritten between the loss and backward throw', () => {
    const logits = kg.randn([2, 3], { seed: 4 }).attachGrad();
    const labels = kg.tensor([0, 2]);
    const loss = record(() => F.softmaxCrossEntropy(logits, labels, { reduction: 'sum' }));
    labels.copy_(kg.tensor([1, 1]));
    expect(() => loss.backward()).toThrow(/needed by softmaxCrossEntropy for its gradient, \[2\]/);
  });

  test('a disposed saved tensor is named, not a bare disposal error', () => {
    const w = kg.tensor([1, 2]).attachGrad();
    const x = kg.tensor([3, 4]);
    const y = record(() => w.mul(x).sum());
    x.dispose();
    expect(() => y.backward()).toThrow(/tensors needed by mul for its gradient, \[2\], was disposed before backward\(\)/);
  });

  test('copy_ into a recorded result cuts it from the history it no longer has', () => {
    const w = kg.tensor([1, 2]).attachGrad();
    const h = record(() => w.mul(3));
    h.copy_(kg.tensor([5, 5]));
    expect(h.tracksGrad).toBe(false);
    expect(() => record(() => h.sum()).backward()).toThrow(/does not depend on any tensor/);
  });
});

describe('a freed graph', () => {
  test('backward twice, or through a node an earlier backward freed, says so', () => {
    const w = kg.tensor([1, 2]).attachGrad();
    const h = record(() => w.mul(w));
    const a = record(() => h.sum());
    const b = record(() => h.mean());
    a.backward();
    expect(() => a.backward()).toThrow(
      'backward: the graph through sum was freed by an earlier backward(); pass { retainGraph: true } to the first backward() to run backward through it again',
    );
    expect(() => b.backward()).toThrow(/the graph through mul was freed by an earlier backward\(\); pass \{ retainGraph: true \}/);
    expect(Array.from(w.grad!.toArray())).toEqual([2, 4]); // the failed passes added nothing
  });
});

describe('label checks follow every in-place write', () => {
  test("labels used as batch norm's running mean are checked again", () => {
    const y = kg.tensor([0, 1]);
    const z = kg.zeros([2, 3]);
    expect(F.softmaxCrossEntropy(z, y).shape).toEqual([2]);
    const x = kg.tensor([0, 5, 10, 15], [2, 2]); // per-channel means 5 and 10
    F.batchNorm(x, kg.ones([2]), kg.zeros([2]), { training: true, runningMean: y, runningVar: kg.ones([2]) });
    const [m0, m1] = y.toArray();
    expect(m0).toBeCloseTo(0.5, 6);
    expect(m1).toBeCloseTo(1.9, 6);
    expect(() => F.softmaxCrossEntropy(z, y)).toThrow(/label 0 is 0\.5/);
  });

  test('labels changed by an SGD step are checked again', () => {
    const y = kg.tensor([1, 2]).attachGrad();
    const z = kg.zeros([2, 3]);
    F.softmaxCrossEntropy(z, y);
    y.grad = kg.tensor([-10, 0]).keep();
    new kg.optim.SGD([y], { lr: 1 }).step();
    expect(() => F.softmaxCrossEntropy(z, y)).toThrow(/label 0 is 11, expected an integer class index in \[0, 3\)/);
  });

  test("a loader's trusted labels lose that trust when written in place", () => {
    const dataset = { inputs: new Float32Array(2 * 2), labels: Float32Array.from([0, 1]), count: 2, sampleShape: [2] };
    const [batch] = [...new kg.data.DataLoader(dataset, { batchSize: 2, device: 'cpu' }).batches(0)];
    const z = kg.zeros([2, 3]);
    expect(F.softmaxCrossEntropy(z, batch.y).shape).toEqual([2]);
    F.batchNorm(kg.tensor([0, 50, 0, 70], [2, 2]), kg.ones([2]), kg.zeros([2]), {
      training: true, runningMean: batch.y, runningVar: kg.ones([2]),
    });
    expect(() => F.softmaxCrossEntropy(z, batch.y)).toThrow(/label 1 is 6\.9/);
  });
});
