// Runs the `kernelgrad` command line from its TypeScript source in a fresh process, as a user would
// run it, and returns its exit code and output.
import { spawnSync } from 'child_process';
import * as path from 'path';

const ROOT = path.resolve(__dirname, '../..');
const MAIN = path.join(ROOT, 'lib/cli/main.ts');

export function cli(args: string[], timeout = 110_000): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', MAIN, ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout,
    env: { ...process.env, KG_DEBUG: '' },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
