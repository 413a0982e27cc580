// Multiboot v1 (Multiboot Specification 0.6.96): header search, ELF or a.out-kludge loading,
// the multiboot_info structure with memory map, command line and modules, and 32-bit
// protected-mode entry with EAX = 0x2BADB002 and EBX = the info structure.
import { InvalidArgumentError } from '../errors.js';
import type { GuestMemory } from '../kvm/memory.js';
import { BOOT_INFO_END, BOOT_INFO_START, BOOT_STACK_TOP, EBDA_START, FOUR_GIB, HIMEM_START } from '../platform/layout.js';
import { type E820Entry, buildE820, inRam, lowRamEnd } from './e820.js';
import { StringArea } from './cmdline.js';
import { checkKernelRange, entryPhysical, isElf, loadElfSegments, parseElf } from './elf.js';
import { entrySregs, writeGdt } from './gdt.js';
import { ImageReader, hex, writeGuest, zeroGuest } from './image.js';
import type { BootSetup, InitrdModule, LoadOptions } from './types.js';
import { writeMultibootInfo } from './multiboot-info.js';

export * from './multiboot-info.js';

export const MULTIBOOT_HEADER_MAGIC = 0x1badb002;
export const MULTIBOOT_BOOTLOADER_MAGIC = 0x2badb002;
/** The header must lie, 32-bit aligned, within the first 8192 bytes of the image. */
export const MULTIBOOT_SEARCH = 8192;
// Header flags.
export const MULTIBOOT_PAGE_ALIGN = 1 << 0;
export const MULTIBOOT_MEMORY_INFO = 1 << 1;
export const MULTIBOOT_VIDEO_MODE = 1 << 2;
export const MULTIBOOT_AOUT_KLUDGE = 1 << 16;
/** Requirement bits (0-15) we honour; any other one set means we must refuse the kernel. */
const SUPPORTED_REQUIREMENTS = MULTIBOOT_PAGE_ALIGN | MULTIBOOT_MEMORY_INFO | MULTIBOOT_VIDEO_MODE;
export const BOOT_LOADER_NAME = 'node-kvm';
const PAGE = 0x1000;

export interface MultibootHeader {
  offset: number;
  flags: number;
  header_addr: number;
  load_addr: number;
  load_end_addr: number;
  bss_end_addr: number;
  entry_addr: number;
}

/** Find a valid Multiboot header (magic + flags + checksum == 0) in the first 8 KiB. */
export function findMultibootHeader(image: Uint8Array): MultibootHeader | undefined {
  const dv = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const end = Math.min(image.length, MULTIBOOT_SEARCH);
  for (let o = 0; o + 12 <= end; o += 4) {
    if (dv.getUint32(o, true) !== MULTIBOOT_HEADER_MAGIC) continue;
    const flags = dv.getUint32(o + 4, true);
    const checksum = dv.getUint32(o + 8, true);
    if (((MULTIBOOT_HEADER_MAGIC + flags + checksum) >>> 0) !== 0) continue;
    const h: MultibootHeader = { offset: o, flags, header_addr: 0, load_addr: 0, load_end_addr: 0, bss_end_addr: 0, entry_addr: 0 };
    if ((flags & MULTIBOOT_AOUT_KLUDGE) !== 0) {
      if (o + 32 > image.length) return undefined;
      h.header_addr = dv.getUint32(o + 12, true);
      h.load_addr = dv.getUint32(o + 16, true);
      h.load_end_addr = dv.getUint32(o + 20, true);
      h.bss_end_addr = dv.getUint32(o + 24, true);
      h.entry_addr = dv.getUint32(o + 28, true);
    }
    return h;
  }
  return undefined;
}

/** Load with the a.out kludge: the header's addresses say which file bytes go where. */
function loadAout(memory: GuestMemory, opts: LoadOptions, image: Uint8Array, h: MultibootHeader): { start: number; end: number } {
  const r = new ImageReader(image, 'Multiboot kernel');
  if (h.load_addr > h.header_addr) {
    throw new InvalidArgumentError(`Multiboot load_addr ${hex(h.load_addr)} is above header_addr ${hex(h.header_addr)}`, 'ERR_KERNEL_FORMAT');
  }
  const fileOff = h.offset - (h.header_addr - h.load_addr);
  if (fileOff < 0) {
    throw new InvalidArgumentError('Multiboot header_addr - load_addr points before the start of the file', 'ERR_KERNEL_FORMAT');
  }
  const loadSize = h.load_end_addr === 0 ? image.length - fileOff : h.load_end_addr - h.load_addr;
  if (loadSize <= 0) throw new InvalidArgumentError('Multiboot load_end_addr is not above load_addr', 'ERR_KERNEL_FORMAT');
  r.check(fileOff, loadSize, 'Multiboot text+data (load_addr..load_end_addr)');
  const dataEnd = h.load_addr + loadSize;
  const end = h.bss_end_addr === 0 ? dataEnd : h.bss_end_addr;
  if (end < dataEnd) throw new InvalidArgumentError('Multiboot bss_end_addr is below load_end_addr', 'ERR_KERNEL_FORMAT');
  checkKernelRange(opts.ramLayout, h.load_addr, end, 'Multiboot kernel');
  if (h.entry_addr < h.load_addr || h.entry_addr >= dataEnd) {
    throw new InvalidArgumentError(`Multiboot entry_addr ${hex(h.entry_addr)} is outside the loaded text`, 'ERR_KERNEL_FORMAT');
  }
  writeGuest(memory, h.load_addr, image.subarray(fileOff, fileOff + loadSize));
  if (end > dataEnd) zeroGuest(memory, dataEnd, end - dataEnd);
  return { start: h.load_addr, end };
}

