// Max pooling, dropout, global average pooling, residual blocks and a small ResNet on the GPU
// against the CPU engine. Max pooling and dropout must agree bit for bit: both backends pick the
// same maxima, sum each pixel's gradients in the same (output) order and draw the same mask.
import * as kg from '../../lib';
import { bitwiseEqual, describeGpu, expectSameOnDevices, input, runOn, sized } from './helpers';

const F = kg.nn.functional;

describeGpu('GPU vs CPU: maxPool2d', () => {
  test.each([
    [[2, 3, 8, 8], 2, 2, 0],
    [[1, 2, 9, 7], 2, 2, 0],
    [[2, 2, 11, 10], 3, 2, 1], // the ResNet stem's pooling, odd sizes
    [[1, 3, 7, 9], [3, 2], [1, 2], [1, 1]], // overlapping rows, gaps between columns
    [[1, 1, 5, 6], [2, 3], [3, 1], [0, 1]],
    [[3, 1, 1, 1], 1, 1, 0],
  ] as Array<[number[], number | number[], number | number[], number | number[]]>)('x %j kernel %j stride %j padding %j, bitwise', (xs, k, s, p) => {
    const kernelSize = k as number | [number, number];
    const stride = s as number | [number, number];
    const padding = p as number | [number, number];
    const fn = ([x]: kg.Tensor[]) => F.maxPool2d(x, { kernelSize, stride, padding });
    const cpu = runOn('cpu', [input(xs, 61)], fn);
    const cuda = expectSameOnDevices([input(xs, 61)], fn, 0, 0);
    expect(bitwiseEqual(cuda.out, cpu.out)).toBe(true);
    expect(bitwiseEqual(cuda.grads[0] as Float32Array, cpu.grads[0] as Float32Array)).toBe(true);
  });

  test('ties and NaN: the same first maximum on both devices', () => {
    const values = Float32Array.from({ length: 2 * 6 * 6 }, (_, i) => (i * 7) % 3);
    values[5] = NaN;
    const x = { shape: [1, 2, 6, 6], values };
    const fn = ([t]: kg.Tensor[]) => F.maxPool2d(t, { kernelSize: 3, stride: 1, padding: 1 });
    const cpu = runOn('cpu', [x], fn);
    const cuda = runOn('cuda', [x], fn);
    expect(bitwiseEqual(cuda.out, cpu.out)).toBe(true);
    expect(bitwiseEqual(cuda.grads[0] as Float32Array, cpu.grads[0] as Float32Array)).toBe(true);
  });
});

describeGpu('GPU vs CPU: dropout and global average pooling', () => {
  test.each([[[7, 13]], [[2, 3, 5, 5]], [[sized(100_003, 4099)]]])('dropout on %j: the same mask, bitwise', (shape) => {
    for (const [p, seed] of [[0.5, 1], [0.2, 2 ** 53 - 1]]) {
      const fn = ([x]: kg.Tensor[]) => F.dropout(x, { p, seed });
      const cpu = runOn('cpu', [input(shape, 71)], fn);
      const cuda = runOn('cuda', [input(shape, 71)], fn);
      expect(bitwiseEqual(cuda.out, cpu.out)).toBe(true);
      expect(bitwiseEqual(cuda.grads[0] as Float32Array, cpu.grads[0] as Float32Array)).toBe(true);
    }
  });

  test.each([[[2, 3, 5, 7]], [[4, 8, 8, 8]], [[1, 1, 1, 1]]])('adaptiveAvgPool2d(1) on %j', (shape) => {
    expectSameOnDevices([input(shape, 81)], ([x]) => F.adaptiveAvgPool2d(x));
  });
});

describeGpu('GPU vs CPU: residual blocks and a ResNet-8', () => {
  test('a residual block with a strided shortcut', () => {
    const make = (device: kg.Device) =>
      new kg.nn.Residual(
        new kg.nn.Sequential(new kg.nn.Conv2d(3, 4, 3, { stride: 2, padding: 1, seed: 1, device }), new kg.nn.ReLU()),
        new kg.nn.Conv2d(3, 4, 1, { stride: 2, seed: 2, device }),
      );
    const cpuBlock = make('cpu');
    const cudaBlock = make('cuda');
    const x = input([2, 3, 7, 7], 91);
    const cpu = runOn('cpu', [x], ([t]) => cpuBlock.forward(t));
    const cuda = expectSameOnDevices([x], ([t]) => (t.device === 'cpu' ? cpuBlock : cudaBlock).forward(t));
    expect(cuda.out.length).toBe(cpu.out.length);
  });

  test('a depthwise-separable block: depthwise Conv2d (groups = channels), then a 1x1 Conv2d', () => {
    const make = (device: kg.Device) =>
      new kg.nn.Sequential(
        new kg.nn.Conv2d(6, 12, 3, { groups: 6, padding: 1, seed: 4, device }),
        new kg.nn.ReLU(),
        new kg.nn.Conv2d(12, 5, 1, { seed: 5, device }),
      );
    const cpuBlock = make('cpu');
    const cudaBlock = make('cuda');
    expectSameOnDevices([input([3, 6, 9, 7], 93)], ([t]) => (t.device === 'cpu' ? cpuBlock : cudaBlock).forward(t));
  });

  test('resnet({ depth: 8, width: 4 }): logits and input gradient', () => {
    const cpuNet = kg.models.resnet({ depth: 8, width: 4, device: 'cpu', seed: 3 });
    const cudaNet = kg.models.resnet({ depth: 8, width: 4, device: 'cuda', seed: 3 });
    expectSameOnDevices([input([2, 3, 8, 8], 92)], ([t]) => (t.device === 'cpu' ? cpuNet : cudaNet).forward(t), 1e-4, 1e-3);
  });
});
