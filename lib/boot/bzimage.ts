// Linux bzImage through the 64-bit boot protocol (boot.rst "64-bit BOOT PROTOCOL"): the
// protected-mode part is copied to its preferred address, the zero page carries the copied
// setup header, and vCPU 0 starts in long mode at startup_64 (load address + 0x200) with RSI
// pointing at the zero page. The real-mode setup code never runs.
import { InvalidArgumentError } from '../errors.js';
import { BOOT_STACK_TOP, HIMEM_START, ZERO_PAGE_START } from '../platform/layout.js';
import { buildE820, lowRamEnd } from './e820.js';
import { linuxInitrd, placeInitrd, writeBootParams } from './boot-params.js';
import { writeCmdline } from './cmdline.js';
import { entrySregs, writeGdt } from './gdt.js';
import { writeIdentityPageTables } from './page-tables.js';
import { hex, writeGuest } from './image.js';
import { SETUP_HEADER_OFFSET, parseSetupHeader } from './setup-header.js';
import type { BootSetup, LoadOptions } from './types.js';

const SECTOR = 512;
/** startup_64 sits 0x200 bytes into the protected-mode kernel (boot.rst, 64-bit protocol). */
export const STARTUP_64_OFFSET = 0x200;

export function loadBzImage(image: Uint8Array, opts: LoadOptions): BootSetup {
  const { memory, ramLayout } = opts;
  const h = parseSetupHeader(image);
  const setupSize = (h.setup_sects + 1) * SECTOR;
  const declared = setupSize + h.syssize * 16;
  if (image.length < declared) {
    throw new InvalidArgumentError(
      `bzImage is truncated: setup (${setupSize} bytes) + syssize*16 (${h.syssize * 16} bytes) = ${declared} bytes, file has ${image.length}`,
      'ERR_KERNEL_TRUNCATED');
  }
  const kernel = image.subarray(setupSize);
  const need = Math.max(h.init_size, kernel.length);
  const ramEnd = lowRamEnd(ramLayout);
  const fits = (at: number): boolean => at >= HIMEM_START && at + need <= ramEnd;
  // A non-relocatable kernel only runs at pref_address (or 1 MiB before protocol 2.10).
  let loadAddr: number;
  if (h.pref_address !== 0 && fits(h.pref_address)) loadAddr = h.pref_address;
  else if (h.relocatable_kernel !== 0 || h.pref_address === 0 || h.pref_address === HIMEM_START) loadAddr = HIMEM_START;
  else loadAddr = h.pref_address;
  if (!fits(loadAddr)) {
    throw new InvalidArgumentError(
      `kernel needs ${hex(need)} bytes (init_size) at ${hex(loadAddr)} but low RAM ends at ${hex(ramEnd)}: give the guest more memory`,
      'ERR_KERNEL_TOO_LARGE');
  }
  const kernelRange = { start: loadAddr, end: loadAddr + need };

  const cmdline = writeCmdline(memory, opts.cmdline ?? '', h.cmdline_size);
  const e820 = buildE820(ramLayout);
  const initrd = linuxInitrd(opts);
  let initrdRange: { start: number; end: number } | undefined;
  if (initrd !== undefined) {
    // initrd_addr_max is the highest address the initrd may occupy, hence the + 1.
    initrdRange = placeInitrd(ramLayout, initrd.length, h.initrd_addr_max + 1, kernelRange);
  }
  // Everything is checked: now write guest RAM.
  writeGuest(memory, loadAddr, kernel);
  if (initrd !== undefined && initrdRange !== undefined) writeGuest(memory, initrdRange.start, initrd);
  writeBootParams(memory, {
    setupHeader: image.subarray(SETUP_HEADER_OFFSET, h.headerEnd),
    kernelStart: loadAddr,
    cmdline,
    cmdlineSize: h.cmdline_size,
    ...(initrdRange !== undefined ? { ramdisk: { start: initrdRange.start, size: initrdRange.end - initrdRange.start } } : {}),
    e820,
    ...(opts.rsdpAddress !== undefined ? { rsdpAddr: opts.rsdpAddress } : {}),
  });
  const cr3 = writeIdentityPageTables(memory);
  writeGdt(memory, 'long');
  const entry = loadAddr + STARTUP_64_OFFSET;
  return {
    format: 'bzimage',
    regs: { rip: BigInt(entry), rsi: BigInt(ZERO_PAGE_START), rsp: BigInt(BOOT_STACK_TOP), rflags: 2n },
    sregs: entrySregs('long', cr3),
    e820,
    kernelRange,
    ...(initrdRange !== undefined ? { initrdRange } : {}),
    entry,
  };
}
