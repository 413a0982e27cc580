// Range checks for register and struct fields on their way into a uapi struct: a value that
// does not fit its field is the caller's mistake, reported with the field's name, never
// truncated (BigInt.asUintN, `>>> 0`, DataView's modulo) or left to fail inside a DataView.
import { InvalidArgumentError } from '../errors.js';

const U64_MAX = (1n << 64n) - 1n;

function show(v: unknown): string {
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'number' || typeof v === 'boolean' || v === null || v === undefined) return String(v);
  return typeof v;
}

/** A 64-bit unsigned field: 0 ≤ v < 2^64, as a bigint. */
export function u64(field: string, v: unknown): bigint {
  if (typeof v === 'bigint') {
    if (v >= 0n && v <= U64_MAX) return v;
  } else if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) {
    return BigInt(v);
  }
  throw new InvalidArgumentError(`${field} must be an integer from 0 to 2^64-1 (a bigint, or a number up to 2^53-1), got ${show(v)}`);
}

/** An unsigned field of `bits` bits (8, 16 or 32), as a number; a bigint in range is accepted. */
export function uint(field: string, v: unknown, bits: 8 | 16 | 32): number {
  const max = 2 ** bits - 1;
  const n = typeof v === 'bigint' && v >= 0n && v <= BigInt(max) ? Number(v) : v;
  if (typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= max) return n;
  throw new InvalidArgumentError(`${field} must be an integer from 0 to ${max}, got ${show(v)}`);
}
