// kg.optim.schedules against their published definitions, written out here independently (PyTorch's
// StepLR, CosineAnnealingLR and OneCycleLR with cosine annealing; linear warmup), and their checks.
import * as kg from '../../lib';

const { schedules } = kg.optim;
const { cos, PI, floor, abs, max } = Math;

function expectRates(schedule: kg.optim.Schedule, want: (s: number) => number, steps: number): void {
  for (let s = 0; s < steps; s++) {
    const got = schedule(s);
    const w = want(s);
    if (abs(got - w) > 1e-12 * max(1, abs(w))) throw new Error(`step ${s}: ${got}, expected ${w}`);
  }
}

describe('step', () => {
  test('lr * gamma^floor(step / stepSize)', () => {
    expectRates(schedules.step({ lr: 0.5, stepSize: 7, gamma: 0.3 }), (s) => 0.5 * 0.3 ** floor(s / 7), 50);
    const s = schedules.step({ lr: 1, stepSize: 2 });
    expect([0, 1, 2, 3, 4].map(s)).toEqual([1, 1, 0.1, 0.1, 0.1 ** 2]);
  });
});

describe('cosine', () => {
  test('minLr + (lr - minLr) (1 + cos(pi t / steps)) / 2, then minLr', () => {
    const lr = 0.1, minLr = 0.001, steps = 37;
    expectRates(schedules.cosine({ lr, steps, minLr }), (t) => (t >= steps ? minLr : minLr + ((lr - minLr) * (1 + cos((PI * t) / steps))) / 2), 60);
  });
  test('known values: lr 1 over 4 steps', () => {
    const got = [0, 1, 2, 3, 4, 5].map(schedules.cosine({ lr: 1, steps: 4 }));
    [1, 0.8535533905932737, 0.5, 0.14644660940672627, 0, 0].forEach((w, i) => expect(got[i]).toBeCloseTo(w, 12));
  });
});

describe('oneCycle', () => {
  // PyTorch's OneCycleLR, three_phase=False, anneal_strategy='cos', transcribed.
  function torchOneCycle(maxLr: number, total: number, pctStart = 0.3, div = 25, finalDiv = 1e4) {
    const initial = maxLr / div, min = initial / finalDiv;
    const phases = [
      { end: pctStart * total - 1, start: initial, stop: maxLr },
      { end: total - 1, start: maxLr, stop: min },
    ];
    const anneal = (start: number, end: number, pct: number) => end + ((start - end) / 2) * (cos(PI * pct) + 1);
    return (step: number) => {
      let startStep = 0;
      for (let i = 0; i < phases.length; i++) {
        const p = phases[i];
        if (step <= p.end || i === phases.length - 1) return anneal(p.start, p.stop, (step - startStep) / (p.end - startStep));
        startStep = p.end;
      }
      throw new Error('unreachable');
    };
  }

  test.each([
    [0.1, 100, undefined, undefined, undefined],
    [2, 1000, 0.25, 10, 100],
    [0.01, 7, 0.5, 25, 1e4],
  ])('maxLr %p over %p steps (pctStart %p, divFactor %p, finalDivFactor %p)', (maxLr, steps, pctStart, divFactor, finalDivFactor) => {
    const s = schedules.oneCycle({ maxLr, steps, pctStart, divFactor, finalDivFactor });
    expectRates(s, torchOneCycle(maxLr, steps, pctStart, divFactor, finalDivFactor), steps);
  });

  test('starts at maxLr / 25, peaks at maxLr, ends at maxLr / 25e4 and stays there', () => {
    const s = schedules.oneCycle({ maxLr: 1, steps: 101 });
    expect(s(0)).toBeCloseTo(1 / 25, 12);
    expect(s(floor(0.3 * 101 - 1))).toBeLessThan(1);
    expect(max(...Array.from({ length: 101 }, (_, i) => s(i)))).toBeCloseTo(1, 3);
    expect(s(100)).toBeCloseTo(1 / 25e4, 12);
    expect(s(500)).toBe(s(100));
  });

  test('a cycle too short to rise starts at its peak instead of dividing by zero', () => {
    const s = schedules.oneCycle({ maxLr: 1, steps: 2, pctStart: 0.5 }); // peak at step 0
    expect(s(0)).toBe(1);
    expect(s(1)).toBeCloseTo(1 / 25e4, 12);
    expect([0, 1].map(schedules.oneCycle({ maxLr: 1, steps: 1 })).every(Number.isFinite)).toBe(true);
  });
});

