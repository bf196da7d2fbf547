// Option objects: every public function that takes `options` reads them through here, so a typo in
// an option name fails loudly instead of being ignored, and null or a number where an object belongs
// gets a sentence instead of "Cannot read properties of null".

/**
 * `options` as an object of the known keys (`{}` when undefined). Throws a TypeError naming `fn`
 * for null, arrays and non-objects, and for any key not in `known` (listing the known ones).
 * A key set to undefined counts as absent, so `{ eps: undefined }` means the default.
 */
export function readOptions<T extends object>(options: T | undefined, fn: string, known: readonly (keyof T & string)[]): T {
  if (options === undefined) return {} as T;
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError(`${fn}: options must be an object, got ${describe(options)}`);
  }
  const unknown = Object.keys(options).filter((k) => !(known as readonly string[]).includes(k));
  if (unknown.length > 0) {
    const list = known.length > 0 ? known.join(', ') : 'none';
    const names = unknown.map((k) => `'${k}'`).join(', ');
    throw new TypeError(`${fn}: unknown option${unknown.length > 1 ? 's' : ''} ${names} (known options: ${list})`);
  }
  return options;
}

/** A short description of a value for error messages: its type, and the value when that is short. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint' || typeof v === 'undefined') return String(v);
  if (typeof v === 'function') return 'a function';
  if (typeof v === 'symbol') return 'a symbol';
  const name = (v as object).constructor?.name;
  return name && name !== 'Object' ? `a ${name}` : 'an object';
}

/** Like `describe`, but shows the items of a short array, e.g. a pair `[3, 0]`. */
export function describeItems(v: unknown): string {
  if (Array.isArray(v) && v.length <= 8) return `[${Array.from(v, describe).join(', ')}]`;
  return describe(v);
}

/**
 * `value` when it is one of `choices`, `fallback` when undefined; otherwise a TypeError naming
 * `fn`, the option and the choices.
 */
export function readChoice<T extends string>(value: T | undefined, fn: string, name: string, choices: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (!(choices as readonly unknown[]).includes(value)) {
    throw new TypeError(`${fn}: ${name} must be ${choices.map((c) => `'${c}'`).join(' or ')}, got ${describe(value)}`);
  }
  return value;
}
