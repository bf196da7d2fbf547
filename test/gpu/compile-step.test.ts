// kg.train.compileStep on CUDA: a captured and replayed step against the eager trainStep (the
// parameters, the momentum and the running statistics after several steps, with a learning rate
// that changes every step), the work one replayed step issues (kg.cuda.counters), the rules of
// capture (a host read inside the step is refused, a new batch shape is captured anew), and the
// batch-norm check that reports a non-finite batch a step late instead of syncing per layer.
import * as kg from '../../lib';
import { ArrayDataset, DataLoader } from '../../lib/data/loader';
import { native } from '../../lib/native';
import { fit } from '../../lib/train/loop';
import { describeGpu, normal, sized } from './helpers';

const BATCH = sized(16, 4);
const STEPS = 4;
const lrAt = (s: number) => 0.01 * [1, 0.5, 2, 0.25, 1, 1][s];

function batch(s: number, n = BATCH): { x: kg.Tensor; y: Int32Array } {
  const x = kg.tensor(normal(n * 28 * 28, 100 + s), [n, 1, 28, 28], { device: 'cuda' });
  const y = Int32Array.from({ length: n }, (_, i) => (i * 7 + s * 3) % 10);
  return { x, y };
}

function setup() {
  const model = kg.models.bnCnn({ device: 'cuda', seed: 5, hidden: 24 });
  const optimizer = new kg.optim.SGD(model.parameters(), { lr: lrAt(0), momentum: 0.9, weightDecay: 1e-3 });
  model.train();
  return { model, optimizer };
}

/** Every parameter, then every buffer (running statistics), as host arrays. */
function state(model: kg.nn.Module): Float32Array[] {
  return [...model.parameters(), ...model.namedBuffers().map(([, t]) => t)].map((t) => t.toArray());
}

function worstRelative(a: Float32Array[], b: Float32Array[]): number {
  let worst = 0;
  a.forEach((x, k) =>
    x.forEach((v, i) => {
      const w = b[k][i];
      worst = Math.max(worst, Math.abs(v - w) / Math.max(Math.abs(w), 1e-3));
    }),
  );
  return worst;
}

function delta(before: kg.cuda.CudaCounters, after: kg.cuda.CudaCounters, steps: number) {
  const per = (k: keyof kg.cuda.CudaCounters) => (after[k] - before[k]) / steps;
  return { kernelLaunches: per('kernelLaunches'), graphReplays: per('graphReplays'), graphKernels: per('graphKernels'), hostSyncs: per('hostSyncs') };
}

