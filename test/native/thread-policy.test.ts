// The CPU threads' wait policy: libgomp takes it when the addon loads (OMP_DISPLAY_ENV makes it
// print what it took), the process's environment is left as it was, and a user's own setting wins.
import { spawnSync } from 'child_process';
import * as path from 'path';

const ROOT = path.resolve(__dirname, '../..');

/** Loads the library in a fresh process; its stdout is the environment's OMP_WAIT_POLICY and GOMP_SPINCOUNT after the load. */
function load(env: NodeJS.ProcessEnv): { after: string; libgomp: string; spins: string } {
  const script = "require('./lib'); process.stdout.write(String(process.env.OMP_WAIT_POLICY) + ' ' + String(process.env.GOMP_SPINCOUNT))";
  const r = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', script], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, OMP_WAIT_POLICY: undefined, GOMP_SPINCOUNT: undefined, OMP_DISPLAY_ENV: 'verbose', ...env },
  });
  expect(r.status).toBe(0);
  const line = /OMP_WAIT_POLICY = '(\w+)'/.exec(r.stderr);
  const spins = /GOMP_SPINCOUNT = '(\w+)'/.exec(r.stderr);
  return {
    after: r.stdout,
    libgomp: line ? line[1] : `no OMP_WAIT_POLICY line in: ${r.stderr.slice(0, 300)}`,
    spins: spins ? spins[1] : `no GOMP_SPINCOUNT line in: ${r.stderr.slice(0, 300)}`,
  };
}

test('libgomp runs the kernels passive after a short spin (300), and the environment is left alone', () => {
  expect(load({})).toEqual({ after: 'undefined undefined', libgomp: 'PASSIVE', spins: '300' });
});

test('a wait policy the user chose is kept', () => {
  expect(load({ OMP_WAIT_POLICY: 'active' })).toMatchObject({ after: 'active undefined', libgomp: 'ACTIVE' });
  expect(load({ GOMP_SPINCOUNT: '1000' })).toMatchObject({ after: 'undefined 1000', spins: '1000' });
});
