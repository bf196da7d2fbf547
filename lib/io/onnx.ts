// Export of a Sequential model to ONNX (https://onnx.ai), to run it with onnxruntime or any other
// ONNX runtime: train here, deploy anywhere. Opset 13, float32, NCHW, input "input" of shape
// (batch, ...inputShape) with a symbolic batch dimension, output "output".
//
//   Conv2d     -> Conv (pads, strides, group when not 1), bias as its third input
//   BatchNorm  -> BatchNormalization in inference mode: the running mean and variance as stored
//                 (both sides compute gamma * (x - mean) / sqrt(var + eps) + beta, so our biased
//                 running variance is exactly what the node expects), eps as `epsilon`
//   ReLU       -> Relu
//   AvgPool2d  -> AveragePool (floor, no padding, like ours)
//   Flatten    -> Flatten (axis 1)
//   Linear     -> Gemm (transB: our weight is (out, in))
//
// Nested Sequentials are inlined. Any other module is refused with an error naming it.
import { ReLU } from '../nn/activation';
import { BatchNorm } from '../nn/batchnorm';
import { Conv2d } from '../nn/conv2d';
import { Flatten } from '../nn/flatten';
import { Linear } from '../nn/linear';
import { Module } from '../nn/module';
import { AvgPool2d } from '../nn/pooling';
import { Sequential } from '../nn/sequential';
import { describe, describeItems, readOptions } from '../options';
import type { Tensor } from '../tensor';
import { writeFileAtomic } from './atomic';
import { Message } from './protobuf';

export interface ExportOnnxOptions {
  /** The shape of one input sample, without the batch dimension: e.g. [1, 28, 28] for MNIST. */
  inputShape: number[];
  /** Name of the graph (default 'kernelgrad'). */
  graphName?: string;
}

const FN = 'kg.io.exportOnnx';
const OPSET = 13;
/** ONNX IR version 7 is the one that goes with opset 13 (ONNX 1.8). */
const IR_VERSION = 7;
const FLOAT = 1; // TensorProto.DataType.FLOAT
const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_INTS = 7;

type Attr = { name: string; f: number } | { name: string; i: number } | { name: string; ints: number[] };

interface Graph {
  nodes: Message[];
  initializers: Message[];
  /** The value flowing out of the last node, and its shape per sample (batch excluded). */
  current: string;
  shape: number[];
}

/**
 * Writes `model` as an ONNX file (atomically) for inputs of shape (batch, ...inputShape). The
 * exported graph is the model in inference mode whatever its current mode (batch norm with its
 * running statistics). Returns the encoded bytes' length.
 */
export function exportOnnx(model: Module, file: string, options: ExportOnnxOptions): number {
  if (typeof file !== 'string' || file === '') throw new TypeError(`${FN}: file must be a non-empty path string, got ${describe(file)}`);
  const bytes = encodeOnnx(model, options);
  writeFileAtomic(file, bytes);
  return bytes.length;
}

/** The ONNX model as bytes (what `exportOnnx` writes). */
export function encodeOnnx(model: Module, options: ExportOnnxOptions): Uint8Array {
  if (!(model instanceof Module)) throw new TypeError(`${FN}: model must be a kg.nn.Module, got ${describe(model)}`);
  if (options === undefined) throw new TypeError(`${FN}: options { inputShape } are required, e.g. { inputShape: [1, 28, 28] }`);
  const opts = readOptions(options, FN, ['inputShape', 'graphName']);
  const inputShape = opts.inputShape;
  if (!Array.isArray(inputShape) || inputShape.length === 0 || !inputShape.every((d) => Number.isSafeInteger(d) && d >= 1)) {
    throw new TypeError(`${FN}: inputShape must be a non-empty array of positive integers (one sample, no batch dimension), got ${describeItems(inputShape)}`);
  }
  const graphName = opts.graphName ?? 'kernelgrad';
  if (typeof graphName !== 'string') throw new TypeError(`${FN}: graphName must be a string, got ${describe(graphName)}`);

  const g: Graph = { nodes: [], initializers: [], current: 'input', shape: [...inputShape] };
  const layers = flattenSequential(model, '');
  layers.forEach(([name, m], i) => addLayer(g, name || String(i), m, i === layers.length - 1 ? 'output' : undefined));
  if (g.current !== 'output') g.nodes.push(node('Identity', [g.current], ['output'], 'output'));

  const graph = new Message();
  for (const n of g.nodes) graph.message(1, n);
  graph.string(2, graphName);
  for (const t of g.initializers) graph.message(5, t);
  graph.message(11, valueInfo('input', inputShape));
  graph.message(12, valueInfo('output', g.shape));

  return new Message()
    .int(1, IR_VERSION)
    .string(2, 'kernelgrad') // producer_name
    .message(7, graph)
    .message(8, new Message().string(1, '').int(2, OPSET))
    .toBytes();
}

/** The leaves of nested Sequentials, with dotted names. */
function flattenSequential(m: Module, prefix: string): Array<[string, Module]> {
  if (!(m instanceof Sequential)) return [[prefix, m]];
  return m.children().flatMap(([name, child]) => flattenSequential(child, prefix ? `${prefix}.${name}` : name));
}

