// Atomic file writes: the data goes to a temporary file in the same folder, is flushed to disk
// (fsync) and then renamed over the target. A reader (or a run interrupted half-way) sees either the
// old file or the complete new one, never a half-written file.
import * as fs from 'fs';
import * as path from 'path';

let counter = 0;

/** Writes `data` to `file` atomically (temp file + fsync + rename; the folder is fsynced too where possible). */
export function writeFileAtomic(file: string, data: string | Uint8Array | Uint8Array[]): void {
  const dir = path.dirname(path.resolve(file));
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Date.now()}.${counter++}.tmp`);
  let fd: number | null = null;
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
    fs.renameSync(tmp, file);
  } catch (e) {
    if (fd !== null) {
      try {
        fs.closeSync(fd);
      } catch {
        /* already failing */
      }
    }
    try {
      fs.unlinkSync(tmp);
    } catch {
      /* never created or already renamed */
    }
    throw e;
  }
  fsyncDir(dir);
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
