// Linux bzImage through the 32-bit or 64-bit boot protocol (boot.rst "32-bit BOOT PROTOCOL" and
// "64-bit BOOT PROTOCOL"): the protected-mode part is copied to its preferred address, the zero
// page carries the copied setup header, and vCPU 0 starts either in long mode at startup_64
// (load address + 0x200) or in flat 32-bit protected mode at code32_start, with RSI/ESI pointing
// at the zero page. The real-mode setup code never runs.
import { InvalidArgumentError } from '../errors.js';
import { BOOT_STACK_TOP, CMDLINE_START, HIMEM_START, ZERO_PAGE_START } from '../platform/layout.js';
import { buildE820, lowRamEnd } from './e820.js';
import { linuxInitrd, placeInitrd, writeBootParams } from './boot-params.js';
import { encodeCmdline } from './cmdline.js';
import { entrySregs, writeGdt } from './gdt.js';
import { writeIdentityPageTables } from './page-tables.js';
import { hex, writeGuest } from './image.js';
import {
  PROTOCOL_SYSSIZE_32, SETUP_HEADER_OFFSET, has64BitEntry, parseSetupHeader, protocolString, type SetupHeader,
} from './setup-header.js';
import type { BootProtocol, BootSetup, LoadOptions } from './types.js';

const SECTOR = 512;
const PARAGRAPH = 16;
/** startup_64 sits 0x200 bytes into the protected-mode kernel (boot.rst, 64-bit protocol). */
export const STARTUP_64_OFFSET = 0x200;
export type { BootProtocol } from './types.js';

/**
 * The protected-mode kernel: everything after the setup sectors, as the file has it. syssize
 * (paragraphs, rounded up) only tells whether the file was cut short: a valid image may end up
 * to 15 bytes before setup + syssize*16 (memtest86+ 6.10 does), and may carry bytes after it.
 */
export function protectedModePart(image: Uint8Array, h: SetupHeader): Uint8Array {
  const setupSize = (h.setup_sects + 1) * SECTOR;
  if (image.length <= setupSize) {
    throw new InvalidArgumentError(
      `bzImage is truncated: setup_sects says ${h.setup_sects} setup sectors (${setupSize} bytes with the boot sector), file has ${image.length} bytes and no kernel after them`,
      'ERR_KERNEL_TRUNCATED');
  }
  const kernel = image.subarray(setupSize);
  // Before 2.04 syssize is 16 bits wide and, for a bzImage, too small to mean anything (boot.rst).
  if (h.version >= PROTOCOL_SYSSIZE_32) {
    if (h.syssize === 0) {
      throw new InvalidArgumentError('bzImage syssize is 0: the header describes no protected-mode kernel', 'ERR_KERNEL_FORMAT');
    }
    if (Math.ceil(kernel.length / PARAGRAPH) < h.syssize) {
      throw new InvalidArgumentError(
        `bzImage is truncated: syssize says ${h.syssize} paragraphs (${h.syssize * PARAGRAPH} bytes, rounded up) of protected-mode kernel after the ${setupSize}-byte setup, the file has ${kernel.length}`,
        'ERR_KERNEL_TRUNCATED');
    }
  }
  return kernel;
}

/** Which entry to use: the caller's choice, else 64-bit when the kernel says it has one. */
function chooseProtocol(h: SetupHeader, asked: BootProtocol | undefined): BootProtocol {
  const has64 = has64BitEntry(h);
  if (asked === undefined) return has64 === true ? '64-bit' : '32-bit';
  if (asked !== '32-bit' && asked !== '64-bit') {
    throw new InvalidArgumentError(`bootProtocol must be '32-bit' or '64-bit', got ${JSON.stringify(asked)}`);
  }
  if (asked === '64-bit' && has64 === false) {
    throw new InvalidArgumentError(
      `bzImage has no 64-bit entry point (protocol ${protocolString(h.version)}, xloadflags.XLF_KERNEL_64 clear): boot it with bootProtocol '32-bit'`,
      'ERR_KERNEL_ARCH');
  }
  return asked;
}

/** Power-of-two alignment the kernel asks for, if it is a sane one (4 KiB..1 GiB). */
function alignmentOf(h: SetupHeader): number | undefined {
  const a = h.kernel_alignment;
  return a >= 0x1000 && a <= 0x4000_0000 && (a & (a - 1)) === 0 ? a : undefined;
}

/**
 * Where code32_start points once the kernel sits at `loadAddr`. It is the kernel's 32-bit entry
 * either as an absolute address inside the loaded kernel (a kernel linked to run where it is
 * loaded, like memtest86+), or relative to the default load address 1 MiB (Linux keeps
 * 0x100000 there whatever its pref_address); anything else is refused.
 */
