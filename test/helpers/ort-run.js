// Runs an ONNX model with onnxruntime-node in a process of its own: under jest, the typed arrays
// the native runtime returns come from another realm than the test's, and onnxruntime-common's
// `instanceof Float32Array` checks reject them.
//   node ort-run.js MODEL.onnx N,C,H,W < input.f32  ->  stdout: JSON line of dims, then the floats
const fs = require('fs');
const ort = require('onnxruntime-node');

async function main() {
  const [file, dimsArg] = process.argv.slice(2);
  const dims = dimsArg.split(',').map(Number);
  const raw = fs.readFileSync(0);
  const data = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length));
  const session = await ort.InferenceSession.create(file, { intraOpNumThreads: 1, graphOptimizationLevel: 'disabled' });
  const out = (await session.run({ input: new ort.Tensor('float32', data, dims) })).output;
  process.stdout.write(JSON.stringify(out.dims) + '\n');
  process.stdout.write(Buffer.from(out.data.buffer, out.data.byteOffset, out.data.byteLength));
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack ? e.stack : e));
  process.exit(1);
});
