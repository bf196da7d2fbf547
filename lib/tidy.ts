// kg.tidy(fn): frees every tensor created inside fn when fn returns, except what it returns and the
// tensors that must outlive a step (parameters, their gradients, buffers marked with keep()).
// Training loops wrap each step in it so that GPU memory is returned at once instead of whenever
// the garbage collector runs.
//
// The garbage collector is told about the memory of tensors made outside tidy (so that those left
// to it make it collect sooner), but not about the ones the outermost tidy makes: it frees them
// itself, and announcing a step's activations made V8 start a full collection every step. What
// outlives the outermost tidy is announced when it returns.
import { native } from './native';
import { Tensor } from './tensor';

const scopes: Tensor[][] = [];

/** @internal Called by the Tensor constructor. */
export function trackCreated(t: Tensor): void {
  if (scopes.length > 0) scopes[scopes.length - 1].push(t);
}

function collectTensors(value: unknown, into: Set<Tensor>, depth = 0): void {
  if (value === null || typeof value !== 'object' || depth > 4) return;
  if (value instanceof Tensor) {
    into.add(value);
    return;
  }
  const items = Array.isArray(value) ? value : Object.values(value as object);
  for (const v of items) collectTensors(v, into, depth + 1);
}

export function tidy<T>(fn: () => T): T {
  if (typeof fn !== 'function') throw new TypeError(`kg.tidy: fn must be a function, got ${fn === null ? 'null' : typeof fn}`);
  const created: Tensor[] = [];
  const outermost = scopes.length === 0;
  scopes.push(created);
  if (outermost) native.setGcReporting(false);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    for (const t of created) if (!t.isPersistent) t.dispose();
    if (outermost) announce(created);
    throw e;
  } finally {
    scopes.pop();
    if (outermost) native.setGcReporting(true);
  }
  if (result instanceof Promise) throw new TypeError('kg.tidy: fn must be synchronous (it returned a Promise)');
  const keep = new Set<Tensor>();
  collectTensors(result, keep);
  const outer = scopes[scopes.length - 1];
  for (const t of created) {
    if (keep.has(t) || t.isPersistent) {
      if (outer) outer.push(t);  // the enclosing scope owns what escapes this one
    } else {
      t.dispose();
    }
  }
  if (outermost) announce(created);
  return result;
}

/** Tells the garbage collector about the memory of the tensors that outlive the outermost tidy. */
function announce(created: readonly Tensor[]): void {
  for (const t of created) if (!t.disposed) t.storage.reportToGc();
}
