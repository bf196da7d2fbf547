// `kernelgrad train --optimizer/--schedule/--weight-decay/--nesterov`: a short run records the
// settings, and options that do not go together are refused with one line and exit code 2.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { cli } from '../helpers/cli';


describe('kernelgrad train: optimizer options', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kg-cli-optim-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('adamw with a one-cycle schedule trains and records its settings', () => {
    const out = path.join(dir, 'adamw');
    const r = cli(['train', '--optimizer', 'adamw', '--schedule', 'onecycle', '--weight-decay', '0.05', '--lr', '0.003', '--epochs', '1',
      '--train-size', '320', '--test-size', '64', '--device', 'cpu', '--no-progress', '--no-svg', '--out', out]);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/batch 64, adamw, lr 0\.003, weight decay 0\.05, schedule onecycle \(peak 0\.003 at 30% of 5 steps\), 1 epoch/);
    expect(r.stdout).toMatch(/^Epoch 0\. Loss: [\d.e-]+, Train_acc [\d.]+, Test_acc [\d.]+$/m);
    const metrics = JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8'));
    expect(metrics).toMatchObject({ learningRate: 0.003, optimizer: 'adamw', weightDecay: 0.05, schedule: 'onecycle' });
    expect(metrics).not.toHaveProperty('momentum');
    const ckpt = fs.readFileSync(path.join(out, 'model.safetensors'));
    const header = JSON.parse(ckpt.subarray(8, 8 + Number(ckpt.readBigUInt64LE(0))).toString('utf8'));
    expect(header.__metadata__).toMatchObject({ optimizer: 'adamw', weight_decay: '0.05', schedule: 'onecycle' });
  });

  test.each([
    [['train', '--optimizer', 'adam', '--momentum', '0.9'], /--momentum is an SGD option: adam keeps its own moment estimates/],
    [['train', '--optimizer', 'adamw', '--nesterov'], /--nesterov is an SGD option, not one of adamw/],
    [['train', '--nesterov'], /--nesterov needs a momentum: add --momentum/],
    [['train', '--nesterov', '--momentum', '0'], /--nesterov needs a momentum/],
    [['train', '--optimizer', 'rmsprop'], /'--optimizer <name>' argument 'rmsprop' is invalid\. must be one of sgd, adam, adamw/],
    [['train', '--schedule', 'linear'], /argument 'linear' is invalid\. must be one of none, step, cosine, onecycle, warmup/],
    [['train', '--weight-decay', '-0.1'], /'--weight-decay <w>' argument '-0\.1' is invalid\. must be a number >= 0/],
  ])('%j fails with one line and exit code 2', (args, message) => {
    const r = cli(args as string[], 30_000);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message as RegExp);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  test('--help lists the options', () => {
    const r = cli(['train', '--help'], 30_000);
    for (const o of ['--optimizer', '--nesterov', '--weight-decay', '--schedule']) expect(r.stdout).toContain(o);
  });
});
