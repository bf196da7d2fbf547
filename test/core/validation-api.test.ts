// The rest of the public surface: data, optimizers, files and training helpers reject bad
// arguments and option objects with the function named.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as kg from '../../lib';

const dataset = { inputs: new Float32Array(8), labels: [0, 1], count: 2, sampleShape: [1, 2, 2] };

describe('kg.data', () => {
  test.each<[string, () => unknown, ErrorConstructor, RegExp]>([
    ['DataLoader with an unknown option', () => new kg.data.DataLoader(dataset, { batch: 2 } as never), TypeError,
      /^kg\.data\.DataLoader: unknown option 'batch' \(known options: batchSize, shuffle, seed, dropLast, device, limit, transforms\)/],
    ['DataLoader with null options', () => new kg.data.DataLoader(dataset, null as never), TypeError, /^kg\.data\.DataLoader: options must be an object, got null/],
    ['DataLoader with batchSize 0', () => new kg.data.DataLoader(dataset, { batchSize: 0 }), RangeError, /^kg\.data\.DataLoader: batchSize must be a positive integer, got 0/],
    ['DataLoader with shuffle as a string', () => new kg.data.DataLoader(dataset, { shuffle: 'yes' } as never), TypeError, /^kg\.data\.DataLoader: shuffle must be true or false, got "yes"/],
    ['DataLoader with an unknown device', () => new kg.data.DataLoader(dataset, { device: 'tpu' as never }), TypeError, /^kg\.data\.DataLoader: unknown device "tpu"/],
    ['DataLoader without a dataset', () => new kg.data.DataLoader(null as never), TypeError, /^kg\.data\.DataLoader: dataset must be an object/],
    ['DataLoader with Float64 inputs', () => new kg.data.DataLoader({ ...dataset, inputs: new Float64Array(8) } as never), TypeError, /^kg\.data\.DataLoader: dataset\.inputs must be a Float32Array, got a Float64Array/],
    ['DataLoader with a bad sampleShape', () => new kg.data.DataLoader({ ...dataset, sampleShape: [1, -2] }), TypeError, /^kg\.data\.DataLoader: dataset\.sampleShape must be an array of non-negative integers, got -2 at index 1/],
    ['subset with n 0', () => kg.data.subset(dataset, 0), RangeError, /^kg\.data\.subset: n must be a positive integer, got 0/],
    ['loadMnistSplit with an unknown split', () => kg.data.loadMnistSplit('valid' as never), TypeError, /^kg\.data\.loadMnistSplit: split must be 'train' or 'test', got "valid"/],
    ['loadMnistSplit with an unknown option', () => kg.data.loadMnistSplit('test', { limt: 3 } as never), TypeError, /^kg\.data\.loadMnistSplit: unknown option 'limt' \(known options: dir, limit\)/],
    ['loadMnistSplit with limit 0', () => kg.data.loadMnistSplit('test', { limit: 0 }), RangeError, /^kg\.data\.loadMnistSplit: limit must be a positive integer, got 0/],
    ['numBatches with batchSize 0 (an epoch that would never end)', () => kg.data.numBatches({ count: 10, batchSize: 0, shuffle: false, seed: 0, dropLast: false }), RangeError,
      /^kg\.data\.numBatches: plan\.batchSize must be a positive integer, got 0/],
    ['epochBatches with batchSize 0', () => kg.data.epochBatches({ count: 10, batchSize: 0, shuffle: false, seed: 0, dropLast: false }, 0), RangeError, /^kg\.data\.epochBatches: plan\.batchSize/],
    ['permutation of -1', () => kg.data.permutation(-1, 0), RangeError, /^kg\.data\.permutation: n must be a non-negative integer, got -1/],
    ['gather of an index past the end (would read zeros and NaN labels)', () => new kg.data.DataLoader(dataset, { device: 'cpu' }).gather(new Int32Array([0, 2])), RangeError,
      /^kg\.data\.DataLoader\.gather: index 2 at position 1 is outside the dataset of 2 examples/],
    ['gather of a plain array', () => new kg.data.DataLoader(dataset, { device: 'cpu' }).gather([0] as never), TypeError, /^kg\.data\.DataLoader\.gather: indices must be an Int32Array/],
    ['mnistDataset of null', () => kg.data.mnistDataset(null as never), TypeError, /^kg\.data\.mnistDataset: split must be a split from kg\.data\.loadMnist, got null/],
    ['loadMnist with an unknown option', () => kg.data.loadMnist({ limit: 3 } as never), TypeError, /^kg\.data\.loadMnist: unknown option 'limit' \(known options: dir, trainLimit, testLimit\)/],
  ])('%s', (_, make, type, message) => {
    expect(make).toThrow(type);
    expect(make).toThrow(message);
  });
});

