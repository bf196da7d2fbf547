// How the CPU kernels' OpenMP threads wait for work between parallel regions. libgomp reads it from
// the environment once, when the addon loads it, so it is put in the environment for the load
// only (child processes do not inherit it), unless the user has set OMP_WAIT_POLICY or
// GOMP_SPINCOUNT: their choice wins.
//
// By default libgomp spins for a long while (GOMP_SPINCOUNT 300,000) before it sleeps. With one core
// taken by another busy process, a spinning thread burns the time slice that the thread it waits
// for needs. Measured on the tutorial's training step (2 threads, 2 cores) beside one
// `node -e 'for(;;){}'`: the default's 90th percentile went from about 18 ms to 37-82 ms, pure
// spinning's to 142 ms, a short spin (GOMP_SPINCOUNT=10000) doubled even the median, while sleeping
// at once (OMP_WAIT_POLICY=PASSIVE) stayed at 24-30 ms; alone, passive costs at most a millisecond
// or so. bench/RESULTS.md, "Busy machines", has the figures.
const POLICY = { name: 'OMP_WAIT_POLICY', value: 'PASSIVE' };

/** Runs `load` (which loads the addon, and libgomp with it) under the wait policy. */
export function withThreadPolicy<T>(load: () => T): T {
  const env = process.env;
  if (env.OMP_WAIT_POLICY !== undefined || env.GOMP_SPINCOUNT !== undefined) return load();
  env[POLICY.name] = POLICY.value;
  try {
    return load();
  } finally {
    delete env[POLICY.name];
  }
}
