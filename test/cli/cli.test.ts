import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { cli } from '../helpers/cli';


describe('kernelgrad CLI', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kg-cli-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('train: one short epoch on the CPU beats chance and writes the three outputs; eval reads them', () => {
    const out = path.join(dir, 'run');
    // What a killed run leaves behind (pid 999999999 is above any pid_max): removed by this run.
    fs.mkdirSync(out, { recursive: true });
    fs.writeFileSync(path.join(out, '.metrics.json.999999999.1.0.tmp'), '{');
    const r = cli(['train', '--epochs', '1', '--train-size', '2000', '--test-size', '500', '--device', 'cpu', '--out', out]);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(r.code).toBe(0);
    const m = r.stdout.match(/^Epoch 0\. Loss: ([\d.e-]+), Train_acc ([\d.]+), Test_acc ([\d.]+)$/m);
    expect(m).not.toBeNull();
    const testAcc = Number(m![3]);
    expect(testAcc).toBeGreaterThan(0.5);

    const metrics = JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8'));
    expect(metrics).toMatchObject({ model: 'bn-cnn', device: 'cpu', batchSize: 64, learningRate: 0.001, trainSize: 2000, testSize: 500 });
    expect(metrics.epochs).toHaveLength(1);
    expect(metrics.epochs[0]).toMatchObject({ epoch: 0, device: 'cpu', testAccuracy: testAcc });
    expect(metrics.epochs[0].imagesPerSecond).toBeGreaterThan(0);

    const png = fs.readFileSync(path.join(out, 'training.png'));
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    const ckpt = fs.readFileSync(path.join(out, 'model.safetensors'));
    const n = Number(ckpt.readBigUInt64LE(0));
    const header = JSON.parse(ckpt.subarray(8, 8 + n).toString('utf8'));
    expect(header.__metadata__).toMatchObject({ architecture: 'bn-cnn', epoch: '0', format: 'pt' });
    expect(header['bn3.running_var']).toMatchObject({ dtype: 'F32', shape: [128] });
    expect(header['bn3.num_batches_tracked']).toMatchObject({ dtype: 'I64', shape: [] });
    expect(metrics.checkpoint).toEqual({ file: 'model.safetensors', epoch: Number(header.__metadata__.epoch) });
    expect(fs.readdirSync(out).filter((f) => f.endsWith('.tmp'))).toEqual([]);

    const e = cli(['eval', '--checkpoint', path.join(out, 'model.safetensors'), '--test-size', '500', '--device', 'cpu']);
    expect(e.code).toBe(0);
    expect(e.stdout.trim()).toBe(`Test_acc ${testAcc}`);
  });

  test.each([
    [['train', '--epoch', '1'], /unknown option '--epoch'/],
    [['train', '--epochs', '-3'], /'--epochs <n>' argument '-3' is invalid/],
    [['train', '--batch-size', '1.5'], /'--batch-size <n>' argument '1\.5' is invalid\. must be a positive integer/],
    [['train', '--train-size', '0'], /must be a positive integer/],
    [['train', '--lr', 'fast'], /must be a positive number/],
    [['train', '--device', 'tpu'], /must be 'cpu' or 'cuda'/],
    [['train', '--data', '/nonexistent/mnist'], /MNIST data folder not found: \/nonexistent\/mnist/],
    [['eval'], /required option '--checkpoint <file>' not specified/],
    [['eval', '--checkpoint', '/nonexistent/model.safetensors'], /checkpoint not found: \/nonexistent\/model\.safetensors/],
    [['fly'], /unknown command 'fly'/],
    [['train', '--batch-size', '1', '--device', 'cpu'], /--batch-size 1 cannot train: batch norm needs at least 2 images per batch/],
    [['train', '--train-size', '1', '--device', 'cpu'], /--train-size 1 cannot train: batch norm needs at least 2/],
  ])('%j fails with one line and exit code 2', (args, message) => {
    const r = cli(args as string[], 30_000);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message as RegExp);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  test('a corrupt checkpoint gives one line', () => {
    const bad = path.join(dir, 'bad.safetensors');
    fs.writeFileSync(bad, Buffer.from([1, 2, 3]));
    const r = cli(['eval', '--checkpoint', bad, '--device', 'cpu', '--test-size', '10'], 30_000);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([`kernelgrad: error: ${bad}: invalid safetensors file: 3 bytes, too short for the 8-byte header length`]);
  });

  test('--help lists the options', () => {
    const r = cli(['train', '--help'], 30_000);
    expect(r.code).toBe(0);
    for (const o of ['--epochs', '--batch-size', '--lr', '--momentum', '--device', '--seed', '--data', '--train-size', '--test-size', '--out']) {
      expect(r.stdout).toContain(o);
    }
  });
});
