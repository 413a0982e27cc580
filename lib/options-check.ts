// Option objects are checked at the boundary: not an object, or a key the function does not
// know (a typo such as `memroy`), is a coded error naming the function and the option, instead
// of a default silently used.
import { InvalidArgumentError } from './errors.js';

/** Throw ERR_INVALID_ARG unless `o` is undefined or a plain object whose keys are all in `known`. */
export function checkOptions(where: string, o: unknown, known: readonly string[]): void {
  if (o === undefined) return;
  if (o === null || typeof o !== 'object' || Array.isArray(o)) {
    throw new InvalidArgumentError(`${where}: options must be an object, got ${o === null ? 'null' : Array.isArray(o) ? 'an array' : typeof o}`);
  }
  const unknown = Object.keys(o).filter((k) => !known.includes(k));
  if (unknown.length > 0) {
    throw new InvalidArgumentError(`${where}: unknown option${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => JSON.stringify(k)).join(', ')} (known: ${known.join(', ')})`);
  }
}

/**
 * The option names of `T`, from an object that must list every one of them: adding an option to
 * an options interface without adding it here is a compile error, so checkOptions() can never
 * refuse a documented option.
 */
export function keysOf<T>(keys: Record<keyof T, true>): readonly string[] {
  return Object.keys(keys);
}
