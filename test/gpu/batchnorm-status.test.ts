// The status words of batch norm's training forward kernels (kg/batchnorm_update.h), the check of
// the batch statistics that a training step reads a step late: for random channel counts in both
// layouts, with failures of the reachable kinds in random channels, CUDA writes the rule's kind
// for every channel into its range of a larger buffer (the words around it untouched), as the CPU
// does, and the failing channels keep their running statistics while the others move. (Kind 3, an
// invstd that is not > 0, needs a variance beyond double and cannot be reached from float data.)
import { DeviceCode, native, Storage } from '../../lib/native';
import { Random } from '../../lib/random';
import { describeGpu } from './helpers';

function storage(device: DeviceCode, values: ArrayLike<number>): Storage {
  const s = new native.Storage(device, values.length);
  s.write(Float32Array.from(values));
  return s;
}

type Channel = 'plain' | 'nan' | 'infinite' | 'constant' | 'huge';

/** The kind the rule gives a channel of that content. */
function kindOf(channel: Channel, eps: number, tracked: boolean): number {
  if (channel === 'nan' || channel === 'infinite') return 1;
  if (channel === 'constant') return eps === 0 ? 2 : 0;
  if (channel === 'huge') return tracked ? 4 : 0; // a variance near 1e76: beyond float, normalizable
  return 0;
}

/** x (n, c, l) with each channel's content as drawn. */
function data(n: number, l: number, channels: Channel[], r: Random): Float32Array {
  const c = channels.length;
  const x = r.fillNormal(new Float32Array(n * c * l));
  channels.forEach((kind, ch) => {
    for (let i = 0; i < n * l; i++) {
      const at = (Math.floor(i / l) * c + ch) * l + (i % l);
      if (kind === 'constant') x[at] = 2.5;
      if (kind === 'huge') x[at] = i % 2 ? 1e38 : -1e38;
    }
    const at = (r.int(n) * c + ch) * l + r.int(l);
    if (kind === 'nan') x[at] = NaN;
    if (kind === 'infinite') x[at] = r.int(2) ? Infinity : -Infinity;
  });
  return x;
}

describeGpu('batch norm status words on CUDA', () => {
  const KINDS: Channel[] = ['plain', 'plain', 'nan', 'infinite', 'constant', 'huge'];
  const SENTINEL = 7;

  test('random channel counts, layouts and failures: the rule, the CPU kernel, and the running statistics', () => {
    const r = new Random(11);
    for (const c of [1, 5, 33, 97]) {
      for (const l of [1, 6]) {
        for (const [eps, tracked] of [[1e-5, true], [0, true], [0, false]] as const) {
          const n = 3 + r.int(4);
          const channels = Array.from({ length: c }, () => KINDS[r.int(KINDS.length)]);
          const x = data(n, l, channels, r);
          const offset = r.int(10);
          const start = [Array.from({ length: c }, () => r.uniform()), Array.from({ length: c }, () => 1 + r.uniform())];
          const run = (d: DeviceCode) => {
            const status = storage(d, new Float32Array(c + 10).fill(SENTINEL));
            const [mean, variance] = start.map((v) => storage(d, v));
            const count = storage(d, [3]);
            const out = (k: number) => new native.Storage(d, k);
            native.batchNormForwardTrain(
              [n, c, l], storage(d, x), storage(d, new Float32Array(c).fill(1)), storage(d, new Float32Array(c)), eps,
              out(n * c * l), out(c), out(c), out(c), null,
              tracked ? mean : null, tracked ? variance : null, 0.9, true, tracked ? count : null, tracked, status, offset,
            );
            return { status: Array.from(status.read()), mean: mean.read(), variance: variance.read(), count: count.read()[0] };
          };
          const [gpu, cpu] = [run(DeviceCode.Cuda), run(DeviceCode.Cpu)];
          const kinds = channels.map((kind) => kindOf(kind, eps, tracked));
          const want = [...new Array(offset).fill(SENTINEL), ...kinds, ...new Array(10 - offset).fill(SENTINEL)];
          const where = `c ${c}, l ${l}, eps ${eps}, tracked ${tracked}`;
          expect([where, gpu.status]).toEqual([where, want]);
          expect([where, cpu.status]).toEqual([where, want]);
          expect(gpu.count).toBe(tracked ? 4 : 3);
          kinds.forEach((kind, ch) => {
            const moved = tracked && kind === 0;
            for (const [got, other, initial] of [[gpu.mean, cpu.mean, start[0]], [gpu.variance, cpu.variance, start[1]]] as const) {
              if (!moved) expect([where, ch, got[ch]]).toEqual([where, ch, Math.fround(initial[ch])]);
              else expect(Math.abs(got[ch] - other[ch])).toBeLessThanOrEqual(1e-6 * Math.abs(other[ch]) + 1e-7);
            }
          });
        }
      }
    }
  });

  test('the status words on another device than x are refused, naming the binding', () => {
    const cuda = (k: number) => new native.Storage(DeviceCode.Cuda, k);
    expect(() =>
      native.batchNormForwardTrain([4, 2, 1], cuda(8), cuda(2), cuda(2), 1e-5, cuda(8), cuda(2), cuda(2), cuda(2), null,
        null, null, 0.9, false, null, false, new native.Storage(DeviceCode.Cpu, 2), 0),
    ).toThrow(/kernelgrad\.batchNormForwardTrain: operands are on different devices/);
  });
});
