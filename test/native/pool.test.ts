// Average pooling, forward and backward, including overlapping windows (stride < kernel) and
// strides that leave input rows/columns outside every window.
import { native } from '../../lib/native';
import { PoolGeometry, Rng, avgPoolBackwardRef, avgPoolForwardRef, disposeAll, empty, expectClose, poolOut, store } from './reference';

afterEach(disposeAll);

function check(g: PoolGeometry, rng: Rng): void {
  const { oh, ow } = poolOut(g);
  const arg: [number, number, number, number, number, number, number, number] = [g.n, g.c, g.h, g.w, g.kh, g.kw, g.sh, g.sw];
  const x = rng.array(g.n * g.c * g.h * g.w);
  const dy = rng.array(g.n * g.c * oh * ow);
  const label = JSON.stringify(g);
  const y = empty(dy.length);
  native.avgPool2dForward(arg, store(x), y);
  expectClose(y.read(), avgPoolForwardRef(g, x), { rtol: 1e-5, atol: 1e-6 }, `forward ${label}`);
  const dx = empty(x.length); // NaN-filled: every element must be written, uncovered ones with 0
  native.avgPool2dBackward(arg, store(dy), dx);
  expectClose(dx.read(), avgPoolBackwardRef(g, dy), { rtol: 1e-5, atol: 1e-6 }, `backward ${label}`);
}

describe('avgpool2d', () => {
  test('non-overlapping 2x2 stride 2, even and odd sizes', () => {
    const rng = new Rng(1);
    check({ n: 2, c: 3, h: 26, w: 26, kh: 2, kw: 2, sh: 2, sw: 2 }, rng);
    check({ n: 1, c: 2, h: 9, w: 7, kh: 2, kw: 2, sh: 2, sw: 2 }, rng); // last row/column uncovered
  });

  test('overlapping windows', () => {
    const rng = new Rng(2);
    check({ n: 2, c: 2, h: 7, w: 9, kh: 3, kw: 3, sh: 1, sw: 1 }, rng);
    check({ n: 1, c: 3, h: 13, w: 11, kh: 5, kw: 3, sh: 2, sw: 1 }, rng);
  });

  test('gaps between windows and whole-image windows', () => {
    const rng = new Rng(3);
    check({ n: 2, c: 1, h: 10, w: 11, kh: 2, kw: 3, sh: 4, sw: 5 }, rng);
    check({ n: 3, c: 2, h: 5, w: 4, kh: 5, kw: 4, sh: 1, sw: 1 }, rng);
    check({ n: 1, c: 1, h: 1, w: 1, kh: 1, kw: 1, sh: 1, sw: 1 }, rng);
  });

  test('random geometries', () => {
    const rng = new Rng(4);
    for (let t = 0; t < 12; t++) {
      const kh = rng.int(1, 4);
      const kw = rng.int(1, 4);
      check({ n: rng.int(1, 3), c: rng.int(1, 3), h: rng.int(kh, 12), w: rng.int(kw, 12), kh, kw, sh: rng.int(1, 4), sw: rng.int(1, 4) }, rng);
    }
  });
});
