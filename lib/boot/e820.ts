// The BIOS memory map (INT 15h AX=E820h) as the guest is told it: in the Linux zero page
// (boot_params.e820_table), in the PVH start_info memmap and in the Multiboot mmap. The same
// table is handed back to the machine so fw_cfg can serve it too.
import { InvalidArgumentError } from '../errors.js';
import { EBDA_START, HIMEM_START, MMIO_HOLE_START, FOUR_GIB } from '../platform/layout.js';

/** E820 types (ACPI "Address Range Types"); the numbers are what every protocol carries. */
export const E820_RAM = 1;
export const E820_RESERVED = 2;
export const E820_ACPI = 3;
export const E820_NVS = 4;
export const E820_UNUSABLE = 5;

/** Size of struct boot_e820_entry { __u64 addr; __u64 size; __u32 type; } __packed. */
export const E820_ENTRY_SIZE = 20;
/** E820_MAX_ENTRIES_ZEROPAGE: slots in boot_params.e820_table. */
export const E820_MAX_ENTRIES_ZEROPAGE = 128;

export interface E820Entry {
  addr: number;
  size: number;
  type: number;
}

export interface RamRange {
  guestPhysAddr: number;
  size: number;
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/** Check a RAM layout: sorted-able, non-overlapping, page aligned, none inside the PCI hole. */
export function checkRamLayout(ramLayout: readonly RamRange[]): RamRange[] {
  if (!Array.isArray(ramLayout) || ramLayout.length === 0) {
    throw new InvalidArgumentError('ramLayout must list at least one RAM region', 'ERR_RAM_LAYOUT');
  }
  const sorted = [...ramLayout].sort((a, b) => a.guestPhysAddr - b.guestPhysAddr);
  let prevEnd = -1;
  for (const r of sorted) {
    const { guestPhysAddr: start, size } = r;
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(size) || start < 0 || size <= 0) {
      throw new InvalidArgumentError(`RAM region {guestPhysAddr: ${start}, size: ${size}} is not a valid range`, 'ERR_RAM_LAYOUT');
    }
    if (start % 0x1000 !== 0 || size % 0x1000 !== 0) {
      throw new InvalidArgumentError(`RAM region ${hex(start)}+${hex(size)} is not page aligned`, 'ERR_RAM_LAYOUT');
    }
    if (start < prevEnd) {
      throw new InvalidArgumentError(`RAM region at ${hex(start)} overlaps the previous one`, 'ERR_RAM_LAYOUT');
    }
    const end = start + size;
    if (start < FOUR_GIB && end > MMIO_HOLE_START) {
      throw new InvalidArgumentError(
        `RAM region ${hex(start)}-${hex(end)} reaches into the PCI hole at ${hex(MMIO_HOLE_START)}`, 'ERR_RAM_LAYOUT');
    }
    prevEnd = end;
  }
  const first = sorted[0]!;
  // Every loader puts its boot structures below 1 MiB and the kernel at or above it.
  if (first.guestPhysAddr !== 0 || first.size <= HIMEM_START) {
    throw new InvalidArgumentError('ramLayout must start with a region at 0 larger than 1 MiB', 'ERR_RAM_LAYOUT');
  }
  return sorted;
}

/**
 * The e820 map for a RAM layout. Low memory stops at the EBDA; EBDA..1 MiB is reserved (MP
 * table at the EBDA, ACPI tables and the BIOS area at 0xe0000-0xfffff live there), so the
 * firmware-table helpers never need their own entry. Gaps (the PCI hole) are left out, which
 * is what tells Linux where it may place PCI BARs.
 */
export function buildE820(ramLayout: readonly RamRange[]): E820Entry[] {
  const sorted = checkRamLayout(ramLayout);
  const out: E820Entry[] = [
    { addr: 0, size: EBDA_START, type: E820_RAM },
    { addr: EBDA_START, size: HIMEM_START - EBDA_START, type: E820_RESERVED },
  ];
  sorted.forEach((r, i) => {
    const start = i === 0 ? HIMEM_START : r.guestPhysAddr;
    const end = r.guestPhysAddr + r.size;
    const last = out[out.length - 1]!;
    // Adjacent RAM regions (the host splits big RAM into several slots) are one range to the guest.
    if (last.type === E820_RAM && last.addr + last.size === start) last.size += end - start;
    else out.push({ addr: start, size: end - start, type: E820_RAM });
  });
  return out;
}

/** Top of the RAM range that holds 1 MiB (where kernels and initrds go). */
export function lowRamEnd(ramLayout: readonly RamRange[]): number {
  const sorted = checkRamLayout(ramLayout);
  let end = sorted[0]!.guestPhysAddr + sorted[0]!.size;
  for (const r of sorted.slice(1)) {
    if (r.guestPhysAddr !== end || r.guestPhysAddr >= FOUR_GIB) break;
    end += r.size;
  }
  return end;
}

/** Whether [start, end) lies inside one contiguous RAM range. */
export function inRam(ramLayout: readonly RamRange[], start: number, end: number): boolean {
  for (const e of buildE820(ramLayout)) {
    if (e.type === E820_RAM && start >= e.addr && end <= e.addr + e.size) return true;
  }
  // The boot structures live in [0, EBDA) which is RAM too; covered above.
  return false;
}
