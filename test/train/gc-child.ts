// Counts V8's full collections while a loop allocates big tensors, in one of two ways, and prints
// what it saw as JSON:
//   tidy    each iteration makes 32 tensors of 4 MiB inside kg.tidy, which frees them at once
//   leaked  each iteration allocates 4 MiB outside tidy and drops it for the garbage collector
// The event loop turns between iterations, so that collections and finalizers can run.
//
// usage: node -r ts-node/register/transpile-only gc-child.ts tidy|leaked ITERATIONS
import { PerformanceObserver, constants } from 'perf_hooks';
import * as kg from '../../lib';

const [mode, iterations] = [process.argv[2], Number(process.argv[3])];
let major = 0;
const observer = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    if ((e as unknown as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) major++;
  }
});
observer.observe({ entryTypes: ['gc'] });

(async () => {
  for (let i = 0; i < iterations; i++) {
    if (mode === 'tidy') {
      kg.tidy(() => {
        for (let j = 0; j < 16; j++) {
          const a = kg.zeros([1 << 20]);
          kg.add(a, a);
        }
      });
    } else {
      kg.zeros([1 << 20]);
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  await new Promise((resolve) => setTimeout(resolve, 50)); // the observer's last entries
  observer.disconnect();
  process.stdout.write(JSON.stringify({ major, peakAllocatedMiB: kg.memory.stats().peakAllocated / 2 ** 20 }) + '\n');
})();
