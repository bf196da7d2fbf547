// Seedable random numbers for initialization and shuffling: xoshiro128** (fast, good quality, 128-bit
// state) seeded through splitmix32. Normal samples by Box-Muller. The same seed gives the same
// numbers on every machine and device, since they are drawn here and then uploaded.

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

export class Random {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number) {
    checkSeed(seed, 'kg.Random');
    const init = splitmix32(seed);
    this.s0 = init();
    this.s1 = init();
    this.s2 = init();
    this.s3 = init();
  }

  /** A uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`kg.Random.int: n must be a positive integer, got ${String(n)}`);
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal samples (Box-Muller, both values of each pair used). */
  fillNormal(out: Float32Array, mean = 0, std = 1): Float32Array {
    checkFinite(mean, 'kg.Random.fillNormal', 'mean');
    if (checkFinite(std, 'kg.Random.fillNormal', 'std') < 0) throw new RangeError(`kg.Random.fillNormal: std must be >= 0, got ${std}`);
    for (let i = 0; i < out.length; i += 2) {
      const u1 = 1 - this.uniform(); // (0, 1]: log stays finite
      const u2 = this.uniform();
      const r = Math.sqrt(-2 * Math.log(u1));
      out[i] = mean + std * r * Math.cos(2 * Math.PI * u2);
      if (i + 1 < out.length) out[i + 1] = mean + std * r * Math.sin(2 * Math.PI * u2);
    }
    return out;
  }

  fillUniform(out: Float32Array, low = 0, high = 1): Float32Array {
    checkFinite(low, 'kg.Random.fillUniform', 'low');
    checkFinite(high, 'kg.Random.fillUniform', 'high');
    for (let i = 0; i < out.length; i++) out[i] = low + (high - low) * this.uniform();
    return out;
  }

  /** Fisher-Yates shuffle, in place. */
  shuffle<T extends { length: number; [i: number]: unknown }>(a: T): T {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = a[i];
      a[i] = a[j];
      a[j] = tmp;
    }
    return a;
  }
}

function checkSeed(seed: unknown, fn: string): void {
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed)) throw new TypeError(`${fn}: seed must be an integer, got ${String(seed)}`);
}

function checkFinite(v: unknown, fn: string, name: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new RangeError(`${fn}: ${name} must be a finite number, got ${String(v)}`);
  return v;
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

let global = new Random(Date.now() & 0x7fffffff);

/** Seeds the generator used by kg.randn/kg.rand when no seed is given. */
export function manualSeed(seed: number): void {
  checkSeed(seed, 'kg.manualSeed');
  global = new Random(seed);
}

/** The generator for an optional seed: a fresh one when given, else the global one. */
export function generator(seed?: number): Random {
  return seed === undefined ? global : new Random(seed);
}