/** The modules: opts.initrds, or opts.initrd as one module named "initrd". */
function modulesOf(opts: LoadOptions): InitrdModule[] {
  if (opts.initrds !== undefined) return opts.initrds;
  return opts.initrd !== undefined ? [{ name: 'initrd', bytes: opts.initrd }] : [];
}

export function loadMultiboot(image: Uint8Array, opts: LoadOptions): BootSetup {
  const { memory, ramLayout } = opts;
  const h = findMultibootHeader(image);
  if (h === undefined) throw new InvalidArgumentError('no Multiboot header in the first 8 KiB', 'ERR_KERNEL_FORMAT');
  const unsupported = h.flags & 0xffff & ~SUPPORTED_REQUIREMENTS;
  if (unsupported !== 0) {
    throw new InvalidArgumentError(`Multiboot header requires features node-kvm lacks (flags ${hex(unsupported)})`, 'ERR_MULTIBOOT_FLAGS');
  }
  const aout = (h.flags & MULTIBOOT_AOUT_KLUDGE) !== 0;
  if (!aout && !isElf(image)) throw new InvalidArgumentError('Multiboot kernel is not ELF and has no a.out kludge', 'ERR_KERNEL_FORMAT');

  // Modules go page aligned, one after another, above the kernel (checked before any is written).
  const elf = aout ? undefined : parseElf(image);
  const kernelRange = aout ? loadAout(memory, opts, image, h) : loadElfSegments(memory, ramLayout, image, elf!);
  const entry = aout ? h.entry_addr : entryPhysical(elf!);
  const modules = modulesOf(opts);
  const placed: Array<{ start: number; end: number; name: string }> = [];
  let next = alignUp(kernelRange.end, PAGE);
  for (const m of modules) {
    if (!(m.bytes instanceof Uint8Array) || typeof m.name !== 'string') {
      throw new InvalidArgumentError('each Multiboot module needs { name: string, bytes: Uint8Array }');
    }
    const end = next + m.bytes.length;
    if (end > FOUR_GIB || !inRam(ramLayout, next, end)) {
      throw new InvalidArgumentError(
        `Multiboot module "${m.name}" (${m.bytes.length} bytes) does not fit in RAM at ${hex(next)}`, 'ERR_INITRD_TOO_LARGE');
    }
    placed.push({ start: next, end, name: m.name });
    next = alignUp(end, PAGE);
  }
  modules.forEach((m, i) => writeGuest(memory, placed[i]!.start, m.bytes));

  const e820 = buildE820(ramLayout);
  const strings = new StringArea(memory);
  const name = opts.kernelName ?? 'kernel';
  const args = opts.cmdline ?? '';
  const cmdlineAddr = strings.put(args.length > 0 ? `${name} ${args}` : name, 'Multiboot command line');
  const moduleStrings = placed.map((p) => strings.put(p.name, `name of Multiboot module "${p.name}"`));
  const loaderName = strings.put(BOOT_LOADER_NAME, 'boot_loader_name');
  writeMultibootInfo(memory, {
    memLowerKiB: EBDA_START / 1024,
    memUpperKiB: Math.floor((lowRamEnd(ramLayout) - HIMEM_START) / 1024),
    cmdlineAddr,
    modules: placed.map((p, i) => ({ start: p.start, end: p.end, stringAddr: moduleStrings[i]! })),
    e820,
    loaderNameAddr: loaderName,
  });
  writeGdt(memory, 'protected');
  const initrdRange = placed.length > 0 ? { start: placed[0]!.start, end: placed[placed.length - 1]!.end } : undefined;
  return {
    format: 'multiboot',
    regs: {
      rax: BigInt(MULTIBOOT_BOOTLOADER_MAGIC), rbx: BigInt(BOOT_INFO_START), rip: BigInt(entry),
      rsp: BigInt(BOOT_STACK_TOP), rflags: 2n,
    },
    sregs: entrySregs('protected'),
    e820,
    kernelRange,
    ...(initrdRange !== undefined ? { initrdRange } : {}),
    entry,
  };
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}
