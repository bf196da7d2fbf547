// `kernelgrad train --model resnet --dataset cifar10`: a short run on generated CIFAR-10 batches
// learns, writes a checkpoint that `kernelgrad eval` reads back, and option combinations that make
// no sense fail with one line and exit code 2.
import * as fs from 'fs';
import * as path from 'path';
import { writeFakeCifar } from '../helpers/cifar10-files';
import { cli } from '../helpers/cli';


describe('kernelgrad CLI: ResNet on CIFAR-10', () => {
  const fake = writeFakeCifar([100, 100, 60, 1, 1, 100], 1, true);
  afterAll(() => fs.rmSync(fake.dir, { recursive: true, force: true }));

  test('train --model resnet --dataset cifar10 --augment learns; eval reads the checkpoint', () => {
    const out = path.join(fake.dir, 'run');
    const r = cli(['train', '--model', 'resnet', '--depth', '8', '--width', '4', '--dataset', 'cifar10', '--data', fake.dir, '--augment',
      '--epochs', '2', '--batch-size', '16', '--lr', '0.002', '--device', 'cpu', '--out', out, '--no-svg']);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/training resnet on CIFAR-10 on cpu: 262 train \/ 100 test images \(augmented\)/);
    const acc = [...r.stdout.matchAll(/Test_acc ([\d.]+)$/gm)].map((m) => Number(m[1]));
    expect(acc).toHaveLength(2);
    expect(acc[1]).toBeGreaterThan(0.25); // 10 classes: chance is 0.1
    const metrics = JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8'));
    expect(metrics).toMatchObject({ model: 'resnet', dataset: 'cifar10', augment: true, trainSize: 262, testSize: 100 });
    const ckpt = fs.readFileSync(path.join(out, 'model.safetensors'));
    const header = JSON.parse(ckpt.subarray(8, 8 + Number(ckpt.readBigUInt64LE(0))).toString('utf8'));
    expect(header.__metadata__).toMatchObject({ architecture: 'resnet', dataset: 'cifar10', input_shape: '[3, 32, 32]' });
    expect(header['stage2.0.residual.shortcut.conv.weight']).toMatchObject({ shape: [8, 4, 1, 1] });

    const e = cli(['eval', '--checkpoint', path.join(out, 'model.safetensors'), '--data', fake.dir, '--device', 'cpu']);
    expect(e.code).toBe(0);
    expect(e.stdout.trim()).toBe(`Test_acc ${acc[1]}`);
  });

  test.each([
    [['train', '--model', 'resnet', '--dataset', 'cifar10', '--device', 'cpu'], /CIFAR-10 needs --data DIR/],
    [['train', '--dataset', 'cifar10', '--data', '<fake>', '--device', 'cpu'], /--model bnCnn takes 1x28x28 MNIST images, this dataset has 3x32x32; use --model resnet/],
    [['train', '--depth', '8', '--device', 'cpu'], /--depth applies to --model resnet only/],
    [['train', '--model', 'resnet', '--depth', '10', '--device', 'cpu'], /--depth 10: a ResNet has 6n \+ 2 layers/],
    [['train', '--model', 'vgg'], /'--model <name>' argument 'vgg' is invalid\. must be 'bnCnn', 'fastCnn' or 'resnet'/],
    [['train', '--dataset', 'imagenet'], /must be 'mnist' or 'cifar10'/],
    [['train', '--model', 'resnet', '--dataset', 'cifar10', '--data', '<fake>/data_batch_1.bin'], /CIFAR-10 data folder is not a folder/],
    [['train', '--model', 'resnet', '--dataset', 'cifar10', '--data', '<fake>/run'], /missing the CIFAR-10 file data_batch_1\.bin/],
  ])('%j fails with one line and exit code 2', (args, message) => {
    if (!fs.existsSync(path.join(fake.dir, 'run'))) fs.mkdirSync(path.join(fake.dir, 'run'));
    const r = cli((args as string[]).map((a) => a.replace('<fake>', fake.dir)), 30_000);
    expect(r.stderr).toMatch(message as RegExp);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});
