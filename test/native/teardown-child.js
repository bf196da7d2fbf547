// Starts worker threads that run kernels in a loop and ends them at random moments: terminate(),
// a worker running out of its heap cap (resourceLimits), and finally process.exit while some
// still compute. The process must exit with status 0: an error thrown inside the addon while a
// worker's environment goes away must never abort it.
//
// usage: node teardown-child.js ROUNDS
'use strict';
const path = require('path');
const { Worker } = require('worker_threads');

const root = path.join(__dirname, '..', '..');
const rounds = Number(process.argv[2]);
const workerData = { bindings: require.resolve('bindings', { paths: [root] }), root };

// Each pass allocates, runs kernels, makes the binding throw, reads back and disposes; `hoard`
// grows until the heap cap (when there is one) stops the worker.
const script = `
const { workerData } = require('worker_threads');
const native = require(workerData.bindings)({ bindings: 'kernelgrad', module_root: workerData.root });
const hoard = [];
for (;;) {
  const a = new native.Storage(0, 4096), b = new native.Storage(0, 4096), c = new native.Storage(0, 4096);
  native.fill(a, 1);
  native.fill(b, 2);
  native.gemm(false, false, 64, 64, 64, 1, a, b, 0, c);
  native.reluForward(c, a);
  try { native.gemm(false, false, 3, 3, 3, 1, a, b, 0, c); } catch (e) {}
  c.read();
  a.dispose();
  hoard.push(new native.Storage(0, 16), new Array(64).fill(hoard.length));
  if (!workerData.capped && hoard.length > 2000) hoard.length = 0;
}
`;

function start(capped) {
  const w = new Worker(script, {
    eval: true,
    workerData: { ...workerData, capped },
    resourceLimits: capped ? { maxOldGenerationSizeMb: 8, maxYoungGenerationSizeMb: 2 } : undefined,
  });
  w.on('error', () => {}); // ERR_WORKER_OUT_OF_MEMORY, expected for the capped ones
  return w;
}

async function round(i) {
  const w = start(i % 5 === 0);
  await new Promise((resolve) => setTimeout(resolve, Math.random() * 25));
  await w.terminate();
}

(async () => {
  for (let i = 0; i < rounds; i += 2) await Promise.all([round(i), round(i + 1)]);
  for (let i = 0; i < 4; i++) start(false);
  setTimeout(() => process.exit(0), 30);
})();
