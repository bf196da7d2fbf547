// Whole-file reads for the data and checkpoint readers. readFileSync on /dev/zero reads until memory
// runs out, and on a FIFO it blocks until a writer comes: only regular files are read, in one pass
// bounded by the size fstat gave when the file was opened.
import * as fs from 'fs';

function kind(st: fs.Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a file';
}

function cannotRead(file: string, e: unknown): Error {
  const code = (e as NodeJS.ErrnoException).code;
  return new Error(code === 'ENOENT' ? `${file}: no such file` : `${file}: cannot read (${code ?? (e as Error).message})`);
}

/** The contents of a regular file; a clear Error naming the file for anything else or any failure. */
export function readRegularFile(file: string): Buffer {
  let fd: number;
  try {
    // Non-blocking, so that opening a FIFO returns at once instead of waiting for a writer.
    fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
  } catch (e) {
    throw cannotRead(file, e);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new Error(`${file}: not a regular file (${kind(st)})`);
    const buf = Buffer.allocUnsafe(st.size);
    let got = 0;
    while (got < st.size) {
      const n = fs.readSync(fd, buf, got, st.size - got, got);
      if (n === 0) break; // the file shrank while being read
      got += n;
    }
    return got === st.size ? buf : buf.subarray(0, got);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === undefined) throw e;
    throw cannotRead(file, e);
  } finally {
    fs.closeSync(fd);
  }
}
