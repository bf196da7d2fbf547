// Writes small CIFAR-10 folders in the standard binary format, for the tests (no dataset ships).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CIFAR10_TEST_FILES, CIFAR10_TRAIN_FILES, encodeCifar10 } from '../../lib/data/cifar10';
import { Random } from '../../lib/random';

export interface FakeCifar {
  dir: string;
  /** Per file name: its labels and pixel bytes. */
  files: Record<string, { labels: Uint8Array; pixels: Uint8Array }>;
}

/**
 * A folder with the six .bin files, `perFile` random images each (`perFile[i]` for train file i,
 * the last entry for the test file). With `learnable`, each class has its own mean colour, so a
 * small network can learn it in a few steps.
 */
export function writeFakeCifar(perFile: number[], seed = 1, learnable = false): FakeCifar {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kg-cifar-'));
  const rng = new Random(seed);
  const files: FakeCifar['files'] = {};
  [...CIFAR10_TRAIN_FILES, ...CIFAR10_TEST_FILES].forEach((name, f) => {
    const n = perFile[f];
    const labels = Uint8Array.from({ length: n }, () => rng.int(10));
    const pixels = new Uint8Array(n * 3072);
    for (let r = 0; r < n; r++) {
      for (let c = 0; c < 3; c++) {
        const base = learnable ? ((labels[r] * 37 + c * 91) % 200) + 20 : 0;
        for (let i = 0; i < 1024; i++) pixels[r * 3072 + c * 1024 + i] = learnable ? base + rng.int(30) : rng.int(256);
      }
    }
    fs.writeFileSync(path.join(dir, name), encodeCifar10(labels, pixels));
    files[name] = { labels, pixels };
  });
  return { dir, files };
}
