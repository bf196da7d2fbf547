// The file readers refuse what is not a regular file before reading: /dev/zero would be read until
// memory runs out and a FIFO would block forever. Run in a child process with a time limit, so a
// reader that does block fails the test instead of hanging jest.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const root = path.join(__dirname, '..', '..');

/** Each reader's error message for each path, from a child process. */
function readAll(paths: string[]): Record<string, Record<string, string>> {
  const script = `
    const { readIdx } = require('./lib/data/idx');
    const { readSafetensors } = require('./lib/io/safetensors');
    const { loadMnistSplit } = require('./lib/data/mnist');
    const out = {};
    for (const p of ${JSON.stringify(paths)}) {
      out[p] = {};
      for (const [name, read] of [['readIdx', readIdx], ['readSafetensors', readSafetensors], ['loadMnistSplit', () => loadMnistSplit('test', { dir: require('path').dirname(p) })]]) {
        try { read(p); out[p][name] = 'no error'; } catch (e) { out[p][name] = e.message; }
      }
    }
    process.stdout.write(JSON.stringify(out));`;
  const r = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', script], { cwd: root, encoding: 'utf8', timeout: 30_000 });
  expect({ signal: r.signal, status: r.status, stderr: r.stderr }).toEqual({ signal: null, status: 0, stderr: '' });
  return JSON.parse(r.stdout);
}

test('/dev/zero, a FIFO and a directory are refused with a clear error, without blocking', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kg-notfile-'));
  try {
    const fifo = path.join(dir, 't10k-images-idx3-ubyte');
    const made = spawnSync('mkfifo', [fifo, path.join(dir, 't10k-labels-idx1-ubyte')]);
    const paths = ['/dev/zero', dir, ...(made.status === 0 ? [fifo] : [])];
    const errors = readAll(paths);
    expect(errors['/dev/zero'].readIdx).toBe('/dev/zero: not a regular file (a character device)');
    expect(errors['/dev/zero'].readSafetensors).toBe('/dev/zero: not a regular file (a character device)');
    expect(errors[dir].readIdx).toMatch(/not a regular file \(a directory\)|cannot read \(EISDIR\)/);
    if (made.status === 0) {
      expect(errors[fifo].readIdx).toBe(`${fifo}: not a regular file (a FIFO)`);
      expect(errors[fifo].readSafetensors).toBe(`${fifo}: not a regular file (a FIFO)`);
      expect(errors[fifo].loadMnistSplit).toBe(`${fifo}: not a regular file (a FIFO)`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a regular file is read whole, and a missing one named', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kg-file-'));
  try {
    const { readRegularFile } = jest.requireActual('../../lib/io/regular-file');
    const file = path.join(dir, 'f');
    const bytes = Buffer.from(Array.from({ length: 70001 }, (_, i) => (i * 7) & 255));
    fs.writeFileSync(file, bytes);
    expect(Buffer.compare(readRegularFile(file), bytes)).toBe(0);
    expect(() => readRegularFile(path.join(dir, 'nope'))).toThrow(/nope: no such file/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
