// struct hvm_start_info (Xen public/arch-x86/hvm/start_info.h), version 1, the PVH boot
// protocol's only argument: at BOOT_INFO_START, followed by the module list and the memory map.
import { InvalidArgumentError } from '../errors.js';
import type { GuestMemory } from '../kvm/memory.js';
import { BOOT_INFO_END, BOOT_INFO_START } from '../platform/layout.js';
import type { E820Entry } from './e820.js';
import { writeGuest } from './image.js';

export const XEN_HVM_START_MAGIC_VALUE = 0x336ec578;
/** Version 1 added memmap_paddr/memmap_entries. */
export const HVM_START_INFO_VERSION = 1;
export const HVM_START_INFO_SIZE = 56;
export const HVM_MODLIST_ENTRY_SIZE = 32;
export const HVM_MEMMAP_ENTRY_SIZE = 24;
// Field offsets.
export const SI_MAGIC = 0;
export const SI_VERSION = 4;
export const SI_FLAGS = 8;
export const SI_NR_MODULES = 12;
export const SI_MODLIST_PADDR = 16;
export const SI_CMDLINE_PADDR = 24;
export const SI_RSDP_PADDR = 32;
export const SI_MEMMAP_PADDR = 40;
export const SI_MEMMAP_ENTRIES = 48;

export interface StartInfoInput {
  cmdlineAddr: number;
  modules: Array<{ addr: number; size: number; cmdlineAddr?: number }>;
  e820: readonly E820Entry[];
  rsdpAddr?: number;
}

/** Write start_info + modlist + memmap; returns the start_info address. */
export function writeStartInfo(memory: GuestMemory, si: StartInfoInput): number {
  const modlistOff = align8(HVM_START_INFO_SIZE);
  const memmapOff = modlistOff + si.modules.length * HVM_MODLIST_ENTRY_SIZE;
  const total = memmapOff + si.e820.length * HVM_MEMMAP_ENTRY_SIZE;
  if (BOOT_INFO_START + total > BOOT_INFO_END) {
    throw new InvalidArgumentError(`PVH start_info (${total} bytes) does not fit the boot-info area`, 'ERR_BOOT_INFO_TOO_LARGE');
  }
  const buf = new Uint8Array(total);
  const dv = new DataView(buf.buffer);
  const u64 = (o: number, v: number): void => dv.setBigUint64(o, BigInt(v), true);
  dv.setUint32(SI_MAGIC, XEN_HVM_START_MAGIC_VALUE, true);
  dv.setUint32(SI_VERSION, HVM_START_INFO_VERSION, true);
  dv.setUint32(SI_FLAGS, 0, true);
  dv.setUint32(SI_NR_MODULES, si.modules.length, true);
  u64(SI_MODLIST_PADDR, si.modules.length > 0 ? BOOT_INFO_START + modlistOff : 0);
  u64(SI_CMDLINE_PADDR, si.cmdlineAddr);
  u64(SI_RSDP_PADDR, si.rsdpAddr ?? 0);
  u64(SI_MEMMAP_PADDR, BOOT_INFO_START + memmapOff);
  dv.setUint32(SI_MEMMAP_ENTRIES, si.e820.length, true);
  si.modules.forEach((m, i) => {
    // struct hvm_modlist_entry { paddr, size, cmdline_paddr, reserved }
    const o = modlistOff + i * HVM_MODLIST_ENTRY_SIZE;
    u64(o, m.addr);
    u64(o + 8, m.size);
    u64(o + 16, m.cmdlineAddr ?? 0);
  });
  si.e820.forEach((e, i) => {
    // struct hvm_memmap_table_entry { addr, size, type, reserved }; types are the e820 ones.
    const o = memmapOff + i * HVM_MEMMAP_ENTRY_SIZE;
    u64(o, e.addr);
    u64(o + 8, e.size);
    dv.setUint32(o + 16, e.type, true);
  });
  writeGuest(memory, BOOT_INFO_START, buf);
  return BOOT_INFO_START;
}

function align8(n: number): number {
  return (n + 7) & ~7;
}
