import * as kg from '../../lib/index';
import { ReLU } from '../../lib/nn/activation';
import { BatchNorm } from '../../lib/nn/batchnorm';
import { Conv2d } from '../../lib/nn/conv2d';
import { Flatten } from '../../lib/nn/flatten';
import { Linear } from '../../lib/nn/linear';
import { Module } from '../../lib/nn/module';
import { AvgPool2d } from '../../lib/nn/pooling';
import { Sequential } from '../../lib/nn/sequential';
import { Tensor } from '../../lib/tensor';

class Scale extends Module {
  loaded = 0;
  constructor(n: number) {
    super();
    this.registerParameter('weight', kg.ones([n]));
    this.registerBuffer('count', kg.zeros([1]));
  }
  get weight(): Tensor {
    return this.param('weight');
  }
  forward(x: Tensor): Tensor {
    return x.mul(this.weight);
  }
  protected override afterLoadStateDict(): void {
    this.loaded++;
  }
}

describe('Module', () => {
  test('dotted names, parameters, buffers and children', () => {
    const inner = new Sequential(new Scale(2), new ReLU());
    const net = new Sequential({ first: new Scale(3), inner });
    expect(net.namedParameters().map(([n]) => n)).toEqual(['first.weight', 'inner.0.weight']);
    expect(net.namedBuffers().map(([n]) => n)).toEqual(['first.count', 'inner.0.count']);
    expect(Object.keys(net.stateDict())).toEqual(['first.weight', 'first.count', 'inner.0.weight', 'inner.0.count']);
    expect(net.children().map(([n]) => n)).toEqual(['first', 'inner']);
    expect(net.parameters().every((p) => p.requiresGrad)).toBe(true);
    expect(net.namedBuffers().every(([, b]) => !b.requiresGrad)).toBe(true);
    expect(net.numParameters()).toBe(5);
    expect(net.length).toBe(2);
    expect(net.at('inner')).toBe(inner);
  });

  test('train() and eval() are recursive and chainable', () => {
    const net = new Sequential(new Scale(1), new Sequential(new ReLU()));
    expect(net.training).toBe(true);
    expect(net.eval()).toBe(net);
    expect(net.namedModules().every(([, m]) => !m.training)).toBe(true);
    net.train();
    expect(net.namedModules().every(([, m]) => m.training)).toBe(true);
  });

  test('loadStateDict copies in place and calls the hook on every module', () => {
    const a = new Sequential(new Scale(2), new Scale(2));
    const w = a.parameters()[0];
    a.loadStateDict({
      '0.weight': kg.tensor([5, 6], [2]),
      '0.count': kg.tensor([1], [1]),
      '1.weight': kg.tensor([7, 8], [2]),
      '1.count': kg.tensor([2], [1]),
    });
    expect(a.parameters()[0]).toBe(w); // same tensor, new values
    expect(Array.from(w.toArray())).toEqual([5, 6]);
    expect((a.at(1) as Scale).loaded).toBe(1);
  });

  test('loadStateDict names missing, unexpected and mis-shaped keys and writes nothing', () => {
    const a = new Sequential(new Scale(2));
    expect(() => a.loadStateDict({ '0.weight': kg.tensor([1, 2], [2]) })).toThrow(/missing keys: 0\.count/);
    expect(() =>
      a.loadStateDict({ '0.weight': kg.tensor([1, 2], [2]), '0.count': kg.zeros([1]), 'x.y': kg.zeros([1]) }),
    ).toThrow(/unexpected keys: x\.y/);
    expect(() => a.loadStateDict({ '0.weight': kg.tensor([1, 2, 3], [3]), '0.count': kg.zeros([1]) })).toThrow(
      /shape mismatch for 0\.weight: expected \[2\], got \[3\]/,
    );
    expect(Array.from(a.parameters()[0].toArray())).toEqual([1, 1]);
  });

  test('names cannot clash across kinds or contain dots', () => {
    class Bad extends Module {
      constructor(kind: number) {
        super();
        this.registerParameter('w', kg.ones([1]));
        if (kind === 0) this.registerBuffer('w', kg.ones([1]));
        else this.registerParameter('a.b', kg.ones([1]));
      }
      forward(x: Tensor): Tensor {
        return x;
      }
    }
    expect(() => new Bad(0)).toThrow(/'w' is already registered as a parameter/);
    expect(() => new Bad(1)).toThrow(/invalid parameter name 'a\.b'/);
  });

  test("to('cpu') on a cpu model keeps the tensors", () => {
    const m = new Linear(3, 2);
    const w = m.weight;
    m.to('cpu');
    expect(m.weight).toBe(w);
  });
});

