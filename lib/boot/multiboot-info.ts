// The multiboot_info structure (Multiboot Specification 0.6.96 §3.3) a Multiboot kernel finds
// in EBX: memory sizes, command line, modules and the memory map. The loader (multiboot.ts)
// places the image; this file only writes what it tells the kernel.
import { InvalidArgumentError } from '../errors.js';
import type { GuestMemory } from '../kvm/memory.js';
import { BOOT_INFO_END, BOOT_INFO_START } from '../platform/layout.js';
import type { E820Entry } from './e820.js';
import { writeGuest } from './image.js';

// multiboot_info.flags
export const MULTIBOOT_INFO_MEMORY = 1 << 0;
export const MULTIBOOT_INFO_CMDLINE = 1 << 2;
export const MULTIBOOT_INFO_MODS = 1 << 3;
export const MULTIBOOT_INFO_MEM_MAP = 1 << 6;
export const MULTIBOOT_INFO_BOOT_LOADER_NAME = 1 << 9;
// multiboot_info field offsets.
export const MBI_FLAGS = 0;
export const MBI_MEM_LOWER = 4;
export const MBI_MEM_UPPER = 8;
export const MBI_CMDLINE = 16;
export const MBI_MODS_COUNT = 20;
export const MBI_MODS_ADDR = 24;
export const MBI_MMAP_LENGTH = 44;
export const MBI_MMAP_ADDR = 48;
export const MBI_BOOT_LOADER_NAME = 64;
/** The info structure through the framebuffer fields is 116 bytes; the mmap follows at 128. */
const MBI_SIZE = 128;
/** Each mmap entry: size (u32, = 20, not counting itself), base_addr u64, length u64, type u32. */
export const MMAP_ENTRY_SIZE = 24;
/** Each module: mod_start, mod_end, string, reserved. */
export const MODULE_ENTRY_SIZE = 16;

export interface MultibootInfoInput {
  memLowerKiB: number;
  memUpperKiB: number;
  cmdlineAddr: number;
  modules: Array<{ start: number; end: number; stringAddr: number }>;
  e820: readonly E820Entry[];
  loaderNameAddr: number;
}

/** Write multiboot_info at BOOT_INFO_START, its mmap at +128 and the module list after it. */
export function writeMultibootInfo(memory: GuestMemory, mi: MultibootInfoInput): void {
  const mmapOff = MBI_SIZE;
  const modsOff = mmapOff + mi.e820.length * MMAP_ENTRY_SIZE;
  const total = modsOff + mi.modules.length * MODULE_ENTRY_SIZE;
  if (BOOT_INFO_START + total > BOOT_INFO_END) {
    throw new InvalidArgumentError(`Multiboot info (${total} bytes) does not fit the boot-info area`, 'ERR_BOOT_INFO_TOO_LARGE');
  }
  const buf = new Uint8Array(total);
  const dv = new DataView(buf.buffer);
  const flags = MULTIBOOT_INFO_MEMORY | MULTIBOOT_INFO_CMDLINE | MULTIBOOT_INFO_MODS | MULTIBOOT_INFO_MEM_MAP |
    MULTIBOOT_INFO_BOOT_LOADER_NAME;
  dv.setUint32(MBI_FLAGS, flags, true);
  dv.setUint32(MBI_MEM_LOWER, mi.memLowerKiB, true);
  dv.setUint32(MBI_MEM_UPPER, Math.min(mi.memUpperKiB, 0xffffffff), true);
  dv.setUint32(MBI_CMDLINE, mi.cmdlineAddr, true);
  dv.setUint32(MBI_MODS_COUNT, mi.modules.length, true);
  dv.setUint32(MBI_MODS_ADDR, mi.modules.length > 0 ? BOOT_INFO_START + modsOff : 0, true);
  dv.setUint32(MBI_MMAP_LENGTH, mi.e820.length * MMAP_ENTRY_SIZE, true);
  dv.setUint32(MBI_MMAP_ADDR, BOOT_INFO_START + mmapOff, true);
  dv.setUint32(MBI_BOOT_LOADER_NAME, mi.loaderNameAddr, true);
  mi.e820.forEach((e, i) => {
    const o = mmapOff + i * MMAP_ENTRY_SIZE;
    dv.setUint32(o, MMAP_ENTRY_SIZE - 4, true); // size excludes the size field itself
    dv.setBigUint64(o + 4, BigInt(e.addr), true);
    dv.setBigUint64(o + 12, BigInt(e.size), true);
    dv.setUint32(o + 20, e.type, true);
  });
  mi.modules.forEach((m, i) => {
    const o = modsOff + i * MODULE_ENTRY_SIZE;
    dv.setUint32(o, m.start, true);
    dv.setUint32(o + 4, m.end, true);
    dv.setUint32(o + 8, m.stringAddr, true);
  });
  writeGuest(memory, BOOT_INFO_START, buf);
}
