// Argument checks shared by the ops: every public op validates its inputs here before the native
// layer sees them, so errors name the op and the shapes in the user's terms.
import { describe } from '../options';
import { formatShape } from '../shape';
import { Tensor } from '../tensor';

export function checkTensor(t: unknown, op: string, name: string): Tensor {
  if (!(t instanceof Tensor)) {
    throw new TypeError(`${op}: ${name} must be a Tensor, got ${describe(t)}`);
  }
  if (t.disposed) throw new Error(`${op}: ${name} ${formatShape(t.shape)} was disposed and can no longer be used`);
  return t;
}

export function checkSameDevice(op: string, tensors: Record<string, Tensor | null | undefined>): void {
  let first: [string, Tensor] | undefined;
  for (const [name, t] of Object.entries(tensors)) {
    if (!t) continue;
    if (!first) first = [name, t];
    else if (t.device !== first[1].device) {
      throw new Error(
        `${op}: ${first[0]} ${formatShape(first[1].shape)} is on ${first[1].device} but ${name} ${formatShape(t.shape)} is on ${t.device}; move one with .to(device)`,
      );
    }
  }
}

export function checkNdim(t: Tensor, allowed: readonly number[], op: string, name: string, expected?: string): void {
  if (!allowed.includes(t.ndim)) {
    const what = expected ?? `${allowed.join('-D or ')}-D`;
    throw new RangeError(`${op}: ${name} must be ${what}, got shape ${formatShape(t.shape)}`);
  }
}

export function checkPositiveInt(v: unknown, op: string, name: string, min = 1): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
    const what = min === 1 ? 'a positive integer' : min === 0 ? 'a non-negative integer' : `an integer >= ${min}`;
    throw new RangeError(`${op}: ${name} must be ${what}, got ${describe(v)}`);
  }
  return v;
}

export function checkFinite(v: unknown, op: string, name: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new TypeError(`${op}: ${name} must be a finite number, got ${describe(v)}`);
  }
  return v;
}
