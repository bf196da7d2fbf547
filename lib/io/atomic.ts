// Atomic file writes: the data goes to a temporary file in the same folder, is flushed to disk
// (fsync) and then renamed over the target. A reader (or a run interrupted half-way) sees either the
// old file or the complete new one, never a half-written file.
//
// A run killed between the write and the rename leaves its temporary file behind. Temporary names
// carry the writer's process id (`.<name>.<pid>.<time>.<n>.tmp`), so the next write to the same
// target removes the ones whose process is gone, and never those of a writer still running. (On a
// folder shared between machines a pid from elsewhere may look gone; that writer's rename then
// fails with an error naming its file, rather than anything being lost silently.)
import * as fs from 'fs';
import * as path from 'path';
import { describe } from '../options';
import { isUint8Array } from '../typed-arrays';

let counter = 0;
/** Temporary files this process is writing now (not stale, whatever their name says). */
const inFlight = new Set<string>();

/** A complete, fsynced temporary file waiting to be renamed over its target. */
export interface StagedFile {
  readonly file: string;
  /** Renames the temporary file over the target (and fsyncs the folder where possible). */
  commit(): void;
  /** Removes the temporary file; the target is left as it was. */
  abort(): void;
}

/**
 * An Error that names the file first and keeps the system error's code (ENOSPC, EACCES, ...) and
 * the original as its cause.
 */
export function fileError(e: unknown, file: string, action: string): Error {
  const sys = e as NodeJS.ErrnoException;
  const err = new Error(`${file}: cannot ${action}: ${sys?.message ?? String(e)}`, { cause: e }) as NodeJS.ErrnoException;
  if (sys?.code !== undefined) err.code = sys.code;
  return err;
}

function tempPattern(base: string): RegExp {
  const escaped = base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^\\.${escaped}\\.(\\d+)\\.\\d+\\.\\d+\\.tmp$`);
}

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

/** Removes the temporary files of earlier writes to `file` whose process has exited. Best effort. */
export function removeStaleTemps(file: string): string[] {
  const dir = path.dirname(path.resolve(file));
  const pattern = tempPattern(path.basename(file));
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = pattern.exec(name);
    if (m === null) continue;
    const full = path.join(dir, name);
    const pid = Number(m[1]);
    if (inFlight.has(full) || (pid !== process.pid && processAlive(pid))) continue;
    try {
      fs.unlinkSync(full);
      removed.push(full);
    } catch {
      /* gone already, or not ours to remove */
    }
  }
  return removed;
}

/** Writes `data` to a fsynced temporary file beside `file`; `commit()` then puts it in place. */
export function stageFileAtomic(file: string, data: string | Uint8Array | Uint8Array[]): StagedFile {
  if (typeof file !== 'string' || file === '') throw new TypeError(`kg.io.writeFileAtomic: file must be a non-empty path string, got ${describe(file)}`);
  const ok = typeof data === 'string' || isUint8Array(data) || (Array.isArray(data) && data.every((c) => isUint8Array(c)));
  if (!ok) throw new TypeError(`kg.io.writeFileAtomic: data must be a string, a Uint8Array or an array of them, got ${describe(data)}`);
  const dir = path.dirname(path.resolve(file));
  removeStaleTemps(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Date.now()}.${counter++}.tmp`);
  let fd: number | null = null;
  inFlight.add(tmp);
  try {
    fd = fs.openSync(tmp, 'wx', 0o644);
    const chunks = Array.isArray(data) ? data : [typeof data === 'string' ? Buffer.from(data, 'utf8') : data];
    for (const c of chunks) {
      let off = 0;
      while (off < c.byteLength) off += fs.writeSync(fd, c, off, c.byteLength - off);
    }
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = null;
  } catch (e) {
    if (fd !== null) {
      try {
        fs.closeSync(fd);
      } catch {
        /* already failing */
      }
    }
    discard(tmp);
    throw fileError(e, file, 'write');
  }
  let done = false;
  return {
    file,
    commit() {
      if (done) return;
      done = true;
      try {
        fs.renameSync(tmp, file);
      } catch (e) {
        discard(tmp);
        throw fileError(e, file, 'write');
      }
      inFlight.delete(tmp);
      fsyncDir(dir);
    },
    abort() {
      if (done) return;
      done = true;
      discard(tmp);
    },
  };
}

/** Writes `data` to `file` atomically (temp file + fsync + rename; the folder is fsynced too where possible). */
export function writeFileAtomic(file: string, data: string | Uint8Array | Uint8Array[]): void {
  stageFileAtomic(file, data).commit();
}

/**
 * Commits staged files in order; when one fails, the ones after it are aborted (the ones before
 * are already in place) and the error is rethrown.
 */
export function commitAll(staged: readonly StagedFile[]): void {
  for (let i = 0; i < staged.length; i++) {
    try {
      staged[i].commit();
    } catch (e) {
      for (const s of staged.slice(i + 1)) s.abort();
      throw e;
    }
  }
}

function discard(tmp: string): void {
  inFlight.delete(tmp);
  try {
    fs.unlinkSync(tmp);
  } catch {
    /* never created or already renamed */
  }
}

/** Best effort: makes a rename durable by fsyncing its folder (not supported on every platform). */
function fsyncDir(dir: string): void {
  let fd: number | null = null;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    /* e.g. Windows cannot open folders; the rename itself is still atomic */
  } finally {
    if (fd !== null) fs.closeSync(fd);
  }
}
