// Runs one batch of fuzz calls in its own process and reports each call as it goes: `start i`
// before the call and `end i OUTCOME` after it, written synchronously, so that when the process
// dies by a signal the parent knows which call killed it (the last start without an end).
// Plain JavaScript so that a batch of raw-binding calls starts in milliseconds.
//
// usage: node child.js native|api BATCH.json
'use strict';
const fs = require('fs');
const path = require('path');

const [mode, batchFile] = process.argv.slice(2);
const root = path.join(__dirname, '..', '..');
let api = null;
let native;
if (mode === 'api') {
  require(require.resolve('ts-node', { paths: [root] })).register({ transpileOnly: true, cwd: root });
  api = require(path.join(root, 'lib'));
  native = require(path.join(root, 'lib', 'native')).native;
} else {
  native = require(require.resolve('bindings', { paths: [root] }))({ bindings: 'kernelgrad', module_root: root });
}

// stdout is a pipe the parent drains; when it is full, a write to it fails with EAGAIN: wait a
// millisecond and write the rest.
const pause = new Int32Array(new SharedArrayBuffer(4));
function say(line) {
  const buf = Buffer.from(line + '\n');
  for (let off = 0; off < buf.length; ) {
    try {
      off += fs.writeSync(1, buf, off);
    } catch (e) {
      if (e.code !== 'EAGAIN') throw e;
      Atomics.wait(pause, 0, 0, 1);
    }
  }
}

// Deterministic, non-zero contents: a kernel that reads the wrong element gives a different result.
function contents(n, fill) {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = fill ? Number(fill[i % fill.length]) : Math.sin(i + 1);
  return out;
}

// Argument markers: see test/fuzz/values.ts.
function decode(v) {
  if (Array.isArray(v)) return v.map(decode);
  if (v === null || typeof v !== 'object') return v;
  if ('$num' in v) return Number(v.$num);
  if ('$undef' in v) return undefined;
  if ('$obj' in v) return {};
  if ('$f32' in v) return contents(v.$f32);
  if ('$f64' in v) return Float64Array.from(decode(v.$f64));
  if ('$fake' in v) return Object.create(native.Storage.prototype);
  if ('$st' in v) {
    const s = new native.Storage(0, v.$st.n);
    s.write(contents(v.$st.n, v.$st.fill));
    if (v.$st.disposed) s.dispose();
    return s;
  }
  if ('$tensor' in v) {
    const { shape, fill, grad } = v.$tensor;
    const n = shape.reduce((a, b) => a * b, 1);
    const t = api.tensor(contents(n, fill), shape);
    return grad ? t.attachGrad() : t;
  }
  if ('$bytes' in v) return Uint8Array.from(v.$bytes);
  const out = {};
  for (const [k, x] of Object.entries(v)) out[k] = decode(x);
  return out;
}

function target(fn) {
  if (fn === 'new Storage') return (...a) => new native.Storage(...a);
  if (fn.startsWith('Storage.')) {
    const method = fn.slice('Storage.'.length);
    return (self, ...a) => native.Storage.prototype[method].call(self, ...a);
  }
  if (fn.startsWith('Tensor.')) {
    const method = fn.slice('Tensor.'.length);
    return (self, ...a) => self[method](...a);
  }
  let f = mode === 'api' ? api : native;
  for (const part of fn.split('.')) f = f[part];
  return f;
}

// A result that is a tensor is read back, so lazily queued work runs inside the call.
function settle(r) {
  if (api && r instanceof api.Tensor) {
    r.toArray();
    if (r.requiresGrad && r.numel > 0) r.sum().backward();
  }
  return r;
}

const calls = JSON.parse(fs.readFileSync(batchFile, 'utf8'));
for (const call of calls) {
  say(`start ${call.id}`);
  let outcome = 'ok';
  try {
    const args = decode(call.args);
    settle(target(call.fn)(...args));
  } catch (e) {
    outcome = e instanceof Error || (e && typeof e.message === 'string') ? e.constructor.name : 'non-error';
  }
  say(`end ${call.id} ${outcome}`);
}
