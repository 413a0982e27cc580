// Small helpers shared by the loaders: bounds-checked little-endian reads from a kernel file,
// and guest writes that may span adjacent RAM slots (the host splits big RAM into several).
import { InvalidArgumentError } from '../errors.js';
import type { GuestMemory } from '../kvm/memory.js';

export function hex(n: number | bigint): string {
  return `0x${n.toString(16)}`;
}

/** Read-only view of a kernel file; every read past the end is ERR_KERNEL_TRUNCATED. */
export class ImageReader {
  readonly bytes: Uint8Array;
  private readonly dv: DataView;
  constructor(bytes: Uint8Array, readonly what = 'kernel image') {
    this.bytes = bytes;
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  get length(): number {
    return this.bytes.length;
  }
  check(offset: number, size: number, field: string): void {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + size > this.bytes.length) {
      throw new InvalidArgumentError(
        `${this.what} is truncated: ${field} at offset ${hex(offset)} (+${size}) is past its end (${this.bytes.length} bytes)`,
        'ERR_KERNEL_TRUNCATED');
    }
  }
  u8(o: number, field = 'byte'): number {
    this.check(o, 1, field);
    return this.dv.getUint8(o);
  }
  u16(o: number, field = 'u16'): number {
    this.check(o, 2, field);
    return this.dv.getUint16(o, true);
  }
  u32(o: number, field = 'u32'): number {
    this.check(o, 4, field);
    return this.dv.getUint32(o, true);
  }
  /** A u64 as a number; values past 2^53 are refused rather than rounded. */
  u64(o: number, field = 'u64'): number {
    this.check(o, 8, field);
    const v = this.dv.getBigUint64(o, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new InvalidArgumentError(`${this.what}: ${field} ${hex(v)} is out of range`, 'ERR_KERNEL_FORMAT');
    }
    return Number(v);
  }
  u64big(o: number, field = 'u64'): bigint {
    this.check(o, 8, field);
    return this.dv.getBigUint64(o, true);
  }
  slice(o: number, size: number, field: string): Uint8Array {
    this.check(o, size, field);
    return this.bytes.subarray(o, o + size);
  }
}

/**
 * Copy bytes into guest RAM, splitting at RAM-slot boundaries. A range that leaves RAM throws
 * GuestMemoryError from GuestMemory itself (callers check ranges first for clearer messages).
 */
export function writeGuest(memory: GuestMemory, gpa: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) {
    const n = spanAt(memory, gpa + done, bytes.length - done);
    memory.write(gpa + done, bytes.subarray(done, done + n));
    done += n;
  }
}

/** Zero [gpa, gpa+length) in guest RAM, splitting at RAM-slot boundaries. */
export function zeroGuest(memory: GuestMemory, gpa: number, length: number): void {
  let done = 0;
  while (done < length) {
    const n = spanAt(memory, gpa + done, length - done);
    memory.fill(gpa + done, n, 0);
    done += n;
  }
}

/** How many of `want` bytes at gpa lie in the slot containing gpa (at least 1 so errors surface). */
function spanAt(memory: GuestMemory, gpa: number, want: number): number {
  for (const r of memory.regions) {
    if (gpa >= r.guestPhysAddr && gpa < r.guestPhysAddr + r.size) {
      return Math.min(want, r.guestPhysAddr + r.size - gpa);
    }
  }
  return want; // not in RAM: let GuestMemory throw its GuestMemoryError
}

/** Encode a NUL-free string as bytes plus the terminating NUL. */
export function cString(s: string, what: string): Uint8Array {
  const b = new TextEncoder().encode(s);
  if (b.includes(0)) throw new InvalidArgumentError(`${what} contains a NUL byte`, 'ERR_CMDLINE_INVALID');
  const out = new Uint8Array(b.length + 1);
  out.set(b);
  return out;
}
