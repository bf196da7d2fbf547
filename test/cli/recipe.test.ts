// `kernelgrad train --recipe fast`: the MNIST race's recipe (bench/cases/race.ts) as one option.
// A short run on the first images shows the recipe's settings in the log, metrics.json and the
// checkpoint; options that contradict the recipe are refused, those that tune it win.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { applyRecipe, RECIPES } from '../../lib/cli/recipes';
import { cli } from '../helpers/cli';

describe('kernelgrad train --recipe fast', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kg-cli-recipe-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('trains the race network with Adam on a one-cycle schedule, batch 256', () => {
    const out = path.join(dir, 'fast');
    const r = cli(['train', '--recipe', 'fast', '--train-size', '600', '--test-size', '100', '--device', 'cpu', '--no-progress', '--no-svg', '--out', out]);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/training fast-cnn on MNIST on .*: 600 train \/ 100 test images, batch 256, adam, lr 0\.01, weight decay 0, schedule onecycle \(peak 0\.01 at 30% of 3 steps\), 1 epoch,/);
    expect(r.stdout).toMatch(/^Epoch 0\. Loss: [\d.e-]+, Train_acc [\d.]+, Test_acc [\d.]+$/m);
    const metrics = JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8'));
    expect(metrics).toMatchObject({ model: 'fast-cnn', batchSize: 256, learningRate: 0.01, optimizer: 'adam', schedule: 'onecycle' });
    expect(metrics.epochs).toHaveLength(1);
    const ckpt = fs.readFileSync(path.join(out, 'model.safetensors'));
    const header = JSON.parse(ckpt.subarray(8, 8 + Number(ckpt.readBigUInt64LE(0))).toString('utf8'));
    expect(header.__metadata__).toMatchObject({ architecture: 'fast-cnn', optimizer: 'adam', batch_size: '256' });
    expect(header['conv1.weight'].shape).toEqual([20, 1, 5, 5]);
    // The checkpoint evaluates like any other.
    const e = cli(['eval', '--checkpoint', path.join(out, 'model.safetensors'), '--test-size', '100', '--device', 'cpu']);
    expect(e.code).toBe(0);
    expect(e.stdout).toMatch(/^Test_acc [\d.]+$/m);
  });

  test('options given with the recipe tune it; a model or dataset of its own is refused', () => {
    const given = (keys: string[]) => (k: string) => keys.includes(k);
    const base = { model: 'bnCnn', dataset: 'mnist', optimizer: 'sgd', schedule: 'none', lr: 0.001, batchSize: 64, epochs: 10 } as const;
    expect(applyRecipe('fast', { ...base }, given([]))).toEqual({ ...RECIPES.fast });
    expect(applyRecipe('fast', { ...base, epochs: 2, lr: 0.005 }, given(['epochs', 'lr']))).toEqual({ ...RECIPES.fast, epochs: 2, lr: 0.005 });
    expect(() => applyRecipe('fast', { ...base, model: 'resnet' }, given(['model']))).toThrow(/--recipe fast trains --model fastCnn on --dataset mnist; drop --model resnet or --recipe/);
  });

  test.each([
    [['train', '--recipe', 'fast', '--model', 'resnet'], /--recipe fast trains --model fastCnn on --dataset mnist; drop --model resnet/],
    [['train', '--recipe', 'fast', '--dataset', 'cifar10'], /drop --dataset cifar10 or --recipe/],
    [['train', '--recipe', 'fast', '--momentum', '0.9'], /--momentum is an SGD option: adam keeps its own moment estimates/],
    [['train', '--recipe', 'slow'], /'--recipe <name>' argument 'slow' is invalid\. must be one of fast/],
  ])('%j fails with one line and exit code 2', (args, message) => {
    const r = cli(args as string[], 30_000);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message as RegExp);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});
