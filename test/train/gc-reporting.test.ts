// What the garbage collector is told about tensor memory (lib/tidy.ts, native/napi/storage.cpp):
// tensors that kg.tidy frees itself cost it nothing, and tensors left to it still make it collect.
// Each case runs in a child process, so that other tests' memory and collections stay out of it.
import { spawnSync } from 'child_process';
import * as path from 'path';

function run(mode: 'tidy' | 'leaked', iterations: number): { major: number; peakAllocatedMiB: number } {
  const child = path.join(__dirname, 'gc-child.ts');
  const r = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', child, mode, String(iterations)], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (r.status !== 0) throw new Error(`gc-child ${mode} exited ${r.status}: ${r.stderr.slice(0, 2000)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

test('128 MiB of tensors made and freed inside kg.tidy 200 times start (almost) no full collection', () => {
  const { major } = run('tidy', 200);
  // Announced to V8, they started one in more than half of the iterations (110 to 130 of 200).
  expect(major).toBeLessThan(20);
});

test('tensors left to the garbage collector are still collected: 12 GiB dropped, a bounded peak', () => {
  const { major, peakAllocatedMiB } = run('leaked', 3000);
  expect(major).toBeGreaterThan(0);
  expect(peakAllocatedMiB).toBeLessThan(1024);
});
