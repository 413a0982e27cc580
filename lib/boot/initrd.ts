// Where a Linux initrd goes in guest RAM, and which bytes it is: placing it is the loader's
// part; boot-params.ts only tells the kernel where it went.
import { InvalidArgumentError } from '../errors.js';
import { FOUR_GIB, HIMEM_START } from '../platform/layout.js';
import { E820_RAM, type RamRange, buildE820 } from './e820.js';
import { hex } from './image.js';
import type { LoadOptions } from './types.js';

/** Page alignment for the initrd: boot.rst only asks for it, every loader gives it. */
const PAGE = 0x1000;

/**
 * Where the initrd goes: the highest page-aligned address whose whole range lies in one RAM
 * range, ends at or below `maxEnd` (initrd_addr_max + 1, and below 4 GiB), and does not
 * overlap the kernel [kernel.start, kernel.end). Linux and every bootloader put it high so the
 * kernel's decompression and early allocations below it stay free.
 */
export function placeInitrd(
  ramLayout: readonly RamRange[], size: number, maxEnd: number, kernel: { start: number; end: number },
): { start: number; end: number } {
  if (!Number.isSafeInteger(size) || size <= 0) {
    throw new InvalidArgumentError('initrd is empty', 'ERR_INITRD_INVALID');
  }
  const limit = Math.min(maxEnd, FOUR_GIB);
  const ram = buildE820(ramLayout).filter((e) => e.type === E820_RAM && e.addr >= HIMEM_START);
  for (const r of ram.sort((a, b) => b.addr - a.addr)) {
    const top = Math.min(r.addr + r.size, limit);
    let start = Math.floor((top - size) / PAGE) * PAGE;
    // Above the kernel in this range? Then it must also stay clear of it.
    if (start < kernel.end && start + size > kernel.start) start = Math.floor((kernel.start - size) / PAGE) * PAGE;
    if (start >= r.addr && start + size <= top) return { start, end: start + size };
  }
  throw new InvalidArgumentError(
    `initrd of ${size} bytes does not fit in RAM below ${hex(limit)} next to the kernel at ${hex(kernel.start)}-${hex(kernel.end)}`,
    'ERR_INITRD_TOO_LARGE');
}

/** The Linux initrd from opts: `initrd`, or the `initrds` joined (each padded to 4 bytes, as cpio wants). */
export function linuxInitrd(opts: LoadOptions): Uint8Array | undefined {
  if (opts.initrd !== undefined) return opts.initrd;
  if (opts.initrds === undefined || opts.initrds.length === 0) return undefined;
  if (opts.initrds.length === 1) return opts.initrds[0]!.bytes;
  const pad = (n: number): number => (n + 3) & ~3;
  const total = opts.initrds.reduce((n, m) => n + pad(m.bytes.length), 0);
  const out = new Uint8Array(total);
  let o = 0;
  for (const m of opts.initrds) {
    out.set(m.bytes, o);
    o += pad(m.bytes.length);
  }
  return out;
}