function addLayer(g: Graph, name: string, m: Module, outName: string | undefined): void {
  const out = outName ?? name;
  const push = (op: string, inputs: string[], shape: number[], attrs: Attr[] = []) => {
    g.nodes.push(node(op, [g.current, ...inputs], [out], name, attrs));
    g.current = out;
    g.shape = shape;
  };
  const param = (suffix: string, t: Tensor) => {
    const full = `${name}.${suffix}`;
    g.initializers.push(tensorProto(full, t));
    return full;
  };
  const where = `layer '${name}' (${String(m)})`;
  const s = g.shape;

  if (m instanceof Conv2d) {
    if (s.length !== 3 || s[0] !== m.inChannels) {
      throw new RangeError(`${FN}: ${where} takes (batch, ${m.inChannels}, h, w), but gets (batch, ${s.join(', ')}); check inputShape`);
    }
    const [kh, kw] = m.kernelSize;
    const [sh, sw] = pairOf(m.stride);
    const [ph, pw] = pairOf(m.padding);
    const oh = Math.floor((s[1] + 2 * ph - kh) / sh) + 1;
    const ow = Math.floor((s[2] + 2 * pw - kw) / sw) + 1;
    if (oh < 1 || ow < 1) throw new RangeError(`${FN}: ${where}: its ${kh}x${kw} kernel does not fit the ${s[1]}x${s[2]} input (padding ${ph}x${pw})`);
    const inputs = [param('weight', m.weight)];
    if (m.bias) inputs.push(param('bias', m.bias));
    const attrs: Attr[] = [
      { name: 'kernel_shape', ints: [kh, kw] },
      { name: 'pads', ints: [ph, pw, ph, pw] },
      { name: 'strides', ints: [sh, sw] },
    ];
    if (m.groups !== 1) attrs.push({ name: 'group', i: m.groups });  // ONNX's default is 1
    push('Conv', inputs, [m.outChannels, oh, ow], attrs);
  } else if (m instanceof BatchNorm) {
    if (s[0] !== m.numFeatures || s.length > 3) {
      throw new RangeError(`${FN}: ${where} takes (batch, ${m.numFeatures}) or (batch, ${m.numFeatures}, h, w), but gets (batch, ${s.join(', ')})`);
    }
    push('BatchNormalization', [param('gamma', m.gamma), param('beta', m.beta), param('runningMean', m.runningMean), param('runningVar', m.runningVar)], s, [
      { name: 'epsilon', f: m.eps },
    ]);
  } else if (m instanceof ReLU) {
    push('Relu', [], s);
  } else if (m instanceof AvgPool2d) {
    if (s.length !== 3) throw new RangeError(`${FN}: ${where} takes (batch, c, h, w), but gets (batch, ${s.join(', ')})`);
    const [kh, kw] = pairOf(m.kernelSize);
    const [sh, sw] = pairOf(m.stride);
    if (kh > s[1] || kw > s[2]) throw new RangeError(`${FN}: ${where}: its ${kh}x${kw} window does not fit the ${s[1]}x${s[2]} input`);
    const oh = Math.floor((s[1] - kh) / sh) + 1;
    const ow = Math.floor((s[2] - kw) / sw) + 1;
    push('AveragePool', [], [s[0], oh, ow], [
      { name: 'kernel_shape', ints: [kh, kw] },
      { name: 'strides', ints: [sh, sw] },
    ]);
  } else if (m instanceof Flatten) {
    push('Flatten', [], [s.reduce((a, b) => a * b, 1)], [{ name: 'axis', i: 1 }]);
  } else if (m instanceof Linear) {
    if (s.length !== 1 || s[0] !== m.inFeatures) {
      throw new RangeError(`${FN}: ${where} takes (batch, ${m.inFeatures}), but gets (batch, ${s.join(', ')}); add a Flatten or check inputShape`);
    }
    const inputs = [param('weight', m.weight)];
    if (m.bias) inputs.push(param('bias', m.bias));
    push('Gemm', inputs, [m.outFeatures], [{ name: 'transB', i: 1 }]);
  } else {
    throw new TypeError(`${FN}: cannot export ${where}: a ${m.constructor.name} has no ONNX translation (supported: Conv2d, BatchNorm, ReLU, AvgPool2d, Flatten, Linear, Sequential)`);
  }
}

function pairOf(v: number | [number, number]): [number, number] {
  return typeof v === 'number' ? [v, v] : [v[0], v[1]];
}

function node(op: string, inputs: string[], outputs: string[], name: string, attrs: Attr[] = []): Message {
  const n = new Message();
  for (const i of inputs) n.string(1, i);
  for (const o of outputs) n.string(2, o);
  n.string(3, name).string(4, op);
  for (const a of attrs) {
    const m = new Message().string(1, a.name);
    if ('f' in a) m.float(2, a.f).int(20, ATTR_FLOAT);
    else if ('i' in a) m.int(3, a.i).int(20, ATTR_INT);
    else m.packedInts(8, a.ints).int(20, ATTR_INTS);
    n.message(5, m);
  }
  return n;
}

function tensorProto(name: string, t: Tensor): Message {
  const values = t.toArray();
  const raw = new Uint8Array(values.length * 4);
  // raw_data is little-endian whatever the machine (ONNX's rule).
  const view = new DataView(raw.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i], true);
  return new Message().packedInts(1, t.shape).int(2, FLOAT).string(8, name).bytes(9, raw);
}

/** A float tensor's ValueInfoProto with the symbolic batch dimension first. */
function valueInfo(name: string, perSample: readonly number[]): Message {
  const shape = new Message().message(1, new Message().string(2, 'batch'));
  for (const d of perSample) shape.message(1, new Message().int(1, d));
  const tensorType = new Message().int(1, FLOAT).message(2, shape);
  return new Message().string(1, name).message(2, new Message().message(1, tensorType));
}
