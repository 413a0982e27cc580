// The boot GDT at GDT_START and the matching segment registers for each entry mode. The
// descriptors in memory and the hidden segment state we hand KVM describe the same segments,
// so a guest that reloads a selector (Linux does, right away) gets what it already had.
import type { GuestMemory } from '../kvm/memory.js';
import type { Segment, SregsPatch } from '../kvm/regs.js';
import { GDT_START, IDT_START } from '../platform/layout.js';
import { writeGuest } from './image.js';

/** Selectors. Linux's boot protocol wants __BOOT_CS = 0x10 and __BOOT_DS = 0x18. */
export const BOOT_CS = 0x10;
export const BOOT_DS = 0x18;
export const BOOT_TSS = 0x20;

// Access-byte segment types (SDM Vol. 3 3.4.5.1): code execute/read accessed, data read/write
// accessed, and a busy 32/64-bit TSS (what VM entry requires of TR).
const TYPE_CODE_RX_ACCESSED = 0xb;
const TYPE_DATA_RW_ACCESSED = 0x3;
const TYPE_TSS_BUSY = 0xb;

export type EntryMode = 'long' | 'protected';

interface Desc {
  base: number; limit: number; type: number; s: number; dpl: number; present: number;
  avl: number; l: number; db: number; g: number;
}

/** Pack a segment descriptor (SDM Vol. 3 Figure 3-8). */
export function encodeDescriptor(d: Desc): bigint {
  const base = BigInt(d.base >>> 0);
  const limit = BigInt(d.limit & 0xfffff);
  const access = BigInt(d.type | (d.s << 4) | (d.dpl << 5) | (d.present << 7));
  const flags = BigInt(d.avl | (d.l << 1) | (d.db << 2) | (d.g << 3));
  return (limit & 0xffffn)
    | ((base & 0xffffffn) << 16n)
    | (access << 40n)
    | ((limit >> 16n) << 48n)
    | (flags << 52n)
    | ((base >> 24n) << 56n);
}

function codeDesc(mode: EntryMode): Desc {
  // Long mode: L=1, D must be 0. Protected mode: D=1 (32-bit default operand size).
  return { base: 0, limit: 0xfffff, type: TYPE_CODE_RX_ACCESSED, s: 1, dpl: 0, present: 1, avl: 0,
    l: mode === 'long' ? 1 : 0, db: mode === 'long' ? 0 : 1, g: 1 };
}
const DATA_DESC: Desc = { base: 0, limit: 0xfffff, type: TYPE_DATA_RW_ACCESSED, s: 1, dpl: 0, present: 1, avl: 0, l: 0, db: 1, g: 1 };
const TSS_DESC: Desc = { base: 0, limit: 0x67, type: TYPE_TSS_BUSY, s: 0, dpl: 0, present: 1, avl: 0, l: 0, db: 0, g: 0 };

/** The hidden part of a segment register as struct kvm_segment, from its descriptor. */
function toSegment(d: Desc, selector: number): Segment {
  return {
    base: BigInt(d.base), selector, type: d.type, present: d.present, dpl: d.dpl, db: d.db, s: d.s, l: d.l,
    g: d.g, avl: d.avl, unusable: 0,
    // The limit KVM wants is the byte-granular one.
    limit: d.g ? d.limit * 0x1000 + 0xfff : d.limit,
  };
}

/** GDT entries: null, null, code (0x10), data (0x18), TSS (0x20). */
export function gdtEntries(mode: EntryMode): bigint[] {
  return [0n, 0n, encodeDescriptor(codeDesc(mode)), encodeDescriptor(DATA_DESC), encodeDescriptor(TSS_DESC)];
}

/** Write the GDT for `mode` at GDT_START; returns its limit. */
export function writeGdt(memory: GuestMemory, mode: EntryMode): number {
  const entries = gdtEntries(mode);
  const bytes = new Uint8Array(entries.length * 8);
  const dv = new DataView(bytes.buffer);
  entries.forEach((e, i) => dv.setBigUint64(i * 8, e, true));
  writeGuest(memory, GDT_START, bytes);
  return bytes.length - 1;
}

// CR0, CR4 and EFER bits.
export const CR0_PE = 1n << 0n;
export const CR0_ET = 1n << 4n;
export const CR0_PG = 1n << 31n;
export const CR4_PAE = 1n << 5n;
export const EFER_LME = 1n << 8n;
export const EFER_LMA = 1n << 10n;

/**
 * Special registers for a flat entry: CS/DS/ES/FS/GS/SS as in the GDT written by writeGdt,
 * TR a busy TSS, an empty IDT, and either paging off (protected) or long mode on `cr3`.
 */
export function entrySregs(mode: EntryMode, cr3?: number): SregsPatch {
  const cs = toSegment(codeDesc(mode), BOOT_CS);
  const ds = toSegment(DATA_DESC, BOOT_DS);
  const sregs: SregsPatch = {
    cs, ds, es: ds, fs: ds, gs: ds, ss: ds,
    tr: toSegment(TSS_DESC, BOOT_TSS),
    gdt: { base: BigInt(GDT_START), limit: gdtEntries(mode).length * 8 - 1 },
    idt: { base: BigInt(IDT_START), limit: 0 },
  };
  if (mode === 'long') {
    sregs.cr0 = CR0_PE | CR0_ET | CR0_PG;
    sregs.cr3 = BigInt(cr3 ?? 0);
    sregs.cr4 = CR4_PAE;
    sregs.efer = EFER_LME | EFER_LMA;
  } else {
    sregs.cr0 = CR0_PE | CR0_ET;
    sregs.cr3 = 0n;
    sregs.cr4 = 0n;
    sregs.efer = 0n;
  }
  return sregs;
}

/** Real mode with every segment at `segment` (paragraph number): for flat 16-bit guests. */
export function realModeSregs(segment: number): SregsPatch {
  const seg: Segment = {
    base: BigInt(segment * 16), limit: 0xffff, selector: segment, type: TYPE_DATA_RW_ACCESSED, present: 1,
    dpl: 0, db: 0, s: 1, l: 0, g: 0, avl: 0, unusable: 0,
  };
  return {
    cs: { ...seg, type: TYPE_CODE_RX_ACCESSED }, ds: seg, es: seg, fs: seg, gs: seg, ss: seg,
    idt: { base: 0n, limit: 0x3ff },
    cr0: CR0_ET, cr3: 0n, cr4: 0n, efer: 0n,
  };
}