describe('warmup', () => {
  test('to a constant rate: lr (t + 1) / steps, then lr', () => {
    expectRates(schedules.warmup({ steps: 5, lr: 0.2 }), (t) => (t < 5 ? (0.2 * (t + 1)) / 5 : 0.2), 12);
  });
  test('into another schedule, which starts at its own step 0', () => {
    const after = schedules.cosine({ lr: 0.3, steps: 10 });
    expectRates(schedules.warmup({ steps: 4, then: after }), (t) => (t < 4 ? (0.3 * (t + 1)) / 4 : after(t - 4)), 20);
  });
});

describe('bad options and steps', () => {
  test.each<[string, () => unknown, ErrorConstructor, RegExp]>([
    ['step without options', () => schedules.step(undefined as never), TypeError, /^kg\.optim\.schedules\.step: options \{ lr, stepSize \} are required/],
    ['step with stepSize 0', () => schedules.step({ lr: 1, stepSize: 0 }), RangeError, /^kg\.optim\.schedules\.step: stepSize must be a positive integer, got 0/],
    ['step with gamma 2', () => schedules.step({ lr: 1, stepSize: 1, gamma: 2 }), RangeError, /gamma must be in \(0, 1\], got 2/],
    ['cosine with a typo', () => schedules.cosine({ lr: 1, steps: 3, minlr: 0 } as never), TypeError,
      /^kg\.optim\.schedules\.cosine: unknown option 'minlr' \(known options: lr, steps, minLr\)/],
    ['cosine with minLr above lr', () => schedules.cosine({ lr: 0.1, steps: 3, minLr: 0.2 }), RangeError, /^kg\.optim\.schedules\.cosine: minLr must be in \[0, lr = 0\.1\), got 0\.2/],
    ['cosine with fractional steps', () => schedules.cosine({ lr: 0.1, steps: 2.5 }), RangeError, /steps must be a positive integer, got 2\.5/],
    ['cosine with lr as a string', () => schedules.cosine({ lr: '0.1' as never, steps: 2 }), RangeError, /lr must be a positive number, got "0\.1"/],
    ['oneCycle with lr instead of maxLr', () => schedules.oneCycle({ lr: 1, steps: 10 } as never), TypeError, /^kg\.optim\.schedules\.oneCycle: unknown option 'lr'/],
    ['oneCycle with pctStart 1', () => schedules.oneCycle({ maxLr: 1, steps: 10, pctStart: 1 }), RangeError, /pctStart must be in \(0, 1\), got 1/],
    ['warmup with both lr and then', () => schedules.warmup({ steps: 2, lr: 1, then: () => 1 }), TypeError,
      /^kg\.optim\.schedules\.warmup: give either lr \(the rate after the warmup\) or then \(the schedule after it\), not both/],
    ['warmup with neither', () => schedules.warmup({ steps: 2 }), TypeError, /not neither/],
    ['warmup into a non-function', () => schedules.warmup({ steps: 2, then: 0.1 as never }), TypeError, /then must be a schedule, \(step\) => lr, got 0\.1/],
    ['warmup into a schedule that starts at NaN', () => schedules.warmup({ steps: 2, then: () => NaN }), RangeError, /then\(0\) must be a finite number >= 0, got NaN/],
    ['a negative step', () => schedules.cosine({ lr: 1, steps: 3 })(-1), RangeError, /^kg\.optim\.schedules\.cosine: the step must be an integer >= 0, got -1/],
    ['a fractional step', () => schedules.oneCycle({ maxLr: 1, steps: 3 })(0.5), RangeError, /the step must be an integer >= 0, got 0\.5/],
    ['a step that is not a number', () => schedules.warmup({ steps: 3, lr: 1 })('1' as never), RangeError, /the step must be an integer >= 0, got "1"/],
  ])('%s', (_, call, type, message) => {
    expect(call).toThrow(type);
    expect(call).toThrow(message);
  });
});