describe('kg.optim, kg.io and kg.train', () => {
  const params = () => [kg.zeros([2], { device: 'cpu' }).attachGrad()];
  test.each<[string, () => unknown, ErrorConstructor, RegExp]>([
    ['SGD with an unknown option', () => new kg.optim.SGD(params(), { lr: 0.1, nesterof: true } as never), TypeError,
      /^kg\.optim\.SGD: unknown option 'nesterof' \(known options: lr, momentum, nesterov, weightDecay, noDecay\)/],
    ['SGD with null options', () => new kg.optim.SGD(params(), null as never), TypeError, /^kg\.optim\.SGD: options must be an object, got null/],
    ['loadCheckpoint with an unknown option', () => kg.io.loadCheckpoint('x.safetensors', { strict: true } as never), TypeError, /^kg\.io\.loadCheckpoint: unknown option 'strict' \(known options: device\)/],
    ['loadCheckpoint of a number', () => kg.io.loadCheckpoint(3 as never), TypeError, /^kg\.io\.loadCheckpoint: file must be a path string, got 3/],
    ['bnCnn with an unknown option', () => kg.models.bnCnn({ width: 64 } as never), TypeError,
      /^kg\.models\.bnCnn: unknown option 'width' \(known options: device, seed, hidden, weightScale, bnMomentum, bnEps, initRunning\)/],
    ['bnCnn with hidden 0', () => kg.models.bnCnn({ hidden: 0 }), RangeError, /^kg\.models\.bnCnn: hidden must be a positive integer, got 0/],
    ['batchNorm with an unknown option', () => kg.nn.functional.batchNorm(kg.ones([2, 3]), kg.ones([3]), kg.zeros([3]), { training: true, momentun: 0.1 } as never), TypeError,
      /batchNorm: unknown option 'momentun' \(known options: training, runningMean, runningVar, momentum, runningVariance, averaging, numBatchesTracked, eps\)/],
    ['tidy of a number', () => kg.tidy(3 as never), TypeError, /^kg\.tidy: fn must be a function, got number/],
    ['Sequential of a tensor', () => new kg.nn.Sequential(kg.ones([2]) as never), TypeError, /^kg\.nn\.Sequential: '0' is not a Module, got a Tensor/],
    ['Sequential.at out of range', () => new kg.nn.Sequential(new kg.nn.ReLU()).at(3), RangeError, /^kg\.nn\.Sequential\.at: no module 3 \(1 modules: 0\)/],
    ['trainStep with an array as x', () => kg.train.trainStep(new kg.nn.ReLU(), new kg.optim.SGD(params(), { lr: 1 }), [1, 2] as never, [0]), TypeError,
      /^kg\.train\.trainStep: x must be a Tensor, got an array of length 2/],
    ['evaluateAccuracy without a loader', () => kg.train.evaluateAccuracy(new kg.nn.ReLU(), undefined as never), TypeError, /^kg\.train\.evaluateAccuracy: loader must be a kg\.data\.DataLoader, got undefined/],
    ['encodeSafetensors of null', () => kg.io.encodeSafetensors(null as never), TypeError, /^kg\.io\.encodeSafetensors: tensors must be an object/],
    ['encodeSafetensors of a number tensor', () => kg.io.encodeSafetensors({ w: 3 } as never), TypeError, /^kg\.io\.encodeSafetensors: tensor 'w' must be a Tensor or \{ shape, data: Float32Array \}, got 3/],
    ['decodeSafetensors of a string', () => kg.io.decodeSafetensors('abc' as never), TypeError, /^kg\.io\.decodeSafetensors: buf must be a Uint8Array or Buffer, got "abc"/],
    ['writeFileAtomic of a number', () => kg.io.writeFileAtomic(path.join(os.tmpdir(), 'kg-never-written'), 42 as never), TypeError,
      /^kg\.io\.writeFileAtomic: data must be a string, a Uint8Array or an array of them, got 42/],
    ['a device that is not a string', () => kg.zeros([1], { device: {} as never }), TypeError, /^kg\.zeros: device must be 'cpu' or 'cuda', got an object/],
    ['Module.to an unknown device', () => new kg.nn.Linear(2, 2).to('tpu' as never), TypeError, /^Linear\.to: unknown device "tpu"/],
    ['Conv2d with a three-item kernel', () => new kg.nn.Conv2d(1, 1, [3, 3, 3] as never), TypeError, /^kg\.nn\.Conv2d: kernelSize must be an integer >= 1 or a pair \[h, w\] of them, got \[3, 3, 3\]/],
    ['Sequential of bad pairs', () => new kg.nn.Sequential([['a', new kg.nn.ReLU()], 3] as never), TypeError, /^kg\.nn\.Sequential: entry 1 must be a \[name, module\] pair, got 3/],
    ['saveCheckpoint of a plain object', () => kg.io.saveCheckpoint(path.join(os.tmpdir(), 'kg-never.safetensors'), {} as never), TypeError, /^kg\.io\.saveCheckpoint: model must be a kg\.nn\.Module, got an object/],
    ['saveCheckpoint with array metadata', () => kg.io.saveCheckpoint(path.join(os.tmpdir(), 'kg-never.safetensors'), new kg.nn.ReLU(), ['x'] as never), TypeError, /^kg\.io\.saveCheckpoint: metadata must be an object of strings/],
    ['loadCheckpointInto a plain object', () => kg.io.loadCheckpointInto('x.safetensors', {} as never), TypeError, /^kg\.io\.loadCheckpointInto: model must be a kg\.nn\.Module/],
    ['svgToPng of a number', () => kg.train.svgToPng(3 as never), TypeError, /^kg\.train\.svgToPng: svg must be a string, got 3/],
    ['trainingPlotSpec of null', () => kg.train.trainingPlotSpec(null as never), TypeError, /^kg\.train\.trainingPlotSpec: epochs must be an array/],
    ['AccuracyCounter of null', () => new kg.train.AccuracyCounter().update(null as never, [1]), TypeError, /^kg\.train\.AccuracyCounter\.update: predicted must be an array of class indices, got null/],
    ['formatEpochLine of undefined', () => kg.train.formatEpochLine(undefined as never), TypeError, /^kg\.train\.formatEpochLine: m must be an EpochMetrics object/],
    ['MovingAverage with decay 1', () => new kg.train.MovingAverage(1), RangeError, /^kg\.train\.MovingAverage: decay must be a number in \[0, 1\), got 1/],
    ['a state dict of null', () => new kg.nn.Linear(2, 2).loadStateDict(null as never), TypeError, /^Linear\.loadStateDict: dict must be an object of tensors by name, got null/],
    ['a state dict holding a number', () => new kg.nn.Linear(2, 1, { bias: false }).loadStateDict({ weight: 3 } as never), Error, /^Linear\.loadStateDict: weight is not a Tensor/],
  ])('%s', (_, make, type, message) => {
    expect(make).toThrow(type);
    expect(make).toThrow(message);
  });

  test('writeTrainingPlot checks its options before rendering', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kg-plot-'));
    try {
      await expect(kg.train.writeTrainingPlot([], path.join(dir, 'p'), { svgs: true } as never)).rejects.toThrow(
        /^kg\.train\.writeTrainingPlot: unknown option 'svgs' \(known options: title, svg\)/,
      );
      await expect(kg.train.writeTrainingPlot(null as never, path.join(dir, 'p'))).rejects.toThrow(/^kg\.train\.writeTrainingPlot: epochs must be an array/);
      expect(fs.readdirSync(dir)).toEqual([]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