describe('layers', () => {
  test('Linear: PyTorch layout, y = x Wᵀ + b', () => {
    const m = new Linear(3, 2, { seed: 3 });
    expect(m.weight.shape).toEqual([2, 3]);
    expect(m.bias!.shape).toEqual([2]);
    const w = m.weight.toArray();
    const b = m.bias!.toArray();
    const x = kg.tensor([1, 2, 3, -1, 0, 0.5], [2, 3]);
    const y = m.forward(x).toArray();
    const xs = x.toArray();
    for (let i = 0; i < 2; i++) {
      for (let o = 0; o < 2; o++) {
        let s = b[o];
        for (let k = 0; k < 3; k++) s += xs[i * 3 + k] * w[o * 3 + k];
        expect(y[i * 2 + o]).toBeCloseTo(s, 5);
      }
    }
    const bound = 1 / Math.sqrt(3);
    expect(Array.from(w).every((v) => Math.abs(v) <= bound)).toBe(true);
    expect(new Linear(3, 2, { bias: false }).bias).toBeNull();
  });

  test('Conv2d: weight (out, in, kh, kw), output shape, stride and padding', () => {
    const c = new Conv2d(2, 4, 3, { seed: 1 });
    expect(c.weight.shape).toEqual([4, 2, 3, 3]);
    expect(c.bias!.shape).toEqual([4]);
    expect(c.forward(kg.zeros([5, 2, 8, 8])).shape).toEqual([5, 4, 6, 6]);
    const s = new Conv2d(2, 4, [3, 3], { stride: 2, padding: 1, bias: false });
    expect(s.bias).toBeNull();
    expect(s.forward(kg.zeros([1, 2, 8, 8])).shape).toEqual([1, 4, 4, 4]);
    // A 1x1 convolution with weight 2 and bias 1 maps v to 2v + 1.
    const one = new Conv2d(1, 1, 1);
    one.loadStateDict({ weight: kg.tensor([2], [1, 1, 1, 1]), bias: kg.tensor([1], [1]) });
    expect(Array.from(one.forward(kg.tensor([1, 2, 3, 4], [1, 1, 2, 2])).toArray())).toEqual([3, 5, 7, 9]);
  });

  test('Conv2d with groups: weight (out, in / groups, kh, kw), fan-in per group, each group its own channels', () => {
    const c = new Conv2d(6, 4, 3, { groups: 2, seed: 3 });
    expect(c.weight.shape).toEqual([4, 3, 3, 3]);
    expect(c.groups).toBe(2);
    expect(String(c)).toBe('Conv2d(6, 4, kernelSize=[3, 3], groups=2)');
    expect(String(new Conv2d(6, 4, 3))).toBe('Conv2d(6, 4, kernelSize=[3, 3])');
    // PyTorch's init: U(-1/sqrt(fanIn), 1/sqrt(fanIn)), fanIn = 3 * 3 * 3 here, and it is used.
    const bound = 1 / Math.sqrt(27);
    const w = Array.from(c.weight.toArray());
    expect(w.every((v) => Math.abs(v) <= bound)).toBe(true);
    expect(Math.max(...w.map(Math.abs))).toBeGreaterThan(bound / 2);
    // Depthwise 1x1 with weights 1..3: each channel scaled by its own weight, no mixing.
    const dw = new Conv2d(3, 3, 1, { groups: 3, bias: false });
    expect(dw.weight.shape).toEqual([3, 1, 1, 1]);
    dw.loadStateDict({ weight: kg.tensor([1, 2, 3], [3, 1, 1, 1]) });
    expect(Array.from(dw.forward(kg.tensor([1, 1, 1, 1, 1, 1], [1, 3, 1, 2])).toArray())).toEqual([1, 1, 2, 2, 3, 3]);
    // Bad groups are RangeErrors naming the layer and both channel counts.
    expect(() => new Conv2d(2, 2, 3, { groups: 0 })).toThrow(/^kg\.nn\.Conv2d: groups must be a positive integer, got 0/);
    expect(() => new Conv2d(3, 4, 3, { groups: 2 })).toThrow(/^kg\.nn\.Conv2d: groups \(2\) must divide inChannels \(3\) and outChannels \(4\)/);
    expect(() => new Conv2d(4, 3, 3, { groups: 2 })).toThrow(RangeError);
  });

  test('AvgPool2d, ReLU, Flatten', () => {
    const x = kg.tensor([1, 2, 3, 4, -1, -2, -3, -4], [1, 2, 2, 2]);
    expect(Array.from(new AvgPool2d(2, 2).forward(x).toArray())).toEqual([2.5, -2.5]);
    expect(Array.from(new ReLU().forward(x).toArray())).toEqual([1, 2, 3, 4, 0, 0, 0, 0]);
    expect(new Flatten().forward(x).shape).toEqual([1, 8]);
  });

  test('Sequential chains the modules and BatchNorm plugs in', () => {
    const net = new Sequential(new Linear(4, 3, { seed: 1 }), new BatchNorm(3), new ReLU());
    expect(Object.keys(net.stateDict())).toEqual(['0.weight', '0.bias', '1.gamma', '1.beta', '1.runningMean', '1.runningVar', '1.numBatchesTracked']);
    const y = net.forward(kg.randn([8, 4], { seed: 2 }));
    expect(y.shape).toEqual([8, 3]);
    expect(Array.from(y.toArray()).every((v) => v >= 0)).toBe(true);
  });
});
