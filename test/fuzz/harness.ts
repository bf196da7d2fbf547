// Runs generated calls in child processes (test/fuzz/child.js), a batch per child, so that a call
// that kills its process by a signal (or hangs) is caught and counted instead of killing jest.
// When a child dies, the call it was running is known from its last `start` line; that call is
// run again alone to tell a crash of its own from one that needs the calls before it, and the
// rest of the batch goes on in a fresh child.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

/** One call: a function of the raw addon (`gemm`, `Storage.read`) or of the public API (`nn.functional.conv2d`). */
export interface Call {
  fn: string;
  args: unknown[];
}

export interface Crash {
  call: Call;
  /** How the child ended: a signal name, `exit N`, or `timeout`. */
  how: string;
  /** False when the call ran alone does not crash: it needs the calls before it in the batch. */
  alone: boolean;
  stderr: string;
}

export interface FuzzReport {
  calls: number;
  children: number;
  /** Outcome name (ok, TypeError, RangeError, Error, ...) -> count. */
  outcomes: Record<string, number>;
  crashes: Crash[];
}

const CHILD = path.join(__dirname, 'child.js');

/**
 * Encodes a call's arguments as JSON the child decodes: numbers JSON cannot carry (NaN, ±Infinity,
 * -0) and undefined become markers; the generators build the other markers ($st, $tensor, ...)
 * with the helpers in ./values.
 */
function encode(calls: Array<Call & { id: number }>): string {
  return JSON.stringify(calls, (_key, v: unknown) => {
    if (typeof v === 'number' && (!Number.isFinite(v) || Object.is(v, -0))) return { $num: String(Object.is(v, -0) ? '-0' : v) };
    if (v === undefined) return { $undef: 1 };
    return v;
  });
}

interface ChildResult {
  ended: Map<number, string>;
  /** The call that was running when the child died, if it died. */
  dying: number | null;
  how: string | null;
  stderr: string;
}

function runChild(mode: 'native' | 'api', calls: Array<Call & { id: number }>, dir: string, timeoutMs: number): ChildResult {
  const file = path.join(dir, 'batch.json');
  fs.writeFileSync(file, encode(calls));
  const r = spawnSync(process.execPath, [CHILD, mode, file], {
    encoding: 'utf8',
    timeout: timeoutMs,
    maxBuffer: 64 * 2 ** 20,
    // One thread per kernel: the suite runs in parallel and the calls are tiny.
    env: { ...process.env, OMP_NUM_THREADS: '2' },
  });
  const ended = new Map<number, string>();
  let last: number | null = null;
  for (const line of (r.stdout ?? '').split('\n')) {
    const [what, id, outcome] = line.split(' ');
    if (what === 'start') last = Number(id);
    if (what === 'end') {
      ended.set(Number(id), outcome);
      last = null;
    }
  }
  let how: string | null = null;
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT') how = 'timeout';
  else if (r.signal) how = r.signal;
  else if (r.status !== 0) how = `exit ${r.status}`;
  return { ended, dying: how ? last : null, how, stderr: (r.stderr ?? '').slice(-2000) };
}

/** Runs all calls, batchSize per child, and reports every outcome and every crash. */
export function fuzz(mode: 'native' | 'api', calls: Call[], options: { batchSize: number; timeoutMs?: number }): FuzzReport {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kg-fuzz-'));
  const report: FuzzReport = { calls: calls.length, children: 0, outcomes: {}, crashes: [] };
  const numbered = calls.map((c, id) => ({ ...c, id }));
  try {
    for (let start = 0; start < numbered.length; start += options.batchSize) {
      let pending = numbered.slice(start, start + options.batchSize);
      while (pending.length > 0) {
        const r = runChild(mode, pending, dir, timeoutMs);
        report.children++;
        for (const outcome of r.ended.values()) report.outcomes[outcome] = (report.outcomes[outcome] ?? 0) + 1;
        if (!r.how) break;
        // The child died: blame the call it was in (or, when it died between calls, the first not ended).
        const blamed = r.dying ?? pending.find((c) => !r.ended.has(c.id))?.id;
        const index = pending.findIndex((c) => c.id === blamed);
        if (index < 0) {
          report.crashes.push({ call: { fn: '<batch>', args: [] }, how: r.how, alone: false, stderr: r.stderr });
          break;
        }
        const call = pending[index];
        const again = runChild(mode, [call], dir, timeoutMs);
        report.children++;
        report.crashes.push({ call: { fn: call.fn, args: call.args }, how: r.how, alone: again.how !== null, stderr: r.stderr });
        report.outcomes.crash = (report.outcomes.crash ?? 0) + 1;
        pending = pending.slice(index + 1);
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return report;
}

/** A crash as a line a reader can paste into node to reproduce it. */
export function describeCrash(c: Crash): string {
  const args = encode([{ ...c.call, id: 0 }]);
  return `${c.how}${c.alone ? '' : ' (only after the calls before it)'}: ${c.call.fn} ${args}\n${c.stderr.split('\n').slice(-3).join('\n')}`;
}
