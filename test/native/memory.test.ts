// A synchronous training loop never lets the event loop turn, so the addon's finalizers must run
// during garbage collection: before they did, a tidy'd step leaked every storage's wrapper (about
// 13 KB a step) and a step without tidy all of its memory (about 1.5 GB over 200 steps here).
// Measured in a child process, away from jest's own heap.
import { spawnSync } from 'child_process';
import * as path from 'path';

test('synchronous training loops hold host memory flat, with tidy and without', () => {
  const r = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', path.join(__dirname, 'memory-child.js'), '1000', '200'], {
    cwd: path.join(__dirname, '..', '..'),
    encoding: 'utf8',
    timeout: 100_000,
    env: { ...process.env, OMP_NUM_THREADS: '1' },
  });
  expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
  const { tidyGrowthMB, plainGrowthMB } = JSON.parse(r.stdout);
  // 800 measured tidy'd steps: was +10 MB, now about +1 MB (noise from the heap's own growth).
  expect(tidyGrowthMB).toBeLessThan(5);
  // 200 steps without tidy at batch 16: was +1.5 GB, now bounded by the collector's pace (~70 MB).
  expect(plainGrowthMB).toBeLessThan(400);
});
