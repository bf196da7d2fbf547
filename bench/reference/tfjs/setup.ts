// TensorFlow.js as the CPU reference: the cpu backend (plain JS) and the wasm backend (XNNPACK,
// SIMD; threads are off under Node), and tfjs-node when it is installed (it is not installable from
// the npm registry alone: its install script downloads libtensorflow from elsewhere).
//
// The wasm backend ships no Conv2DBackpropFilter kernel, so a conv net does not train on it as
// shipped. registerWasmFilterGrad() supplies one: the weight gradient of a stride-s conv is itself
// a conv of the transposed input (C as batch, N as channels) with the transposed output gradient
// as the filter, dilated by s. It is checked against the cpu backend's kernel before use.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

export type TfBackend = 'wasm' | 'cpu' | 'tensorflow';
export const TF_IMPL: Record<TfBackend, string> = { wasm: 'tfjs-wasm', cpu: 'tfjs-cpu', tensorflow: 'tfjs-node' };

export interface TfjsInfo {
  backends: TfBackend[];
  versions: Record<string, string>;
  notes: string[];
  /** Implementations that cannot run here, with why (rows of the table). */
  unavailable: { impl: string; note: string }[];
}

let info: TfjsInfo | null = null;

/** Filter gradient for NHWC input via conv2d of transposed tensors (wasm has none of its own). */
function filterGradViaConv(x: tf.Tensor4D, dy: tf.Tensor4D, attrs: Record<string, unknown>): tf.Tensor4D {
  const strides = attrs.strides as number | [number, number];
  const [sh, sw] = typeof strides === 'number' ? [strides, strides] : strides;
  const pad = attrs.pad as 'valid' | 'same' | number | number[][];
  const filterShape = attrs.filterShape as [number, number, number, number];
  if ((attrs.dataFormat ?? 'NHWC') !== 'NHWC') throw new Error('Conv2DBackpropFilter (wasm, supplied): NHWC only');
  const [kh, kw] = filterShape;
  return tf.tidy(() => {
    let xp: tf.Tensor4D = x;
    if (typeof pad === 'number' && pad > 0) xp = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]]);
    else if (Array.isArray(pad)) xp = tf.pad(x, pad as [number, number][]);
    else if (pad === 'same') {
      const [, h, w] = x.shape;
      const [, oh, ow] = dy.shape;
      const ph = Math.max(0, (oh - 1) * sh + kh - h);
      const pw = Math.max(0, (ow - 1) * sw + kw - w);
      xp = tf.pad(x, [[0, 0], [ph >> 1, ph - (ph >> 1)], [pw >> 1, pw - (pw >> 1)], [0, 0]]);
    }
    const xt = tf.transpose(xp, [3, 1, 2, 0]) as tf.Tensor4D; // C, H, W, N
    const dyt = tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D; // OH, OW, N, K: a filter (in = N, out = K)
    let r = tf.conv2d(xt, dyt, 1, 'valid', 'NHWC', [sh, sw]); // C, >=KH, >=KW, K
    if (r.shape[1] !== kh || r.shape[2] !== kw) r = tf.slice(r, [0, 0, 0, 0], [-1, kh, kw, -1]);
    return tf.transpose(r, [1, 2, 0, 3]) as tf.Tensor4D; // KH, KW, C, K
  });
}

export function registerWasmFilterGrad(): void {
  if (tf.getKernel('Conv2DBackpropFilter', 'wasm')) return;
  tf.registerKernel({
    kernelName: 'Conv2DBackpropFilter',
    backendName: 'wasm',
    kernelFunc: ({ inputs, attrs }) => {
      const { x, dy } = inputs as unknown as { x: tf.Tensor4D; dy: tf.Tensor4D };
      return filterGradViaConv(x, dy, attrs as Record<string, unknown>);
    },
  });
}

/** Max |wasm(supplied) - cpu| on a small case, relative to max |cpu|. */
async function selfTestFilterGrad(): Promise<number> {
  const x = [2, 7, 6, 3] as [number, number, number, number];
  const xs = Array.from({ length: x.reduce((a, b) => a * b) }, (_, i) => Math.sin(i * 0.7));
  const dyShape = [2, 5, 4, 4] as [number, number, number, number]; // 3x3 filter, stride 1, valid
  const dys = Array.from({ length: dyShape.reduce((a, b) => a * b) }, (_, i) => Math.cos(i * 0.3));
  const run = async (b: string) => {
    await tf.setBackend(b);
    const r = tf.tidy(() =>
      tf.engine().runKernel('Conv2DBackpropFilter', { x: tf.tensor4d(xs, x), dy: tf.tensor4d(dys, dyShape) }, {
        strides: [1, 1], pad: 'valid', dataFormat: 'NHWC', filterShape: [3, 3, 3, 4],
      }) as tf.Tensor,
    );
    const d = r.dataSync().slice();
    r.dispose();
    return d;
  };
  const a = await run('cpu');
  const b = await run('wasm');
  let m = 0;
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    m = Math.max(m, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(a[i]));
  }
  return a.length === b.length ? m / s : Infinity;
}

export async function initTfjs(): Promise<TfjsInfo> {
  if (info) return info;
  const notes: string[] = [];
  const unavailable: TfjsInfo['unavailable'] = [];
  const backends: TfBackend[] = [];
  // tfjs prints a hint to install tfjs-node on first use; keep the bench output clean.
  const warn = console.warn;
  console.warn = () => {};
  try {
    // tfjs-node, if someone managed to install it.
    try {
      require('@tensorflow/tfjs-node');
      backends.push('tensorflow');
    } catch {
      unavailable.push({ impl: 'tfjs-node', note: 'not installable from the npm registry alone (its install downloads libtensorflow from outside the registry)' });
    }
    registerWasmFilterGrad();
    await tf.setBackend('wasm');
    await tf.ready();
    const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
    const threads = await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT');
    backends.unshift('wasm');
    notes.push(`tfjs-wasm: SIMD ${simd ? 'on' : 'off'}, threads ${threads ? 'on' : 'off (not available under Node)'}; Conv2DBackpropFilter supplied by the bench (conv2d of transposed tensors)`);
    const err = await selfTestFilterGrad();
    if (!(err < 1e-4)) throw new Error(`supplied wasm Conv2DBackpropFilter disagrees with the cpu backend (rel err ${err})`);
    await tf.setBackend('cpu');
    backends.splice(1, 0, 'cpu');
  } finally {
    console.warn = warn;
  }
  const wasmPkg = require('@tensorflow/tfjs-backend-wasm/package.json') as { version: string };
  const versions: Record<string, string> = { '@tensorflow/tfjs': tf.version.tfjs, '@tensorflow/tfjs-backend-wasm': wasmPkg.version };
  info = { backends, versions, notes, unavailable };
  return info;
}

export async function useBackend(b: TfBackend): Promise<void> {
  if (tf.getBackend() !== b) {
    const ok = await tf.setBackend(b);
    if (!ok) throw new Error(`tfjs backend ${b} did not initialize`);
  }
  await tf.ready();
}

export { tf };
