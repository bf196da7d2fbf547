// The README's TypeScript code blocks run as written: each is transpiled and run with
// `require('kernelgrad')` resolved to this checkout.
import * as fs from 'fs';
import * as path from 'path';
import * as ts from 'typescript';
import * as vm from 'vm';
import * as kg from '../lib';

const readme = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8');
const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);

function run(code: string): void {
  const js = ts.transpileModule(code, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 } }).outputText;
  const sandboxRequire = (name: string): unknown => (name === 'kernelgrad' ? kg : require(name));
  const module = { exports: {} };
  const quiet = { log: () => undefined, error: () => undefined };
  vm.runInNewContext(js, { require: sandboxRequire, module, exports: module.exports, console: quiet, Float32Array, process });
}

test('the README has TypeScript examples', () => {
  expect(blocks.length).toBeGreaterThan(3);
});

blocks.forEach((code, i) => {
  const firstLine = code.split('\n').find((l) => l.trim() && !l.startsWith('import')) ?? '';
  test(`README example ${i + 1}: ${firstLine.slice(0, 60)}`, () => {
    expect(() => run(code)).not.toThrow();
  });
});
