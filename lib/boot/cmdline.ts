// The kernel command line: one NUL-terminated string at CMDLINE_START, checked against the
// limit the kernel announces (setup_header.cmdline_size) so it is never silently cut short.
import { InvalidArgumentError } from '../errors.js';
import type { GuestMemory } from '../kvm/memory.js';
import { CMDLINE_MAX, CMDLINE_START } from '../platform/layout.js';
import { cString, writeGuest } from './image.js';

export interface PlacedString {
  /** Guest-physical address of the first byte. */
  addr: number;
  /** Length in bytes, without the terminating NUL. */
  length: number;
}

/**
 * Encode a command line, refusing one longer than `maxLength` bytes (cmdline_size: the
 * terminating NUL not included) or longer than the area layout.ts reserves for it.
 */
export function encodeCmdline(cmdline: string, maxLength: number = CMDLINE_MAX - 1): Uint8Array {
  if (typeof cmdline !== 'string') throw new InvalidArgumentError('cmdline must be a string');
  const bytes = cString(cmdline, 'kernel command line');
  const limit = Math.min(maxLength, CMDLINE_MAX - 1);
  if (bytes.length - 1 > limit) {
    throw new InvalidArgumentError(
      `kernel command line is ${bytes.length - 1} bytes; the kernel accepts at most ${limit}`, 'ERR_CMDLINE_TOO_LONG');
  }
  return bytes;
}

/** Write the command line at CMDLINE_START. */
export function writeCmdline(memory: GuestMemory, cmdline: string, maxLength?: number): PlacedString {
  const bytes = encodeCmdline(cmdline, maxLength);
  writeGuest(memory, CMDLINE_START, bytes);
  return { addr: CMDLINE_START, length: bytes.length - 1 };
}

/**
 * Strings placed one after another in the command-line area (Multiboot module names, the
 * Multiboot boot_loader_name): a bump allocator that refuses to run past the area.
 */
export class StringArea {
  private next: number;
  private readonly end = CMDLINE_START + CMDLINE_MAX;
  constructor(private readonly memory: GuestMemory, start = CMDLINE_START) {
    this.next = start;
  }
  put(s: string, what: string): number {
    const bytes = cString(s, what);
    if (this.next + bytes.length > this.end) {
      throw new InvalidArgumentError(
        `${what} does not fit in the ${CMDLINE_MAX}-byte command-line area`, 'ERR_CMDLINE_TOO_LONG');
    }
    const addr = this.next;
    writeGuest(this.memory, addr, bytes);
    this.next += bytes.length;
    return addr;
  }
}
