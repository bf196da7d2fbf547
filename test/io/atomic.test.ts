// Atomic writes: what a killed run leaves behind is cleaned up by the next write, staged files are
// committed together, and a failing write names the file it was writing.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { commitAll, removeStaleTemps, stageFileAtomic, writeFileAtomic } from '../../lib/io/atomic';

const ROOT = path.resolve(__dirname, '../..');

/** Stages a write to `file` in a child process that is then killed before it can rename. */
function killedWriter(file: string): number {
  const script = `require('./lib/io/atomic').stageFileAtomic(${JSON.stringify(file)}, 'half'); process.kill(process.pid, 'SIGKILL');`;
  const r = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  expect(r.signal).toBe('SIGKILL');
  return r.pid!;
}

function temps(dir: string): string[] {
  return fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')).sort();
}

describe('atomic writes', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kg-atomic-'));
  });
  afterEach(() => {
    jest.restoreAllMocks();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the temporary file of a killed run is removed by the next write to the same file', () => {
    const file = path.join(dir, 'metrics.json');
    const pid = killedWriter(file);
    expect(temps(dir)).toEqual([expect.stringMatching(new RegExp(`^\\.metrics\\.json\\.${pid}\\.\\d+\\.\\d+\\.tmp$`))]);
    writeFileAtomic(file, '{}');
    expect(temps(dir)).toEqual([]);
    expect(fs.readFileSync(file, 'utf8')).toBe('{}');
  });

  test('temporary files of live processes, of other targets and of this process in flight are kept', () => {
    const file = path.join(dir, 'model.safetensors');
    const live = `.model.safetensors.${process.ppid}.1.0.tmp`; // the parent is alive while we run
    const other = `.metrics.json.999999999.1.0.tmp`;
    const unrelated = 'model.safetensors.tmp';
    for (const f of [live, other, unrelated]) fs.writeFileSync(path.join(dir, f), 'x');
    const staged = stageFileAtomic(file, 'a');
    expect(removeStaleTemps(file)).toEqual([]);
    writeFileAtomic(file, 'b');
    expect(fs.readFileSync(file, 'utf8')).toBe('b');
    staged.commit();
    expect(fs.readFileSync(file, 'utf8')).toBe('a');
    expect(temps(dir)).toEqual([other, live, unrelated].sort());
  });

  test('staged files change together; a failed commit aborts the rest and keeps the old files', () => {
    const a = path.join(dir, 'a.txt');
    const b = path.join(dir, 'b.txt');
    writeFileAtomic(a, 'old a');
    writeFileAtomic(b, 'old b');
    const sa = stageFileAtomic(a, 'new a');
    const sb = stageFileAtomic(b, 'new b');
    expect([fs.readFileSync(a, 'utf8'), fs.readFileSync(b, 'utf8')]).toEqual(['old a', 'old b']);
    commitAll([sa, sb]);
    expect([fs.readFileSync(a, 'utf8'), fs.readFileSync(b, 'utf8')]).toEqual(['new a', 'new b']);

    // A folder in the way makes the rename fail.
    const blocked = path.join(dir, 'blocked');
    const sBlocked = stageFileAtomic(blocked, 'x');
    fs.mkdirSync(blocked);
    fs.writeFileSync(path.join(blocked, 'inside'), '');
    const sb2 = stageFileAtomic(b, 'newer b');
    expect(() => commitAll([sBlocked, sb2])).toThrow(`${blocked}: cannot write:`);
    expect(fs.readFileSync(b, 'utf8')).toBe('new b');
    expect(temps(dir)).toEqual([]);
  });

  test.each([
    ['ENOSPC', 'no space left on device'],
    ['EACCES', 'permission denied'],
  ])('%s names the file being written and keeps the code', (code, text) => {
    const file = path.join(dir, 'model.safetensors');
    writeFileAtomic(file, 'old');
    // The module object itself: `import * as fs` gives a read-only copy of its bindings.
    const nodeFs = jest.requireActual<typeof fs>('fs');
    jest.spyOn(nodeFs, 'writeSync').mockImplementation(() => {
      throw Object.assign(new Error(`${code}: ${text}, write`), { code, errno: -28, syscall: 'write' });
    });
    let err: NodeJS.ErrnoException | undefined;
    try {
      writeFileAtomic(file, 'new');
    } catch (e) {
      err = e as NodeJS.ErrnoException;
    }
    expect(err?.message).toBe(`${file}: cannot write: ${code}: ${text}, write`);
    expect(err?.code).toBe(code);
    jest.restoreAllMocks();
    expect(fs.readFileSync(file, 'utf8')).toBe('old');
    expect(temps(dir)).toEqual([]);
  });

  test('a folder that does not exist is named too', () => {
    const file = path.join(dir, 'missing', 'metrics.json');
    expect(() => writeFileAtomic(file, '{}')).toThrow(`${file}: cannot write: ENOENT`);
  });
});
