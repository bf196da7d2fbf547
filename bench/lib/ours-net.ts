// The tutorial's network on kernelgrad through the public API: bnCnn() (lib/models/bn-cnn.ts),
// SGD (lib/optim), autograd.record, backward, tidy. Its parameters are overwritten with the same
// values the TensorFlow.js network and the plain reference start from (initParams).
import type { Tensor } from '../../lib/tensor';
import type { Ours } from './ours';
import { NET } from './shapes';
import { Params, PARAM_SHAPES } from '../reference/plain-net';

/** Our module's parameter names -> the tutorial's names; dense weights are stored transposed. */
const NAME_MAP: Record<string, { plain: string; transpose?: [number, number] }> = {
  'conv1.weight': { plain: 'W1' }, 'conv1.bias': { plain: 'b1' }, 'bn1.gamma': { plain: 'gamma1' }, 'bn1.beta': { plain: 'beta1' },
  'conv2.weight': { plain: 'W2' }, 'conv2.bias': { plain: 'b2' }, 'bn2.gamma': { plain: 'gamma2' }, 'bn2.beta': { plain: 'beta2' },
  'fc1.weight': { plain: 'W3', transpose: [800, 128] }, 'fc1.bias': { plain: 'b3' }, 'bn3.gamma': { plain: 'gamma3' }, 'bn3.beta': { plain: 'beta3' },
  'fc2.weight': { plain: 'W4', transpose: [128, 10] }, 'fc2.bias': { plain: 'b4' },
};

function transpose(a: ArrayLike<number>, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = a[i * cols + j];
  return out;
}

export interface OursNet {
  describe: string;
  /** The bnCnn() Sequential itself (e.g. for kg.io.exportOnnx). */
  model: import('../../lib/nn/sequential').Sequential;
  /** One training step: zero grads, record forward + summed loss, backward, SGD step. */
  step(x: Tensor, labels: Tensor): void;
  /** Forward + backward without the update; loss and gradients in the tutorial's layout. */
  lossAndGrads(x: Tensor, labels: Tensor): { loss: number; grads: Record<string, Float32Array> };
  /** Applies the optimizer to the gradients left by lossAndGrads. */
  update(): void;
  /** Current parameters in the tutorial's layout. */
  params(): Params;
  /** Inference logits with the moving statistics (eval mode). */
  infer(x: Tensor): Tensor;
  /** Overwrites the moving statistics: mean1, var1, ... (plain-net's initRunningStats names). */
  setRunning(stats: Record<string, Float32Array>): void;
  dispose(): void;
}

export function makeOursNet(o: Ours, init: Params): OursNet {
  const kg = o.kg;
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { bnCnn } = require('../../lib/models/bn-cnn') as typeof import('../../lib/models/bn-cnn');
  const optim = ((kg as unknown as { optim?: typeof import('../../lib/optim') }).optim ??
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    require('../../lib/optim')) as typeof import('../../lib/optim');
  const F = kg.nn.functional;
  const model = bnCnn({ device: o.device, seed: 1 });
  const named = model.namedParameters();
  for (const [name, t] of named) {
    const m = NAME_MAP[name];
    if (!m) throw new Error(`bnCnn has an unexpected parameter ${name}`);
    let v = init[m.plain];
    if (m.transpose) v = transpose(v, m.transpose[0], m.transpose[1]);
    if (v.length !== t.numel) throw new Error(`${name}: ${t.numel} values, the tutorial's ${m.plain} has ${v.length} (${PARAM_SHAPES[m.plain]})`);
    const src = kg.tensor(v, t.shape, { device: o.device });
    t.copy_(src);
    src.dispose();
  }
  const opt = new optim.SGD(model.parameters(), { lr: NET.lr });
  const forwardLoss = (x: Tensor, labels: Tensor) =>
    kg.autograd.record(() => F.softmaxCrossEntropy(model.forward(x), labels)); // per-example, backward sums (the tutorial's)

  const toPlain = (get: (t: Tensor) => Tensor | null): Record<string, Float32Array> => {
    const out: Record<string, Float32Array> = {};
    for (const [name, t] of named) {
      const m = NAME_MAP[name];
      const src = get(t);
      if (!src) throw new Error(`${name} has no gradient`);
      let v = src.toArray();
      if (m.transpose) v = transpose(v, m.transpose[1], m.transpose[0]);
      out[m.plain] = v;
    }
    return out;
  };

  return {
    describe: 'bnCnn() + optim.SGD(lr 0.001) through the public API (record, backward, tidy)',
    model,
    step(x, labels) {
      kg.tidy(() => {
        opt.zeroGrad();
        forwardLoss(x, labels).backward();
        opt.step();
      });
    },
    lossAndGrads(x, labels) {
      return kg.tidy(() => {
        opt.zeroGrad();
        const loss = forwardLoss(x, labels);
        const total = loss.toArray().reduce((a, b) => a + b, 0);
        loss.backward();
        return { loss: total, grads: toPlain((t) => t.grad) };
      });
    },
    update() {
      opt.step();
    },
    params() {
      return toPlain((t) => t);
    },
    infer(x) {
      model.eval();
      try {
        return kg.tidy(() => model.forward(x));
      } finally {
        model.train();
      }
    },
    setRunning(stats) {
      for (const [name, t] of model.namedBuffers()) {
        const m = /^bn(\d)\.running(Mean|Var)$/.exec(name);
        if (!m) continue;
        const src = kg.tensor(stats[`${m[2] === 'Mean' ? 'mean' : 'var'}${m[1]}`], t.shape, { device: o.device });
        t.copy_(src);
        src.dispose();
      }
      // A loaded state counts as "statistics ready" (no first-batch copy); this is the same for
      // timing, so nothing else is needed here.
    },
    dispose() {
      opt.zeroGrad();
      opt.dispose();
      model.dispose();
    },
  };
}

