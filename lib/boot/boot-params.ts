// struct boot_params, the Linux "zero page" (arch/x86/include/uapi/asm/bootparam.h), built in a
// 4 KiB buffer and written at ZERO_PAGE_START. Also where the initrd goes (ramdisk_* fields).
import { InvalidArgumentError } from '../errors.js';
import type { GuestMemory } from '../kvm/memory.js';
import { FOUR_GIB, HIMEM_START, ZERO_PAGE_START } from '../platform/layout.js';
import { E820_ENTRY_SIZE, E820_MAX_ENTRIES_ZEROPAGE, E820_RAM, type E820Entry, type RamRange, buildE820 } from './e820.js';
import { hex, writeGuest } from './image.js';
import type { LoadOptions } from './types.js';
import {
  BOOT_FLAG_MAGIC, BOOT_PROTOCOL_VERSION, CAN_USE_HEAP, HDRS_MAGIC, LOADED_HIGH, OFF_BOOT_FLAG, OFF_CMD_LINE_PTR,
  OFF_CMDLINE_SIZE, OFF_CODE32_START, OFF_HEADER, OFF_HEAP_END_PTR, OFF_INITRD_ADDR_MAX, OFF_JUMP, OFF_KERNEL_ALIGNMENT,
  OFF_LOADFLAGS, OFF_RAMDISK_IMAGE, OFF_RAMDISK_SIZE, OFF_TYPE_OF_LOADER, OFF_VERSION, SETUP_HEADER_END,
  SETUP_HEADER_OFFSET, TYPE_OF_LOADER_UNDEFINED,
} from './setup-header.js';

export const BOOT_PARAMS_SIZE = 0x1000;
// struct boot_params fields outside the setup header.
export const OFF_ACPI_RSDP_ADDR = 0x070;
export const OFF_EXT_RAMDISK_IMAGE = 0x0c0;
export const OFF_EXT_RAMDISK_SIZE = 0x0c4;
export const OFF_EXT_CMD_LINE_PTR = 0x0c8;
export const OFF_E820_ENTRIES = 0x1e8;
export const OFF_SENTINEL = 0x1ef;
export const OFF_E820_TABLE = 0x2d0;
/**
 * heap_end_ptr: end of the real-mode setup heap, relative to the setup code, minus 0x200
 * (boot.rst). The 64-bit entry never runs setup code, but the kernel still reads it.
 */
export const HEAP_END_PTR = 0xfe00;
/** Page alignment for the initrd: boot.rst only asks for it, every loader gives it. */
const PAGE = 0x1000;

export interface ZeroPageInput {
  /** Bytes 0x1f1..end of the kernel's own setup header (bzImage); absent for a vmlinux. */
  setupHeader?: Uint8Array;
  /** Physical address the protected-mode kernel was loaded at (becomes code32_start). */
  kernelStart: number;
  cmdline: { addr: number; length: number };
  /** Limit we enforced (cmdline_size), recorded in a header we build ourselves. */
  cmdlineSize: number;
  ramdisk?: { start: number; size: number };
  e820: readonly E820Entry[];
  /** Kernel alignment to announce in a header we build ourselves. */
  kernelAlignment?: number;
  initrdAddrMax?: number;
  /** RSDP address, if the machine built ACPI tables (0 lets Linux scan for it). */
  rsdpAddr?: number;
}

/** Build the 4 KiB zero page. */
export function buildBootParams(z: ZeroPageInput): Uint8Array {
  const page = new Uint8Array(BOOT_PARAMS_SIZE);
  const dv = new DataView(page.buffer);
  if (z.setupHeader !== undefined) {
    if (SETUP_HEADER_OFFSET + z.setupHeader.length > BOOT_PARAMS_SIZE) {
      throw new InvalidArgumentError(`setup header of ${z.setupHeader.length} bytes does not fit the zero page`, 'ERR_KERNEL_FORMAT');
    }
    // boot.rst: copy the header from the kernel image, then fill in what the loader owns.
    page.set(z.setupHeader, SETUP_HEADER_OFFSET);
  } else {
    // A vmlinux has no header: write the fields Linux reads as a 2.15 bzImage header would.
    dv.setUint16(OFF_BOOT_FLAG, BOOT_FLAG_MAGIC, true);
    dv.setUint8(OFF_JUMP + 1, SETUP_HEADER_END - (OFF_JUMP + 2));
    dv.setUint32(OFF_HEADER, HDRS_MAGIC, true);
    dv.setUint16(OFF_VERSION, BOOT_PROTOCOL_VERSION, true);
    dv.setUint32(OFF_KERNEL_ALIGNMENT, z.kernelAlignment ?? 0x200000, true);
    dv.setUint32(OFF_CMDLINE_SIZE, z.cmdlineSize, true);
    dv.setUint32(OFF_INITRD_ADDR_MAX, z.initrdAddrMax ?? 0x7fffffff, true);
  }
  dv.setUint8(OFF_TYPE_OF_LOADER, TYPE_OF_LOADER_UNDEFINED);
  dv.setUint8(OFF_LOADFLAGS, dv.getUint8(OFF_LOADFLAGS) | LOADED_HIGH | CAN_USE_HEAP);
  dv.setUint16(OFF_HEAP_END_PTR, HEAP_END_PTR, true);
  dv.setUint32(OFF_CODE32_START, z.kernelStart, true);
  setSplit(dv, OFF_CMD_LINE_PTR, OFF_EXT_CMD_LINE_PTR, z.cmdline.addr);
  if (z.ramdisk !== undefined) {
    setSplit(dv, OFF_RAMDISK_IMAGE, OFF_EXT_RAMDISK_IMAGE, z.ramdisk.start);
    setSplit(dv, OFF_RAMDISK_SIZE, OFF_EXT_RAMDISK_SIZE, z.ramdisk.size);
  }
  if (z.rsdpAddr !== undefined && z.rsdpAddr !== 0) dv.setBigUint64(OFF_ACPI_RSDP_ADDR, BigInt(z.rsdpAddr), true);
  if (z.e820.length > E820_MAX_ENTRIES_ZEROPAGE) {
    throw new InvalidArgumentError(`${z.e820.length} e820 entries do not fit the zero page (max ${E820_MAX_ENTRIES_ZEROPAGE})`, 'ERR_RAM_LAYOUT');
  }
  dv.setUint8(OFF_E820_ENTRIES, z.e820.length);
  z.e820.forEach((e, i) => {
    const o = OFF_E820_TABLE + i * E820_ENTRY_SIZE;
    dv.setBigUint64(o, BigInt(e.addr), true);
    dv.setBigUint64(o + 8, BigInt(e.size), true);
    dv.setUint32(o + 16, e.type, true);
  });
  return page;
}

/** A 64-bit quantity stored as a 32-bit header field plus its ext_ high half in boot_params. */
function setSplit(dv: DataView, lowOff: number, highOff: number, value: number): void {
  dv.setUint32(lowOff, value % FOUR_GIB, true);
  dv.setUint32(highOff, Math.floor(value / FOUR_GIB), true);
}

export function writeBootParams(memory: GuestMemory, z: ZeroPageInput): void {
  writeGuest(memory, ZERO_PAGE_START, buildBootParams(z));
}

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
