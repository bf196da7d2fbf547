// A chain of modules applied in order.
import type { Tensor } from '../tensor';
import { describe } from '../options';
import { ReLU } from './activation';
import { BatchNorm } from './batchnorm';
import { chainCacheOf, runConvBlock, runDenseBlock, runInferenceChain } from './inference-blocks';
import { Module } from './module';
import { AvgPool2d } from './pooling';

/**
 * Applies its modules one after the other. `new Sequential(a, b, c)` names the children '0', '1',
 * '2' (state dict keys '0.weight', ...), like PyTorch's nn.Sequential; `new Sequential({ conv1: a,
 * bn1: b })` or `new Sequential([['conv1', a], ['bn1', b]])` uses the given names, like
 * nn.Sequential(OrderedDict(...)).
 */
export class Sequential extends Module {
  constructor(...modules: Module[]);
  constructor(named: Record<string, Module> | Array<[string, Module]>);
  constructor(...args: unknown[]) {
    super();
    let entries: Array<[string, Module]>;
    if (args.length === 1 && Array.isArray(args[0])) {
      entries = Array.from(args[0] as unknown[], (e, i) => {
        if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== 'string') {
          throw new TypeError(`kg.nn.Sequential: entry ${i} must be a [name, module] pair, got ${describe(e)}`);
        }
        return e as [string, Module];
      });
    } else if (args.length === 1 && isPlainObject(args[0])) {
      entries = Object.entries(args[0] as Record<string, Module>);
    } else {
      entries = args.map((m, i) => [String(i), m as Module]);
    }
    for (const [name, m] of entries) {
      if (!(m instanceof Module)) throw new TypeError(`kg.nn.Sequential: '${name}' is not a Module, got ${describe(m)}`);
      this.registerModule(name, m);
    }
  }

  /** Number of modules. */
  get length(): number {
    return this.children().length;
  }

  /** The module at position `i` or with name `name`. */
  at(i: number | string): Module {
    const kids = this.children();
    const found = typeof i === 'number' ? kids[i] : kids.find(([n]) => n === i);
    if (found === undefined) throw new RangeError(`kg.nn.Sequential.at: no module ${describe(i)} (${kids.length} modules: ${kids.map(([n]) => n).join(', ')})`);
    return found[1];
  }

  forward(x: Tensor): Tensor {
    const kids = this.children().map(([, m]) => m);
    // Inference on the CPU of a network made of fusable blocks alone: all of it in one call.
    const chained = runInferenceChain(kids, x, chainCacheOf(this));
    if (chained) return chained;
    let h = x;
    for (let i = 0; i < kids.length; i++) {
      // Inference on the CPU: a convolution with its batch norm, ReLU and pooling in one pass, a
      // dense layer with its bias, batch norm and ReLU in one call.
      const block = runConvBlock(kids, i, h) ?? runDenseBlock(kids, i, h);
      if (block) {
        h = block.y;
        i += block.layers - 1;
        continue;
      }
      // A BatchNorm followed by a ReLU runs as one fused op, and with an AvgPool2d whose windows do
      // not overlap after them, the pooling too: the same values, fewer passes and launches each
      // way. Exact classes only, so that a subclass's own forward is never bypassed.
      if (kids[i].constructor === BatchNorm && kids[i + 1]?.constructor === ReLU) {
        const pool = tilingWindow(kids[i + 2]);
        if (pool) {
          h = (kids[i] as BatchNorm).forwardReluPool(h, pool);
          i += 2;
        } else {
          h = (kids[i] as BatchNorm).forwardRelu(h);
          i++;
        }
      } else {
        h = kids[i].forward(h);
      }
    }
    return h;
  }

  override toString(): string {
    const lines = this.children().map(([n, m]) => `  (${n}): ${String(m)}`);
    return `Sequential(\n${lines.join('\n')}\n)`;
  }
}

/** The window of an AvgPool2d (exact class) whose stride equals its window, else null. */
function tilingWindow(m: Module | undefined): [number, number] | null {
  if (m?.constructor !== AvgPool2d) return null;
  const pool = m as AvgPool2d;
  const pair = (v: number | [number, number]): [number, number] => (typeof v === 'number' ? [v, v] : [v[0], v[1]]);
  const [kh, kw] = pair(pool.kernelSize);
  const [sh, sw] = pair(pool.stride);
  return kh === sh && kw === sw ? [kh, kw] : null;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object') return false;
  // An object literal from any realm: its prototype is some realm's Object.prototype, or null.
  const proto = Object.getPrototypeOf(v);
  return proto === null || Object.getPrototypeOf(proto) === null;
}
