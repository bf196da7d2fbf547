// A residual connection: body(x) + shortcut(x), the building block of ResNets.
import { add } from '../ops/arith';
import { describe } from '../options';
import { formatShape, sameShape } from '../shape';
import type { Tensor } from '../tensor';
import { Module } from './module';

/**
 * y = body(x) + shortcut(x), with the identity as the default shortcut. A shortcut module
 * (usually a strided 1x1 convolution and batch norm) is needed where the body changes the shape.
 * State dict keys: body.*, shortcut.*.
 */
export class Residual extends Module {
  constructor(body: Module, shortcut?: Module | null) {
    super();
    const fn = 'kg.nn.Residual';
    if (!(body instanceof Module)) throw new TypeError(`${fn}: body must be a Module, got ${describe(body)}`);
    if (shortcut !== undefined && shortcut !== null && !(shortcut instanceof Module)) {
      throw new TypeError(`${fn}: shortcut must be a Module (or omitted for the identity), got ${describe(shortcut)}`);
    }
    this.registerModule('body', body);
    if (shortcut) this.registerModule('shortcut', shortcut);
  }

  get body(): Module {
    return this.module('body');
  }

  /** null for the identity. */
  get shortcut(): Module | null {
    return this.children().find(([n]) => n === 'shortcut')?.[1] ?? null;
  }

  forward(x: Tensor): Tensor {
    const y = this.body.forward(x);
    const s = this.shortcut ? this.shortcut.forward(x) : x;
    if (!sameShape(y.shape, s.shape)) {
      const what = this.shortcut ? 'the shortcut' : 'the identity shortcut (give a shortcut module that changes the shape)';
      throw new RangeError(`kg.nn.Residual: the body gives ${formatShape(y.shape)} but ${what} gives ${formatShape(s.shape)}`);
    }
    return add(y, s);
  }

  override toString(): string {
    const body = String(this.body).replace(/\n/g, '\n  ');
    const shortcut = this.shortcut ? String(this.shortcut).replace(/\n/g, '\n  ') : 'identity';
    return `Residual(\n  (body): ${body}\n  (shortcut): ${shortcut}\n)`;
  }
}
