// ELF parsing (System V gABI; the x86-64 psABI) for the loaders: program headers, PT_LOAD
// segments loaded at their physical addresses, and notes (the Xen PVH entry note). Used for
// Linux vmlinux (ELF64) and Multiboot kernels (usually ELF32).
import { InvalidArgumentError } from '../errors.js';
import type { GuestMemory } from '../kvm/memory.js';
import { CMDLINE_MAX, CMDLINE_START, EBDA_START, GDT_START, HIMEM_START, PD_START } from '../platform/layout.js';
import { type RamRange, inRam } from './e820.js';
import { ImageReader, hex, writeGuest, zeroGuest } from './image.js';

export const ELFCLASS32 = 1;
export const ELFCLASS64 = 2;
export const ELFDATA2LSB = 1;
export const EM_386 = 3;
export const EM_X86_64 = 62;
export const PT_LOAD = 1;
export const PT_NOTE = 4;
/** xen/include/public/elfnote.h: physical 32-bit entry point of a PVH kernel. */
export const XEN_ELFNOTE_PHYS32_ENTRY = 18;

export interface ElfSegment {
  type: number;
  offset: number;
  vaddr: number;
  paddr: number;
  filesz: number;
  memsz: number;
}

export interface ElfNote {
  name: string;
  type: number;
  desc: Uint8Array;
}

export interface ElfFile {
  elfClass: 32 | 64;
  machine: number;
  /** e_entry as written (may be virtual; see entryPhysical). */
  entry: number;
  segments: ElfSegment[];
}

export function isElf(image: Uint8Array): boolean {
  return image.length >= 4 && image[0] === 0x7f && image[1] === 0x45 && image[2] === 0x4c && image[3] === 0x46;
}

/**
 * Parse an ELF header and its program headers. Only little-endian x86 (EM_386 for 32-bit,
 * EM_X86_64 for 64-bit) is accepted; anything else is ERR_KERNEL_ARCH.
 */
export function parseElf(image: Uint8Array): ElfFile {
  const r = new ImageReader(image, 'ELF kernel');
  if (!isElf(image)) throw new InvalidArgumentError('not an ELF file (no \\x7fELF magic)', 'ERR_KERNEL_FORMAT');
  const cls = r.u8(4, 'e_ident[EI_CLASS]');
  const data = r.u8(5, 'e_ident[EI_DATA]');
  const machine = r.u16(18, 'e_machine');
  if (data !== ELFDATA2LSB) throw new InvalidArgumentError('ELF kernel is big-endian; x86 kernels are little-endian', 'ERR_KERNEL_ARCH');
  if (!((cls === ELFCLASS64 && machine === EM_X86_64) || (cls === ELFCLASS32 && machine === EM_386))) {
    throw new InvalidArgumentError(
      `ELF kernel is class ${cls === ELFCLASS64 ? 'ELF64' : cls === ELFCLASS32 ? 'ELF32' : cls} machine ${machine}; ` +
      'node-kvm loads x86-64 (ELF64, e_machine 62) or i386 Multiboot (ELF32, e_machine 3) kernels', 'ERR_KERNEL_ARCH');
  }
  const is64 = cls === ELFCLASS64;
  const entry = is64 ? vaddr64(r, 0x18, 'e_entry') : r.u32(0x18, 'e_entry');
  const phoff = is64 ? r.u64(0x20, 'e_phoff') : r.u32(0x1c, 'e_phoff');
  const phentsize = r.u16(is64 ? 0x36 : 0x2a, 'e_phentsize');
  const phnum = r.u16(is64 ? 0x38 : 0x2c, 'e_phnum');
  const minEnt = is64 ? 56 : 32;
  if (phnum === 0) throw new InvalidArgumentError('ELF kernel has no program headers', 'ERR_KERNEL_FORMAT');
  if (phentsize < minEnt) throw new InvalidArgumentError(`ELF e_phentsize ${phentsize} is smaller than ${minEnt}`, 'ERR_KERNEL_FORMAT');
  r.check(phoff, phentsize * phnum, 'program header table');
  const segments: ElfSegment[] = [];
  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * phentsize;
    const f = `program header ${i}`;
    const seg: ElfSegment = is64
      ? { type: r.u32(o, f), offset: r.u64(o + 8, f), vaddr: vaddr64(r, o + 16, f), paddr: r.u64(o + 24, f),
        filesz: r.u64(o + 32, f), memsz: r.u64(o + 40, f) }
      : { type: r.u32(o, f), offset: r.u32(o + 4, f), vaddr: r.u32(o + 8, f), paddr: r.u32(o + 12, f),
        filesz: r.u32(o + 16, f), memsz: r.u32(o + 20, f) };
    segments.push(seg);
  }
  return { elfClass: is64 ? 64 : 32, machine, entry, segments };
}

/**
 * Kernel virtual addresses (0xffffffff8...) do not fit a JS number exactly. They only serve to
 * translate e_entry, so a canonical high address keeps its low 47 bits (its offset inside the
 * kernel map); a physical one is kept as is.
 */
function vaddr64(r: ImageReader, o: number, f: string): number {
  const v = r.u64big(o, f);
  return Number(v <= BigInt(Number.MAX_SAFE_INTEGER) ? v : v & 0x7fff_ffff_ffffn);
}