describeGpu('kg.train.compileStep on CUDA', () => {
  test('replayed steps give the eager steps\' parameters, momentum and running statistics', () => {
    const eager = setup();
    const eagerLosses: number[] = [];
    for (let s = 0; s < STEPS; s++) {
      eager.optimizer.lr = lrAt(s);
      const { x, y } = batch(s);
      eagerLosses.push(kg.train.trainStep(eager.model, eager.optimizer, x, y).meanLoss * BATCH);
      x.dispose();
    }

    const compiled = setup();
    const step = kg.train.compileStep({ model: compiled.model, optimizer: compiled.optimizer });
    expect(step.mode).toBe('graph');
    const losses: Array<number | null> = [];
    for (let s = 0; s < STEPS; s++) {
      compiled.optimizer.lr = lrAt(s);
      const { x, y } = batch(s);
      losses.push(step(x, y));
      x.dispose();
    }
    losses.push(step.flush());
    expect(losses[0]).toBeNull();
    const late = losses.slice(1) as number[];
    late.forEach((l, s) => expect(Math.abs(l - eagerLosses[s])).toBeLessThanOrEqual(1e-5 * Math.abs(eagerLosses[s])));
    // The same kernels in the same order: equal to fp32 rounding (in practice, bitwise).
    expect(worstRelative(state(compiled.model), state(eager.model))).toBeLessThan(1e-5);
    step.dispose();
  });

  test('a replayed step: one graph launch, at most 2 other launches, no host sync', () => {
    const { model, optimizer } = setup();
    const step = kg.train.compileStep({ model, optimizer });
    const batches = Array.from({ length: 5 }, (_, s) => batch(s));
    step(batches[0].x, batches[0].y); // eager warm-up
    step(batches[1].x, batches[1].y); // capture, then the first replay
    const before = kg.cuda.counters();
    const memory = kg.cuda.memoryStats();
    for (let s = 2; s < 5; s++) step(batches[s].x, batches[s].y);
    const per = delta(before, kg.cuda.counters(), 3);
    step.flush();
    // Replays take their memory from the graph's pool: no new block, nothing more held.
    expect(kg.cuda.memoryStats().numMallocs).toBe(memory.numMallocs);
    expect(kg.cuda.memoryStats().allocated).toBe(memory.allocated);
    expect(per.graphReplays).toBe(1);
    expect(per.kernelLaunches).toBeLessThanOrEqual(2);
    expect(per.hostSyncs).toBe(0);
    // Forward, loss, backward, the running statistics and the update of the tutorial's network.
    expect(per.graphKernels).toBeGreaterThan(0);
    expect(per.graphKernels).toBeLessThanOrEqual(30);
    console.log(`compiled bnCnn step at batch ${BATCH}: ${per.graphKernels} graph kernels, ${per.kernelLaunches} other launches, ${per.hostSyncs} host syncs`);
    for (const b of batches) b.x.dispose();
    step.dispose();
  });

  test('a batch of another shape is captured once more and trains as eagerly', () => {
    const { model, optimizer } = setup();
    const step = kg.train.compileStep({ model, optimizer });
    const shapes = [BATCH, BATCH, BATCH - 1, BATCH, BATCH - 1];
    const before = kg.cuda.counters();
    shapes.forEach((n, s) => {
      const { x, y } = batch(s, n);
      step(x, y);
      x.dispose();
    });
    const last = step.flush();
    expect(Number.isFinite(last)).toBe(true);
    const after = kg.cuda.counters();
    expect(after.graphReplays - before.graphReplays).toBe(4); // all but the eager first step
    step.dispose();
  });

  test('a host read inside the step spoils the capture, with an error that says so', () => {
    const { model, optimizer } = setup();
    const step = kg.train.compileStep({
      model,
      optimizer,
      loss: (out, y) => {
        const l = kg.nn.functional.softmaxCrossEntropy(out, y, { reduction: 'sum' });
        if (!Number.isFinite(l.item())) throw new Error('unreachable');
        return l;
      },
    });
    const a = batch(0);
    const b = batch(1);
    step(a.x, kg.tensor(Float32Array.from(a.y), [BATCH], { device: 'cuda' })); // eager: the read is allowed
    expect(() => step(b.x, kg.tensor(Float32Array.from(b.y), [BATCH], { device: 'cuda' }))).toThrow(
      /could not be captured as a CUDA graph.*cudaErrorStreamCapture(Unsupported|Invalidated)/s,
    );
    // The stream works again.
    expect(kg.add(a.x, a.x).toArray()[0]).toBeCloseTo(2 * a.x.toArray()[0], 5);
    step.dispose();
  });

  test('a synchronize inside the step spoils the capture too', () => {
    const { model, optimizer } = setup();
    const step = kg.train.compileStep({
      model,
      optimizer,
      loss: (out, y) => {
        kg.cuda.synchronize();
        return kg.nn.functional.softmaxCrossEntropy(out, y, { reduction: 'sum' });
      },
    });
    const labels = (s: number) => kg.tensor(Float32Array.from(batch(s).y), [BATCH], { device: 'cuda' });
    step(batch(0).x, labels(0));
    expect(() => step(batch(1).x, labels(1))).toThrow(/could not be captured as a CUDA graph.*cudaErrorStreamCapture/s);
    step.dispose();
  });

  test('a non-finite batch is reported by batch norm a step late, naming the channel', () => {
    const { model, optimizer } = setup();
    const step = kg.train.compileStep({ model, optimizer });
    for (let s = 0; s < 2; s++) step(batch(s).x, batch(s).y);
    const bad = normal(BATCH * 28 * 28, 7);
    bad[3] = NaN;
    const y = batch(0).y;
    step(kg.tensor(bad, [BATCH, 1, 28, 28], { device: 'cuda' }), y); // queued; the previous step was fine
    expect(() => step.flush()).toThrow(kg.NonFiniteError);
    step.dispose();
  });

  test('two failing batch-norm layers in one step: the earlier layer is reported, a step late, with its first failing channel', () => {
    // A NaN in feature 2 makes the first layer fail at channel 2 and, through the linear layer,
    // the second one at every channel: channel 0 of layer 2 comes later than channel 2 of layer 1.
    const model = new kg.nn.Sequential(
      new kg.nn.BatchNorm(3, { device: 'cuda' }), new kg.nn.Linear(3, 4, { seed: 3, device: 'cuda' }),
      new kg.nn.BatchNorm(4, { device: 'cuda' }), new kg.nn.ReLU(), new kg.nn.Linear(4, 3, { seed: 4, device: 'cuda' }),
    );
    const optimizer = new kg.optim.SGD(model.parameters(), { lr: 0.01 });
    const step = kg.train.compileStep({ model, optimizer });
    const labels = Int32Array.from([0, 1, 2, 1, 0]);
    const features = (seed: number) => kg.tensor(normal(15, seed), [5, 3], { device: 'cuda' });
    for (let s = 0; s < 3; s++) step(features(40 + s), labels); // eager, capture, replay
    const bad = normal(15, 50);
    bad[3 * 3 + 2] = NaN; // example 3, feature 2
    expect(Number.isFinite(step(kg.tensor(bad, [5, 3], { device: 'cuda' }), labels))).toBe(true); // the previous step's loss
    expect(() => step.flush()).toThrow(
      new kg.NonFiniteError(
        'batchNorm: channel 2 of batch-norm layer 1 of the step (x [5, 3], eps 0.00001) has a non-finite batch mean: ' +
          "the batch holds NaN or infinite values; found when the step's loss was read, after the step's updates were applied " +
          "(but not to this channel's running statistics)",
      ),
    );
    // The step ran as a replay, and the failing channel kept its running statistics.
    expect(step.mode).toBe('graph');
    const first = model.namedBuffers().find(([name]) => name === '0.runningMean')?.[1] as kg.Tensor;
    expect(Number.isFinite(first.toArray()[2])).toBe(true);
    step.dispose();
  });

  test('a step with more batch-norm channels than the status buffer holds grows it, keeping the words of its earlier layers', () => {
    // 200 + 300 channels: the buffer (256 words at first) grows at the second layer of the first
    // step, whose first layer has already reported a NaN batch.
    const model = new kg.nn.Sequential(
      new kg.nn.Linear(4, 200, { seed: 9, device: 'cuda' }), new kg.nn.BatchNorm(200, { device: 'cuda' }), new kg.nn.ReLU(),
      new kg.nn.Linear(200, 300, { seed: 10, device: 'cuda' }), new kg.nn.BatchNorm(300, { device: 'cuda' }),
      new kg.nn.Linear(300, 3, { seed: 11, device: 'cuda' }),
    );
    const step = kg.train.compileStep({ model, optimizer: new kg.optim.SGD(model.parameters(), { lr: 0.01 }) });
    const bad = normal(12, 70);
    bad[5] = NaN;
    expect(step(kg.tensor(bad, [3, 4], { device: 'cuda' }), Int32Array.from([0, 1, 2]))).toBeNull();
    expect(() => step.flush()).toThrow(/^batchNorm: channel 0 of batch-norm layer 1 of the step \(x \[3, 200\], eps 0\.00001\) has a non-finite batch mean/);
    step.dispose();
  });

  test("cumulative averaging is captured (the count is read on the device) and matches the eager steps", () => {
    const build = () => {
      const model = new kg.nn.Sequential(
        new kg.nn.Conv2d(1, 3, 3, { seed: 6, device: 'cuda' }),
        new kg.nn.BatchNorm(3, { averaging: 'cumulative', convention: 'pytorch', device: 'cuda' }), new kg.nn.ReLU(),
        new kg.nn.Flatten(), new kg.nn.Linear(3 * 4 * 4, 5, { seed: 7, device: 'cuda' }),
        new kg.nn.BatchNorm(5, { averaging: 'cumulative', device: 'cuda' }), new kg.nn.Linear(5, 3, { seed: 8, device: 'cuda' }),
      );
      return { model, optimizer: new kg.optim.SGD(model.parameters(), { lr: 0.02, momentum: 0.9 }) };
    };
    const batches = Array.from({ length: 5 }, (_, s) => ({
      x: kg.tensor(normal(6 * 36, 60 + s), [6, 1, 6, 6], { device: 'cuda' }),
      y: Int32Array.from({ length: 6 }, (_, i) => (i + s) % 3),
    }));
    const eager = build();
    for (const b of batches) kg.train.trainStep(eager.model, eager.optimizer, b.x, b.y);
    const compiled = build();
    const step = kg.train.compileStep(compiled);
    const before = kg.cuda.counters();
    for (const b of batches) step(b.x, b.y);
    step.flush();
    expect(kg.cuda.counters().graphReplays - before.graphReplays).toBe(4); // all but the eager first step
    const tracked = compiled.model.namedBuffers().filter(([name]) => name.endsWith('numBatchesTracked'));
    expect(tracked.map(([, t]) => t.item())).toEqual([5, 5]);
    expect(worstRelative(state(compiled.model), state(eager.model))).toBeLessThan(1e-5);
    step.dispose();
  });

  test('fit() trains through the compiled step by default, as its eager loop does', async () => {
    const count = 11; // two batches of 4 and a last one of 3: two captures
    const r = new kg.Random(9);
    const data: ArrayDataset = {
      inputs: Float32Array.from({ length: count * 16 }, () => r.uniform()),
      labels: Array.from({ length: count }, (_, i) => i % 3),
      count,
      sampleShape: [1, 4, 4],
    };
    const run = async (compile: boolean) => {
      const model = new kg.nn.Sequential(new kg.nn.Flatten(), new kg.nn.Linear(16, 6, { seed: 1, device: 'cuda' }), new kg.nn.BatchNorm(6, { device: 'cuda' }), new kg.nn.ReLU(), new kg.nn.Linear(6, 3, { seed: 2, device: 'cuda' }));
      const optimizer = new kg.optim.SGD(model.parameters(), { lr: 0.05, momentum: 0.9 });
      const before = kg.cuda.counters();
      const metrics = await fit(model, {
        optimizer,
        schedule: (n) => 0.05 / (1 + n),
        train: new DataLoader(data, { batchSize: 4, device: 'cuda' }),
        test: new DataLoader(data, { batchSize: 11, device: 'cuda' }),
        epochs: 2,
        compile,
        progress: false,
        log: () => {},
      });
      const replays = kg.cuda.counters().graphReplays - before.graphReplays;
      return { metrics, replays, state: state(model) };
    };
    const compiled = await run(true);
    const eager = await run(false);
    expect(compiled.replays).toBe(5); // 6 steps, the first eager
    expect(eager.replays).toBe(0);
    compiled.metrics.forEach((m, e) => expect(Math.abs(m.loss - eager.metrics[e].loss)).toBeLessThanOrEqual(1e-5 * Math.abs(eager.metrics[e].loss)));
    expect(worstRelative(compiled.state, eager.state)).toBeLessThan(1e-5);
  });

  test('the raw graph and readback bindings refuse what is not theirs', () => {
    const readback = native.cudaReadbackCreate(2);
    expect(() => native.cudaGraphReplay(readback)).toThrow(/cudaGraphReplay: expected a CUDA graph/);
    expect(() => native.cudaGraphReplay({} as never)).toThrow(/expected a CUDA graph/);
    expect(() => native.cudaReadbackEnqueue(readback, kg.zeros([3], { device: 'cuda' }).storage, 0)).toThrow(/do not fit/);
    expect(() => native.cudaReadbackEnqueue(readback, kg.zeros([2], { device: 'cpu' }).storage, 0)).toThrow(/must be on the GPU/);
    native.cudaReadbackEnqueue(readback, kg.full([2], 3, { device: 'cuda' }).storage, 0);
    expect(Array.from(native.cudaReadbackRead(readback))).toEqual([3, 3]);
    native.cudaReadbackDispose(readback);
    expect(() => native.cudaReadbackRead(readback)).toThrow(/was disposed/);
    expect(() => native.cudaCaptureEnd()).toThrow(/cudaStreamEndCapture failed: cudaErrorIllegalState/);
  });
});
