// kg.models.resnet: structure (names, shapes and parameter count from the paper's recipe), the
// forward shape on several image sizes, option checks, and that it learns.
import * as kg from '../../lib';
import { SGD } from '../../lib/optim/sgd';
import { trainStep } from '../../lib/train/loop';

/** Parameters of the recipe, counted independently of the model: convs, BNs, shortcuts, head. */
function expectedParams(depth: number, w: number, classes: number, cin: number): number {
  const n = (depth - 2) / 6;
  const conv = (a: number, b: number, k: number) => a * b * k * k;
  const bn = (c: number) => 2 * c;
  let total = conv(cin, w, 3) + bn(w);
  let c = w;
  for (const width of [w, 2 * w, 4 * w]) {
    for (let i = 0; i < n; i++) {
      total += conv(c, width, 3) + bn(width) + conv(width, width, 3) + bn(width);
      if (c !== width) total += conv(c, width, 1) + bn(width);
      c = width;
    }
  }
  return total + 4 * w * classes + classes;
}

describe('kg.models.resnet', () => {
  test('ResNet-20 (width 16): the paper’s structure and parameter count', () => {
    const model = kg.models.resnet({ device: 'cpu' });
    expect(model.numParameters()).toBe(expectedParams(20, 16, 10, 3));
    const names = model.children().map(([n]) => n);
    expect(names).toEqual(['stem', 'stage1', 'stage2', 'stage3', 'pool', 'flatten', 'fc']);
    const sd = model.stateDict();
    expect(sd['stem.conv.weight'].shape).toEqual([16, 3, 3, 3]);
    expect(sd['stage1.2.residual.body.conv2.weight'].shape).toEqual([16, 16, 3, 3]);
    expect(sd['stage2.0.residual.shortcut.conv.weight'].shape).toEqual([32, 16, 1, 1]);
    expect(sd['stage3.0.residual.body.conv1.weight'].shape).toEqual([64, 32, 3, 3]);
    expect(sd['stage1.0.residual.shortcut.conv.weight']).toBeUndefined(); // identity where shapes agree
    expect(sd['fc.weight'].shape).toEqual([10, 64]);
    expect(sd['stem.conv.bias']).toBeUndefined(); // batch norm follows every convolution
  });

  test('He initialization: conv weights have std sqrt(2 / fanOut); the same seed gives the same model', () => {
    const a = kg.models.resnet({ depth: 8, width: 8, device: 'cpu', seed: 4 });
    const w = a.stateDict()['stage3.0.residual.body.conv2.weight'].toArray(); // 32 * 32 * 9 values
    const std = Math.sqrt(w.reduce((s, v) => s + v * v, 0) / w.length);
    expect(Math.abs(std / Math.sqrt(2 / (32 * 9)) - 1)).toBeLessThan(0.05);
    const b = kg.models.resnet({ depth: 8, width: 8, device: 'cpu', seed: 4 });
    const c = kg.models.resnet({ depth: 8, width: 8, device: 'cpu', seed: 5 });
    expect(Array.from(b.stateDict()['fc.weight'].toArray())).toEqual(Array.from(a.stateDict()['fc.weight'].toArray()));
    expect(Array.from(c.stateDict()['stem.conv.weight'].toArray())).not.toEqual(Array.from(a.stateDict()['stem.conv.weight'].toArray()));
  });

  test.each([[[2, 3, 32, 32], 8], [[3, 1, 28, 28], 8], [[2, 3, 5, 7], 14]])('input %j, depth %i: logits (n, classes)', (shape, depth) => {
    const model = kg.models.resnet({ depth, width: 4, classes: 7, inChannels: shape[1], device: 'cpu' });
    expect(model.numParameters()).toBe(expectedParams(depth, 4, 7, shape[1]));
    const y = kg.tidy(() => model.forward(kg.randn(shape)));
    expect(y.shape).toEqual([shape[0], 7]);
    expect(y.toArray().every(Number.isFinite)).toBe(true);
  });

  test('bad options name the function', () => {
    expect(() => kg.models.resnet({ depth: 10 })).toThrow(/kg\.models\.resnet: depth must be 6n \+ 2 for n >= 1 \(8, 14, 20, 32, \.\.\.\), got 10/);
    expect(() => kg.models.resnet({ depth: 2 })).toThrow(/depth must be 6n \+ 2/);
    expect(() => kg.models.resnet({ width: 0 })).toThrow(/width must be a positive integer/);
    expect(() => kg.models.resnet({ layers: 3 } as never)).toThrow(/unknown option 'layers'/);
    expect(() => kg.models.resnet({ seed: 'a' } as never)).toThrow(/seed must be an integer/);
  });

  test('learns: the loss on a fixed batch falls by more than half in 30 steps', () => {
    const model = kg.models.resnet({ depth: 8, width: 4, device: 'cpu', seed: 2 });
    const x = kg.randn([16, 3, 8, 8], { seed: 9 }).keep();
    const y = kg.tensor(Float32Array.from({ length: 16 }, (_, i) => i % 4), [16]).keep();
    const opt = new SGD(model.parameters(), { lr: 0.05, momentum: 0.9 });
    const first = trainStep(model, opt, x, y, 'mean').meanLoss;
    let last = first;
    for (let i = 0; i < 30; i++) last = trainStep(model, opt, x, y, 'mean').meanLoss;
    expect(last).toBeLessThan(first / 2);
  });
});