function entry32(h: SetupHeader, loadAddr: number, kernelLength: number): number {
  const c = h.code32_start;
  const inKernel = (a: number): boolean => a >= loadAddr && a < loadAddr + kernelLength;
  if (inKernel(c)) return c;
  const rebased = loadAddr + (c - HIMEM_START);
  if (c >= HIMEM_START && inKernel(rebased)) return rebased;
  throw new InvalidArgumentError(
    `bzImage code32_start ${hex(c)} is outside the loaded kernel (${hex(loadAddr)}-${hex(loadAddr + kernelLength)}): no 32-bit entry to jump to`,
    'ERR_KERNEL_ADDRESS');
}

export function loadBzImage(image: Uint8Array, opts: LoadOptions): BootSetup {
  const { memory, ramLayout } = opts;
  const h = parseSetupHeader(image);
  const kernel = protectedModePart(image, h);
  const protocol = chooseProtocol(h, opts.bootProtocol);
  if (protocol === '64-bit' && kernel.length <= STARTUP_64_OFFSET) {
    throw new InvalidArgumentError(
      `bzImage protected-mode part is ${kernel.length} bytes: too short to hold startup_64 at +${hex(STARTUP_64_OFFSET)}`,
      'ERR_KERNEL_TRUNCATED');
  }
  const need = Math.max(h.init_size, kernel.length);
  const ramEnd = lowRamEnd(ramLayout);
  const fits = (at: number): boolean => at >= HIMEM_START && at + need <= ramEnd;
  // A non-relocatable kernel only runs at pref_address (or 1 MiB before protocol 2.10). A
  // relocatable one anywhere, best at its kernel_alignment (it realigns itself otherwise).
  const align = alignmentOf(h);
  const alignedLow = align !== undefined ? Math.ceil(HIMEM_START / align) * align : HIMEM_START;
  let loadAddr: number;
  if (h.pref_address !== 0 && fits(h.pref_address)) loadAddr = h.pref_address;
  else if (h.relocatable_kernel !== 0) loadAddr = fits(alignedLow) ? alignedLow : HIMEM_START;
  else if (h.pref_address === 0 || h.pref_address === HIMEM_START) loadAddr = HIMEM_START;
  else loadAddr = h.pref_address;
  if (!fits(loadAddr)) {
    throw new InvalidArgumentError(
      `kernel needs ${hex(need)} bytes (init_size) at ${hex(loadAddr)} but low RAM ends at ${hex(ramEnd)}: give the guest more memory`,
      'ERR_KERNEL_TOO_LARGE');
  }
  const kernelRange = { start: loadAddr, end: loadAddr + need };
  const entry = protocol === '64-bit' ? loadAddr + STARTUP_64_OFFSET : entry32(h, loadAddr, kernel.length);

  const cmdlineBytes = encodeCmdline(opts.cmdline ?? '', h.cmdline_size);
  const e820 = buildE820(ramLayout);
  const initrd = linuxInitrd(opts);
  let initrdRange: { start: number; end: number } | undefined;
  if (initrd !== undefined) {
    // initrd_addr_max is the highest address the initrd may occupy, hence the + 1.
    initrdRange = placeInitrd(ramLayout, initrd.length, h.initrd_addr_max + 1, kernelRange);
  }
  // Everything is checked: now write guest RAM.
  writeGuest(memory, loadAddr, kernel);
  writeGuest(memory, CMDLINE_START, cmdlineBytes);
  const cmdline = { addr: CMDLINE_START, length: cmdlineBytes.length - 1 };
  if (initrd !== undefined && initrdRange !== undefined) writeGuest(memory, initrdRange.start, initrd);
  writeBootParams(memory, {
    setupHeader: image.subarray(SETUP_HEADER_OFFSET, h.headerEnd),
    // boot.rst: a loader that moves the kernel points code32_start at where it really is.
    kernelStart: protocol === '64-bit' ? loadAddr : entry,
    cmdline,
    cmdlineSize: h.cmdline_size,
    ...(initrdRange !== undefined ? { ramdisk: { start: initrdRange.start, size: initrdRange.end - initrdRange.start } } : {}),
    e820,
    ...(opts.rsdpAddress !== undefined ? { rsdpAddr: opts.rsdpAddress } : {}),
  });
  const regs = { rip: BigInt(entry), rsi: BigInt(ZERO_PAGE_START), rsp: BigInt(BOOT_STACK_TOP), rflags: 2n };
  let sregs;
  if (protocol === '64-bit') {
    const cr3 = writeIdentityPageTables(memory);
    writeGdt(memory, 'long');
    sregs = entrySregs('long', cr3);
  } else {
    // boot.rst 32-bit protocol: flat 4 GiB __BOOT_CS/__BOOT_DS, paging off, interrupts off
    // (RFLAGS.IF clear), %esi = zero page, %ebp = %edi = %ebx = 0 (vCPU reset state).
    writeGdt(memory, 'protected');
    sregs = entrySregs('protected');
  }
  return {
    format: 'bzimage',
    regs,
    sregs,
    e820,
    kernelRange,
    ...(initrdRange !== undefined ? { initrdRange } : {}),
    entry,
  };
}
