// Option parsing shared by the CLI commands: value parsers that reject bad input with one clear
// sentence, and the error type that maps to exit code 2.
import { InvalidArgumentError } from 'commander';
import * as fs from 'fs';

/** A problem with the command line or its inputs (exit code 2, no stack trace). */
export class UsageError extends Error {
  override name = 'UsageError';
}

export function parsePositiveInt(value: string): number {
  const n = Number(value);
  if (!/^\s*\+?\d+\s*$/.test(value) || !Number.isSafeInteger(n) || n < 1) {
    throw new InvalidArgumentError('must be a positive integer.');
  }
  return n;
}

export function parseNonNegativeInt(value: string): number {
  const n = Number(value);
  if (!/^\s*\+?\d+\s*$/.test(value) || !Number.isSafeInteger(n)) {
    throw new InvalidArgumentError('must be a non-negative integer.');
  }
  return n;
}

export function parsePositiveNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a positive number.');
  return n;
}

export function parseMomentum(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n >= 1) throw new InvalidArgumentError('must be a number in [0, 1).');
  return n;
}

export function parseDeviceName(value: string): 'cpu' | 'cuda' {
  const v = value.toLowerCase();
  if (v === 'cpu') return 'cpu';
  if (v === 'cuda' || v === 'cuda:0' || v === 'gpu') return 'cuda';
  throw new InvalidArgumentError("must be 'cpu' or 'cuda'.");
}

/** The device to run on: the requested one if it is usable, else a UsageError; default cuda if present. */
export function resolveDevice(requested: 'cpu' | 'cuda' | undefined): 'cpu' | 'cuda' {
  // Loaded here, not at the top: it loads the native addon, which --help does not need.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { defaultDevice, parseDevice } = require('../device') as typeof import('../device');
  try {
    return requested === undefined ? defaultDevice() : parseDevice(requested);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** Checks that `dir` is an existing folder. */
export function requireDir(dir: string, what: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    throw new UsageError(`${what} not found: ${dir}`);
  }
  if (!st.isDirectory()) throw new UsageError(`${what} is not a folder: ${dir}`);
}

/** Checks that `file` is an existing regular file. */
export function requireFile(file: string, what: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    throw new UsageError(`${what} not found: ${file}`);
  }
  if (!st.isFile()) throw new UsageError(`${what} is not a file: ${file}`);
}
