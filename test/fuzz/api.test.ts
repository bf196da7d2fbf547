// Fuzz test of the public API: generated calls of the main functions with tensors that often do
// not fit together and hostile shapes, axes, options, labels and file bytes. Each batch runs in a
// child process (test/fuzz/harness.ts): every call must return or throw, never crash or hang.
import * as kg from '../../lib';
import { describeCrash, fuzz } from './harness';
import { API_FUNCTIONS, apiCall } from './api-calls';
import { draw } from './values';

const CALLS = 1200;
const SEED = 20261202;

test('the generated calls name real functions and cover all of them', () => {
  const drawn = new Set(draw(apiCall, CALLS, SEED).map((c) => c.fn));
  expect([...drawn].sort()).toEqual([...API_FUNCTIONS].sort());
  for (const fn of API_FUNCTIONS) {
    const f = fn.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], kg);
    expect(typeof f).toBe('function');
  }
});

test(`${CALLS} hostile calls to the public API crash nothing`, () => {
  const report = fuzz('api', draw(apiCall, CALLS, SEED), { batchSize: 300 });
  const summary = `${report.calls} calls in ${report.children} processes: ${JSON.stringify(report.outcomes)}`;
  if (report.crashes.length > 0) {
    throw new Error(`${report.crashes.length} crashes; ${summary}\n\n${report.crashes.map(describeCrash).join('\n\n')}`);
  }
  expect(report.outcomes.ok).toBeGreaterThan(CALLS / 10);
});
