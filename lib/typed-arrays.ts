// Typed-array checks that hold across realms. `x instanceof Float32Array` is false for an array
// made in another realm (a vm context, as jest runs tests in, or the addon's Storage.read() seen
// from such a context), so the library asks for the array's own tag instead.
const tag = (x: unknown): string => Object.prototype.toString.call(x);

export function isFloat32Array(x: unknown): x is Float32Array {
  return ArrayBuffer.isView(x) && tag(x) === '[object Float32Array]';
}

export function isInt32Array(x: unknown): x is Int32Array {
  return ArrayBuffer.isView(x) && tag(x) === '[object Int32Array]';
}

/** A Uint8Array, or a Buffer (a Uint8Array subclass). */
export function isUint8Array(x: unknown): x is Uint8Array {
  return ArrayBuffer.isView(x) && tag(x) === '[object Uint8Array]';
}
