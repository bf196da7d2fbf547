// flagNonFiniteStats (finite_flag.cu), the batch-norm statistics check as a kernel, against the
// CPU kernel and the rule itself: the first failing channel wins, whatever lane finds it, and a
// flag already set is kept.
import { DeviceCode, native } from '../../lib/native';
import { Random } from '../../lib/random';
import { describeGpu } from './helpers';

function storage(device: DeviceCode, values: ArrayLike<number>) {
  const s = new native.Storage(device, values.length);
  s.write(Float32Array.from(values));
  return s;
}

/** The rule: (kind, channel) of the first failure, or null. */
function firstFailure(mean: number[], invstd: number[], variance: number[] | null): [number, number] | null {
  for (let ch = 0; ch < mean.length; ch++) {
    const f32 = (v: number) => Math.fround(v);
    if (!Number.isFinite(f32(mean[ch]))) return [1, ch];
    if (f32(invstd[ch]) === Infinity) return [2, ch];
    if (!(f32(invstd[ch]) > 0)) return [3, ch];
    if (variance && !Number.isFinite(f32(variance[ch]))) return [4, ch];
  }
  return null;
}

describeGpu('flagNonFiniteStats on CUDA', () => {
  test('random channel counts and failures: the rule, and the CPU kernel', () => {
    const r = new Random(11);
    const bad = [NaN, Infinity, -Infinity, 0, -1, 3.5e38];
    for (const c of [1, 5, 31, 32, 33, 97, 1000]) {
      for (let trial = 0; trial < 4; trial++) {
        const mean = Array.from({ length: c }, () => 2 * r.uniform() - 1);
        const invstd = Array.from({ length: c }, () => 0.5 + r.uniform());
        const variance = trial % 2 === 0 ? Array.from({ length: c }, () => r.uniform()) : null;
        for (let k = 0; k < trial; k++) {
          const arr = [mean, invstd, variance ?? mean][r.int(3)];
          arr[r.int(c)] = bad[r.int(bad.length)];
        }
        const want = firstFailure(mean, invstd, variance);
        const got = [DeviceCode.Cuda, DeviceCode.Cpu].map((d) => {
          const flag = storage(d, [0, 0, 0]);
          native.flagNonFiniteStats(c, storage(d, mean), storage(d, invstd), variance ? storage(d, variance) : null, 4, flag);
          return Array.from(flag.read());
        });
        expect(got[0]).toEqual(got[1]);
        expect(got[0]).toEqual(want ? [want[0], want[1], 4] : [0, 0, 0]);
      }
    }
  });

  test('a flag already set is kept', () => {
    const flag = storage(DeviceCode.Cuda, [2, 7, 1]);
    native.flagNonFiniteStats(3, storage(DeviceCode.Cuda, [NaN, 0, 0]), storage(DeviceCode.Cuda, [1, 1, 1]), null, 5, flag);
    expect(Array.from(flag.read())).toEqual([2, 7, 1]);
  });
});
