// 64-bit values as a caller writes them: a bigint, or a number when it fits (0x1000 reads better
// than 0x1000n). Getters always return bigint, so nothing is silently rounded on the way out.
import { InvalidArgumentError } from '../errors.js';

/** A 64-bit value: a bigint, or a number that is a safe integer. */
export type U64 = bigint | number;

/** `v` as a bigint; a number must be a safe integer. `what` names the field in the error. */
export function toBigInt(v: U64, what: string): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isSafeInteger(v)) return BigInt(v);
  throw new InvalidArgumentError(`${what} must be a bigint or a safe integer number, got ${typeof v === 'number' ? v : typeof v}`);
}
