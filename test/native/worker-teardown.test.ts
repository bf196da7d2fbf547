// Ending worker threads while they run kernels (terminate(), the heap cap, process.exit) must not
// abort the process. Run in a child process, so an abort is a failed test instead of a dead jest;
// the start of its stderr (where V8 and Node name a fatal error) is kept in the failure.
import { spawnSync } from 'child_process';
import * as path from 'path';

test('terminating workers mid-kernel 120 times, then exiting while others compute, exits cleanly', () => {
  const r = spawnSync(process.execPath, [path.join(__dirname, 'teardown-child.js'), '120'], { encoding: 'utf8', timeout: 90_000 });
  expect({ signal: r.signal, status: r.status, stderr: r.stderr.slice(0, 4000) }).toEqual({ signal: null, status: 0, stderr: '' });
});
