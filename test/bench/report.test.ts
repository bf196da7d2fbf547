// The bench's bookkeeping: rounds merged into one figure, and the CPU targets' verdicts.
import type { BenchFile, Figure } from '../../bench/lib/schema';
import { mergeRounds } from '../../bench/lib/rounds';
import { merge, verdicts } from '../../bench/lib/report';

function file(framework: BenchFile['env']['framework'], figures: Figure[]): BenchFile {
  return {
    schema: 'kernelgrad-bench/1',
    env: { date: '', framework, device: 'cpu', deviceName: 'cpu', cpu: { model: 'cpu', cores: 2 }, os: '', quick: false, argv: [], versions: {}, notes: [] },
    figures,
  };
}

const fig = (c: string, shape: string, impl: string, ms: number, extra: Partial<Figure> = {}): Figure => ({
  case: c, shape, impl, device: 'cpu', status: 'ok', median_ms: ms, min_ms: ms, reps: 5, metric: { unit: 'img/s', value: 1000 / ms }, ...extra,
});

test('rounds: the figure of the median round, with every round kept; a failed round keeps the first', () => {
  const rounds = [7, 3, 5].map((ms, r) => file('kernelgrad', [fig('net.infer', 'b1', 'kernelgrad', ms), fig('gemm', '2048^3', 'kernelgrad', 10 + r, r === 1 ? { status: 'failed' } : {})]));
  const m = mergeRounds(rounds);
  const infer = m.figures.find((f) => f.case === 'net.infer')!;
  expect(infer.median_ms).toBe(5);
  expect(infer.metric!.value).toBe(200);
  expect(infer.rounds).toEqual([7, 3, 5]);
  const gemm = m.figures.find((f) => f.case === 'gemm')!;
  expect(gemm.median_ms).toBe(10);
  expect(gemm.rounds).toBeUndefined();
  expect(m.env.notes.join(' ')).toMatch(/3 round\(s\)/);
});

test('CPU verdicts: BN forward + backward summed, the slowest row named, absent references n/a', () => {
  const ours = file('kernelgrad', [
    fig('bn.train_fwd', '32x256x56x56', 'kernelgrad', 20), fig('bn.backward', '32x256x56x56', 'kernelgrad', 20),
    fig('net.infer', 'b1', 'kernelgrad', 0.2), fig('net.train_step', 'b64', 'kernelgrad', 10),
  ]);
  const torch = file('pytorch', [
    fig('bn.train_fwd', '32x256x56x56', 'torch', 60), fig('bn.backward', '32x256x56x56', 'torch', 30),
    fig('net.infer', 'b1', 'torch', 0.18), fig('net.train_step', 'b64', 'torch', 30),
  ]);
  const v = verdicts(merge([ours, torch]));
  const get = (label: RegExp) => v.find((x) => label.test(x.label))!;
  expect(get(/batch norm forward \+ backward/).ratio).toBeCloseTo(90 / 40);
  expect(get(/batch norm forward \+ backward/).verdict).toBe('meets');
  expect(get(/training step b64 vs PyTorch/).verdict).toBe('meets');
  const every = get(/no case slower than PyTorch/);
  expect(every.verdict).toBe('short');
  expect(every.ours).toMatch(/net\.infer b1/);
  expect(every.ratio).toBeCloseTo(0.9);
  expect(get(/b1 latency vs onnxruntime/).verdict).toBe('n/a');
});

test('CPU verdicts: the MNIST race against PyTorch and against its time limit; a run short of 99% is short', () => {
  const race = (impl: string, ms: number, extra: Partial<Figure> = {}) => fig('race.mnist99', 'fast-cnn b256 to 99%', impl, ms, { metric: undefined, reps: 1, ...extra });
  const get = (v: ReturnType<typeof verdicts>, label: RegExp) => v.find((x) => label.test(x.label))!;
  const fast = verdicts(merge([file('kernelgrad', [race('kernelgrad', 9000)]), file('pytorch', [race('torch', 20000)])]));
  expect(get(fast, /MNIST to 99% vs PyTorch \(>= 2x\)/)).toMatchObject({ verdict: 'meets', ratio: 20000 / 9000 });
  expect(get(fast, /MNIST to 99% \(<= 12 s\)/)).toMatchObject({ verdict: 'meets', target: '<= 12 s' });
  const slow = verdicts(merge([file('kernelgrad', [race('kernelgrad', 13000)]), file('pytorch', [race('torch', 20000)])]));
  expect(get(slow, /MNIST to 99% vs PyTorch/).verdict).toBe('short');
  expect(get(slow, /MNIST to 99% \(<= 12 s\)/).verdict).toBe('short');
  const missed = verdicts(merge([file('kernelgrad', [race('kernelgrad', 0, { status: 'failed', median_ms: undefined, note: 'never reached 99%: 98.90% at step 235' })])]));
  expect(get(missed, /MNIST to 99% \(<= 12 s\)/)).toMatchObject({ verdict: 'short', why: expect.stringMatching(/98\.90% at step 235/) });
});
