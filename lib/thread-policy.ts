// How the CPU kernels' OpenMP threads wait for work between parallel regions. libgomp reads it from
// the environment once, when the addon loads it, so it is put in the environment for the load
// only (child processes do not inherit it), unless the user has set OMP_WAIT_POLICY or
// GOMP_SPINCOUNT: their choice wins.
//
// By default libgomp spins for a long while (GOMP_SPINCOUNT 300,000, about 3 ms) before it sleeps.
// With one core taken by another busy process, a spinning thread burns the time slice that the
// thread it waits for needs. Measured on the tutorial's training step (2 threads, 2 cores) beside
// one `node -e 'for(;;){}'`: the default's 90th percentile went from about 18 ms to 37-82 ms, pure
// spinning's to 142 ms, while sleeping at once (OMP_WAIT_POLICY=PASSIVE) stayed within 1.2-1.7x of
// the idle figures. bench/RESULTS.md, "Busy machines", has the figures.
//
// Sleeping at once has its own cost where waking a thread is slow (about 40 us on a virtual
// machine): a parallel kernel that follows another within microseconds found its helper asleep,
// and batch norm's inference form on 64x20x26x26 took 88 us on two threads against 77 us on one.
// So the threads spin 300 times (a few microseconds) before they sleep: back-to-back kernels find
// them awake (that batch norm: 42 us), and beside a busy process the training step's median moved
// from 9.2 to 9.6-9.9 ms (3,000 spins: 11.6 ms; 30,000: 28 ms).
const POLICY: ReadonlyArray<[string, string]> = [
  ['OMP_WAIT_POLICY', 'PASSIVE'],
  ['GOMP_SPINCOUNT', '300'],
];

/** Runs `load` (which loads the addon, and libgomp with it) under the wait policy. */
export function withThreadPolicy<T>(load: () => T): T {
  const env = process.env;
  if (env.OMP_WAIT_POLICY !== undefined || env.GOMP_SPINCOUNT !== undefined) return load();
  for (const [name, value] of POLICY) env[name] = value;
  try {
    return load();
  } finally {
    for (const [name] of POLICY) delete env[name];
  }
}