/** Walk PT_NOTE segments (Elf{32,64}_Nhdr: namesz, descsz, type; name and desc 4-byte padded). */
export function elfNotes(image: Uint8Array, elf: ElfFile): ElfNote[] {
  const r = new ImageReader(image, 'ELF kernel');
  const notes: ElfNote[] = [];
  for (const s of elf.segments) {
    if (s.type !== PT_NOTE) continue;
    r.check(s.offset, s.filesz, 'PT_NOTE segment');
    let o = s.offset;
    const end = s.offset + s.filesz;
    while (o + 12 <= end) {
      const namesz = r.u32(o, 'note namesz');
      const descsz = r.u32(o + 4, 'note descsz');
      const type = r.u32(o + 8, 'note type');
      const nameOff = o + 12;
      const descOff = nameOff + align4(namesz);
      const next = descOff + align4(descsz);
      if (next > end) break; // a malformed tail is ignored: notes are hints, not load data
      const nameBytes = image.subarray(nameOff, nameOff + namesz);
      const name = new TextDecoder().decode(nameBytes).replace(/\0+$/, '');
      notes.push({ name, type, desc: image.subarray(descOff, descOff + descsz) });
      o = next;
    }
  }
  return notes;
}

function align4(n: number): number {
  return (n + 3) & ~3;
}

/** The PVH entry (XEN_ELFNOTE_PHYS32_ENTRY), or undefined. Linux emits it as a 64-bit value. */
export function pvhEntry(image: Uint8Array, elf: ElfFile): number | undefined {
  for (const n of elfNotes(image, elf)) {
    if (n.name !== 'Xen' || n.type !== XEN_ELFNOTE_PHYS32_ENTRY) continue;
    const dv = new DataView(n.desc.buffer, n.desc.byteOffset, n.desc.byteLength);
    if (n.desc.length >= 8) return Number(dv.getBigUint64(0, true) & 0xffff_ffffn);
    if (n.desc.length >= 4) return dv.getUint32(0, true);
  }
  return undefined;
}

/**
 * e_entry as a physical address. Linux's vmlinux already gives a physical one (ENTRY is
 * phys_startup_64); other kernels give a virtual one, which we translate through the PT_LOAD
 * segment that contains it.
 */
export function entryPhysical(elf: ElfFile): number {
  const loads = elf.segments.filter((s) => s.type === PT_LOAD);
  for (const s of loads) if (elf.entry >= s.paddr && elf.entry < s.paddr + s.memsz) return elf.entry;
  for (const s of loads) if (elf.entry >= s.vaddr && elf.entry < s.vaddr + s.memsz) return s.paddr + (elf.entry - s.vaddr);
  throw new InvalidArgumentError(`ELF entry point ${hex(elf.entry)} is outside every PT_LOAD segment`, 'ERR_KERNEL_FORMAT');
}

/** Guest ranges the loaders write boot data into; a kernel must not be loaded over them. */
export const BOOT_DATA_RANGES: ReadonlyArray<{ start: number; end: number; what: string }> = [
  { start: GDT_START, end: PD_START + 4 * 0x1000, what: 'boot GDT, boot info, zero page and page tables' },
  { start: CMDLINE_START, end: CMDLINE_START + CMDLINE_MAX, what: 'command line' },
  { start: EBDA_START, end: HIMEM_START, what: 'EBDA, ACPI tables and BIOS area' },
];

/** Refuse a kernel range that leaves RAM or covers the loader's own boot data. */
export function checkKernelRange(ramLayout: readonly RamRange[], start: number, end: number, what: string): void {
  if (!inRam(ramLayout, start, end)) {
    throw new InvalidArgumentError(`${what} at ${hex(start)}-${hex(end)} is not inside guest RAM`, 'ERR_KERNEL_ADDRESS');
  }
  for (const b of BOOT_DATA_RANGES) {
    if (start < b.end && b.start < end) {
      throw new InvalidArgumentError(`${what} at ${hex(start)}-${hex(end)} overlaps the ${b.what} at ${hex(b.start)}`, 'ERR_KERNEL_ADDRESS');
    }
  }
}

/**
 * Check every PT_LOAD segment against the file and against RAM (nothing is written) and
 * return the range they will occupy.
 */
export function planElfSegments(
  ramLayout: readonly RamRange[], image: Uint8Array, elf: ElfFile,
): { start: number; end: number } {
  const r = new ImageReader(image, 'ELF kernel');
  const loads = elf.segments.filter((s) => s.type === PT_LOAD && s.memsz > 0);
  if (loads.length === 0) throw new InvalidArgumentError('ELF kernel has no PT_LOAD segment', 'ERR_KERNEL_FORMAT');
  let start = Infinity;
  let end = 0;
  for (const [i, s] of loads.entries()) {
    if (s.filesz > s.memsz) {
      throw new InvalidArgumentError(`PT_LOAD segment ${i}: p_filesz ${hex(s.filesz)} exceeds p_memsz ${hex(s.memsz)}`, 'ERR_KERNEL_FORMAT');
    }
    r.check(s.offset, s.filesz, `PT_LOAD segment ${i}`);
    checkKernelRange(ramLayout, s.paddr, s.paddr + s.memsz, `PT_LOAD segment ${i}`);
    start = Math.min(start, s.paddr);
    end = Math.max(end, s.paddr + s.memsz);
  }
  return { start, end };
}

/** Copy every PT_LOAD segment to p_paddr and zero its bss tail, after planElfSegments' checks. */
export function loadElfSegments(
  memory: GuestMemory, ramLayout: readonly RamRange[], image: Uint8Array, elf: ElfFile,
): { start: number; end: number } {
  const range = planElfSegments(ramLayout, image, elf);
  for (const s of elf.segments) {
    if (s.type !== PT_LOAD || s.memsz === 0) continue;
    writeGuest(memory, s.paddr, image.subarray(s.offset, s.offset + s.filesz));
    if (s.memsz > s.filesz) zeroGuest(memory, s.paddr + s.filesz, s.memsz - s.filesz);
  }
  return range;
}
