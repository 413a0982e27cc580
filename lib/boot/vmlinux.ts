// Uncompressed Linux (vmlinux, ELF64 x86-64). Two ways in:
//  - PVH: the Xen PHYS32_ENTRY note; 32-bit protected mode, paging off, EBX = hvm_start_info.
//  - the 64-bit boot protocol: long mode at e_entry (physical startup_64) with RSI = a zero
//    page we build ourselves, since a vmlinux carries no setup header.
// Either is much faster than a bzImage: nothing is decompressed in the guest.
import { InvalidArgumentError } from '../errors.js';
import { BOOT_INFO_START, BOOT_STACK_TOP, ZERO_PAGE_START } from '../platform/layout.js';
import { buildE820 } from './e820.js';
import { linuxInitrd, placeInitrd, writeBootParams } from './boot-params.js';
import { encodeCmdline, writeCmdline } from './cmdline.js';
import { entryPhysical, loadElfSegments, parseElf, planElfSegments, pvhEntry } from './elf.js';
import { entrySregs, writeGdt } from './gdt.js';
import { writeIdentityPageTables } from './page-tables.js';
import { writeGuest } from './image.js';
import { writeStartInfo } from './pvh.js';
import { ELFCLASS64 } from './elf.js';
import type { BootSetup, LoadOptions } from './types.js';

/** The cmdline limit we announce in our own header: COMMAND_LINE_SIZE on x86 is 2048. */
export const VMLINUX_CMDLINE_SIZE = 2047;
/** initrd_addr_max we announce: what x86-64 kernels put in their own header. */
const VMLINUX_INITRD_ADDR_MAX = 0x7fffffff;

export function loadVmlinux(image: Uint8Array, opts: LoadOptions, usePvh: boolean): BootSetup {
  const { memory, ramLayout } = opts;
  const elf = parseElf(image);
  if (elf.elfClass !== 64 || image[4] !== ELFCLASS64) {
    throw new InvalidArgumentError('a vmlinux must be a 64-bit x86-64 ELF', 'ERR_KERNEL_ARCH');
  }
  const pvh = pvhEntry(image, elf);
  if (usePvh && pvh === undefined) {
    throw new InvalidArgumentError('format "pvh" forced but the ELF has no XEN_ELFNOTE_PHYS32_ENTRY note', 'ERR_KERNEL_FORMAT');
  }
  const entry = usePvh ? pvh! : entryPhysical(elf);
  // Validate what we can before writing anything.
  const cmdlineText = opts.cmdline ?? '';
  encodeCmdline(cmdlineText, VMLINUX_CMDLINE_SIZE);
  const e820 = buildE820(ramLayout);
  const kernelRange = planElfSegments(ramLayout, image, elf);
  if (entry < kernelRange.start || entry >= kernelRange.end) {
    throw new InvalidArgumentError(`entry point 0x${entry.toString(16)} is outside the loaded kernel`, 'ERR_KERNEL_FORMAT');
  }
  const initrd = linuxInitrd(opts);
  const initrdRange = initrd !== undefined
    ? placeInitrd(ramLayout, initrd.length, VMLINUX_INITRD_ADDR_MAX + 1, kernelRange) : undefined;
  // Everything is checked: now write guest RAM.
  loadElfSegments(memory, ramLayout, image, elf);
  if (initrd !== undefined && initrdRange !== undefined) writeGuest(memory, initrdRange.start, initrd);
  const cmdline = writeCmdline(memory, cmdlineText, VMLINUX_CMDLINE_SIZE);
  const common = {
    e820, kernelRange, entry, ...(initrdRange !== undefined ? { initrdRange } : {}),
  };
  if (usePvh) {
    writeStartInfo(memory, {
      cmdlineAddr: cmdline.addr,
      modules: initrdRange !== undefined ? [{ addr: initrdRange.start, size: initrdRange.end - initrdRange.start }] : [],
      e820,
      ...(opts.rsdpAddress !== undefined ? { rsdpAddr: opts.rsdpAddress } : {}),
    });
    writeGdt(memory, 'protected');
    return {
      format: 'pvh',
      regs: { rip: BigInt(entry), rbx: BigInt(BOOT_INFO_START), rsp: BigInt(BOOT_STACK_TOP), rflags: 2n },
      sregs: entrySregs('protected'),
      ...common,
    };
  }
  writeBootParams(memory, {
    kernelStart: kernelRange.start,
    cmdline,
    cmdlineSize: VMLINUX_CMDLINE_SIZE,
    ...(initrdRange !== undefined ? { ramdisk: { start: initrdRange.start, size: initrdRange.end - initrdRange.start } } : {}),
    e820,
    initrdAddrMax: VMLINUX_INITRD_ADDR_MAX,
    ...(opts.rsdpAddress !== undefined ? { rsdpAddr: opts.rsdpAddress } : {}),
  });
  const cr3 = writeIdentityPageTables(memory);
  writeGdt(memory, 'long');
  return {
    format: 'elf64',
    regs: { rip: BigInt(entry), rsi: BigInt(ZERO_PAGE_START), rsp: BigInt(BOOT_STACK_TOP), rflags: 2n },
    sregs: entrySregs('long', cr3),
    ...common,
  };
}
