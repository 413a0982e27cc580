// Sizes as a user writes them: '256M', '1G', '512k', '64KiB' or a number of bytes. Every option
// that takes a size in bytes accepts both forms, through parseSize().
import type { ErrorCode } from './error-codes.js';
import { InvalidArgumentError } from './errors.js';

/** A size in bytes: a number, or a string such as '256M', '1G', '512k' (powers of 1024). */
export type Size = number | string;

const UNITS: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/**
 * '256M' / '1G' / '512k' / '64KiB' / 1048576 → bytes. `what` names the option in the error
 * (`ERR_INVALID_MEMORY` for 'memory', `ERR_INVALID_ARG` otherwise). `allowZero` accepts 0.
 */
export function parseSize(v: Size, what = 'memory', opts: { allowZero?: boolean } = {}): number {
  const code: ErrorCode = what === 'memory' ? 'ERR_INVALID_MEMORY' : 'ERR_INVALID_ARG';
  const min = opts.allowZero ? 0 : 1;
  let n: number;
  if (typeof v === 'number') {
    n = v;
  } else if (typeof v === 'string') {
    const m = /^\s*(\d+)\s*([kKmMgGtT]?)(i?[bB])?\s*$/.exec(v);
    if (!m) throw new InvalidArgumentError(`${what} "${v}" is not a size like 256M or 1G`, code);
    n = Number(m[1]) * UNITS[m[2]!.toUpperCase()]!;
  } else {
    throw new InvalidArgumentError(`${what} must be a number of bytes or a string like 256M, got ${typeof v}`, code);
  }
  if (!Number.isSafeInteger(n) || n < min) {
    throw new InvalidArgumentError(`${what} must be ${min === 0 ? 'a non-negative' : 'a positive'} integer number of bytes, got ${String(v)}`, code);
  }
  return n;
}
