// How the CPU kernels' OpenMP threads wait for work between parallel regions. libgomp reads it from
// the environment once, when the addon loads it, so it is put in the environment for the load
// only (child processes do not inherit it), unless the user has set OMP_WAIT_POLICY or
// GOMP_SPINCOUNT: their choice wins.
//
// By default libgomp spins for a long while (GOMP_SPINCOUNT 300,000) before it sleeps. With one core
// taken by another busy process, a spinning thread then burns the time slice the thread it waits for
// needs: the tutorial's training step (2 threads, 2 cores) went from 15.5 to 24.5 ms median, and
// to 81 ms at the 90th percentile, beside a single `node -e 'for(;;){}'`. Sleeping at once
// (OMP_WAIT_POLICY=PASSIVE) kept it at 18.6 ms (90th percentile 24 ms), and cost nothing
// measurable on the idle machine (16.2 ms, within the run-to-run noise). bench/RESULTS.md,
// "Busy machines", has the figures.
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
