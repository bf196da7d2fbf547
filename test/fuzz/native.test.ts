// Fuzz test of the raw addon: thousands of generated calls to every export, many of them hostile
// (huge, negative, NaN or fractional sizes, sizes whose product wraps in int64, wrong types,
// disposed or fake storages, labels out of range, wrong arity). Each batch runs in a child
// process, so a crash is caught and counted; the addon must answer every call with a return or a
// JS error.
import { native } from '../../lib/native';
import { describeCrash, fuzz } from './harness';
import { NATIVE_FUNCTIONS, nativeCall } from './native-calls';
import { draw } from './values';

const CALLS = 6000;
const SEED = 20261201;

test('the generators cover every export of the addon', () => {
  expect([...NATIVE_FUNCTIONS].sort()).toEqual(Object.keys(native).filter((k) => typeof (native as unknown as Record<string, unknown>)[k] === 'function').sort());
  const drawn = new Set(draw(nativeCall, CALLS, SEED).map((c) => (c.fn === 'new Storage' || c.fn.startsWith('Storage.') ? 'Storage' : c.fn)));
  expect([...drawn].sort()).toEqual([...NATIVE_FUNCTIONS].sort());
});

test(`${CALLS} hostile calls to the raw addon crash nothing`, () => {
  const report = fuzz('native', draw(nativeCall, CALLS, SEED), { batchSize: 250 });
  const summary = `${report.calls} calls in ${report.children} processes: ${JSON.stringify(report.outcomes)}`;
  if (report.crashes.length > 0) {
    throw new Error(`${report.crashes.length} crashes; ${summary}\n\n${report.crashes.map(describeCrash).join('\n\n')}`);
  }
  // The fuzz must reach the kernels too, not only the argument checks.
  expect(report.outcomes.ok).toBeGreaterThan(CALLS / 10);
  expect(report.outcomes.RangeError).toBeGreaterThan(CALLS / 10);
});
