// struct boot_params, the Linux "zero page" (arch/x86/include/uapi/asm/bootparam.h), built in a
// 4 KiB buffer and written at ZERO_PAGE_START, with where the initrd went (ramdisk_* fields).
import { InvalidArgumentError } from '../errors.js';
import type { GuestMemory } from '../kvm/memory.js';
import { FOUR_GIB, ZERO_PAGE_START } from '../platform/layout.js';
import { E820_ENTRY_SIZE, E820_MAX_ENTRIES_ZEROPAGE, type E820Entry } from './e820.js';
import { writeGuest } from './image.js';
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

// Placing the initrd is the loader's part, not the zero page's: lib/boot/initrd.ts.
export { linuxInitrd, placeInitrd } from './initrd.js';
