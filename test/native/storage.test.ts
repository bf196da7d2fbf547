// The Storage binding and the host caching allocator under it: a disposed storage keeps nothing
// native (its methods say it was disposed, ops refuse it), look-alikes are refused, and freed
// blocks are reused for the next tensor of their size class without ever overlapping a live one.
import * as kg from '../../lib';
import { native, Storage } from '../../lib/native';
import { Random } from '../../lib/random';

const loose = native as unknown as Record<string, (...args: unknown[]) => unknown> & { Storage: { prototype: Record<string, (...a: unknown[]) => unknown> } };

/** The error fn throws, as name and message: the addon's errors come from another realm than jest's classes. */
function thrown(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return `${(e as Error).name}: ${(e as Error).message}`;
  }
  return 'nothing thrown';
}

function store(values: number[]): Storage {
  const s = new native.Storage(0, values.length);
  s.write(Float32Array.from(values));
  return s;
}

describe('Storage', () => {
  test('a disposed storage says so, and every use of it is an error naming it', () => {
    const s = store([1, 2, 3]);
    expect([s.disposed, s.numel, s.device]).toEqual([false, 3, 'cpu']);
    s.dispose();
    s.dispose(); // idempotent
    expect(s.disposed).toBe(true);
    expect(s.numel).toBe(0);
    expect(() => s.read()).toThrow(/Storage.read: the tensor's memory was disposed/);
    expect(() => s.write(new Float32Array(3))).toThrow(/Storage.write: the tensor's memory was disposed/);
    expect(() => s.device).toThrow(/Storage.device: the tensor's memory was disposed/);
    expect(() => store([0, 0, 0]).copyFrom(s)).toThrow(/copyFrom: the source's memory was disposed/);
    expect(() => native.fill(s, 1)).toThrow(/fill: out was disposed/);
    expect(() => native.axpby(1, store([1, 2, 3]), 1, s)).toThrow(/axpby: y was disposed/);
  });

  test('look-alikes are refused: no cast of an object that the constructor did not make', () => {
    const fake = Object.create(native.Storage.prototype) as Storage;
    expect(thrown(() => native.fill(fake, 1))).toBe('TypeError: kernelgrad.fill: out must be a Storage');
    // V8 itself refuses a method called on an object the class did not construct ("Illegal invocation").
    expect(thrown(() => fake.read())).toMatch(/^TypeError: /);
    expect(thrown(() => fake.dispose())).toMatch(/^TypeError: /);
    expect(thrown(() => fake.disposed)).toMatch(/^TypeError: /);
    expect(thrown(() => loose.Storage.prototype.read.call({}))).toMatch(/^TypeError: /);
    expect(() => loose.Storage.prototype.copyFrom.call(store([1]), { numel: 1 })).toThrow(/expected one Storage/);
    expect(() => (native.Storage as unknown as (d: number, n: number) => unknown)(0, 3)).toThrow(/call it with new/);
    // Constructing over an existing storage would wrap it twice.
    const s = store([5]);
    expect(thrown(() => Reflect.apply(native.Storage as unknown as (...a: unknown[]) => unknown, s, [0, 1]))).toMatch(/^TypeError: /);
    expect(Array.from(s.read())).toEqual([5]);
  });

  test('a subclass instance is a Storage too', () => {
    class Tagged extends (native.Storage as unknown as new (d: number, n: number) => Storage) {}
    const t = new Tagged(0, 2);
    native.fill(t, 7);
    expect(Array.from(t.read())).toEqual([7, 7]);
  });
});

describe('the host caching allocator', () => {
  test('a freed block is handed to the next storage of its size class, and the cache can be emptied', () => {
    kg.memory.emptyCache();
    const n = 100_003;
    const first = new native.Storage(0, n);
    const before = kg.memory.stats();
    first.dispose();
    const freed = kg.memory.stats();
    expect(freed.allocated).toBeLessThan(before.allocated);
    expect(freed.reserved).toBe(before.reserved); // kept for reuse
    const second = new native.Storage(0, n - 7); // same size class
    const after = kg.memory.stats();
    expect(after.numMallocs).toBe(before.numMallocs);
    expect(after.numReuses).toBe(before.numReuses + 1);
    second.dispose();
    kg.memory.emptyCache();
    const empty = kg.memory.stats();
    expect(empty.reserved).toBe(empty.allocated);
    expect(empty.peakReserved).toBeGreaterThanOrEqual(before.reserved);
  });

  test('live blocks never overlap, however sizes and reuse interleave', () => {
    const r = new Random(11);
    const live: Array<{ s: Storage; v: number }> = [];
    for (let round = 0; round < 400; round++) {
      if (live.length > 0 && r.uniform() < 0.45) {
        const [gone] = live.splice(r.int(live.length), 1);
        gone.s.dispose();
      } else {
        // odd sizes across many classes, from one element to a few hundred KB
        const n = 1 + r.int(r.uniform() < 0.8 ? 300 : 90_000);
        const s = new native.Storage(0, n);
        const v = round + 0.5;
        native.fill(s, v);
        live.push({ s, v });
      }
    }
    for (const { s, v } of live) {
      const values = s.read();
      expect(values.every((x) => x === v)).toBe(true);
      s.dispose();
    }
  });

  test('a training loop stops asking the system for memory after its first steps', () => {
    const model = kg.models.bnCnn({ device: 'cpu', seed: 3, hidden: 8 });
    const sgd = new kg.optim.SGD(model.parameters(), { lr: 0.01, momentum: 0.9 });
    const x = kg.rand([6, 1, 28, 28], { seed: 4 });
    const y = kg.tensor([1, 2, 3, 4, 5, 6]);
    for (let i = 0; i < 3; i++) kg.train.trainStep(model, sgd, x, y);
    const warm = kg.memory.stats();
    for (let i = 0; i < 10; i++) kg.train.trainStep(model, sgd, x, y);
    const after = kg.memory.stats();
    expect(after.numMallocs).toBe(warm.numMallocs);
    expect(after.numReuses).toBeGreaterThan(warm.numReuses + 100);
    expect(after.allocated).toBe(warm.allocated);
  });
});
