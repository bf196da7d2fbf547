// The addon keeps its state per environment, so it loads and runs in worker threads as well as on
// the main thread, several at a time.
import * as path from 'path';
import { Worker } from 'worker_threads';

const script = `
const { parentPort, workerData } = require('worker_threads');
const native = require(workerData.bindings)('kernelgrad');
const x = new native.Storage(0, 4);
x.write(Float32Array.from([-1, 2, -3, 4]));
const y = new native.Storage(0, 4);
native.reluForward(x, y);
parentPort.postMessage(Array.from(y.read()));
`;

function runWorker(): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const bindings = require.resolve('bindings', { paths: [path.join(__dirname, '..', '..')] });
    const w = new Worker(script, { eval: true, workerData: { bindings } });
    w.once('message', resolve);
    w.once('error', reject);
  });
}

test('kernels run in several worker threads at once', async () => {
  const results = await Promise.all([runWorker(), runWorker(), runWorker()]);
  for (const r of results) expect(r).toEqual([0, 2, 0, 4]);
});
