// Flat binaries (test guests, tiny kernels): the bytes are copied to a load address and vCPU 0
// starts at an entry point in real, 32-bit protected or 64-bit long mode.
import { InvalidArgumentError } from '../errors.js';
import { BOOT_STACK_TOP, FLAT_LOAD_START } from '../platform/layout.js';
import { buildE820 } from './e820.js';
import { checkKernelRange } from './elf.js';
import { entrySregs, realModeSregs, writeGdt } from './gdt.js';
import { hex, writeGuest } from './image.js';
import { writeIdentityPageTables } from './page-tables.js';
import type { BootSetup, LoadOptions } from './types.js';

/** Real mode reaches only the first MiB (plus the HMA, which we do not offer). */
const REAL_MODE_LIMIT = 0x10_0000;

export function loadFlat(image: Uint8Array, opts: LoadOptions): BootSetup {
  const { memory, ramLayout } = opts;
  const mode = opts.flatMode ?? 'real';
  if (mode !== 'real' && mode !== 'protected' && mode !== 'long') {
    throw new InvalidArgumentError(`flatMode must be 'real', 'protected' or 'long', not ${JSON.stringify(mode)}`);
  }
  const load = opts.flatLoadAddress ?? FLAT_LOAD_START;
  const entry = opts.flatEntry ?? load;
  if (!Number.isSafeInteger(load) || load < 0) throw new InvalidArgumentError(`flatLoadAddress ${load} is not an address`);
  if (image.length === 0) throw new InvalidArgumentError('flat binary is empty', 'ERR_KERNEL_FORMAT');
  const end = load + image.length;
  checkKernelRange(ramLayout, load, end, 'flat binary');
  if (!Number.isSafeInteger(entry) || entry < load || entry >= end) {
    throw new InvalidArgumentError(`flatEntry ${hex(entry)} is outside the binary loaded at ${hex(load)}-${hex(end)}`);
  }
  let sregs;
  let rip: number;
  if (mode === 'real') {
    if (load % 16 !== 0 || end > REAL_MODE_LIMIT) {
      throw new InvalidArgumentError(
        `a real-mode flat binary must sit 16-byte aligned below 1 MiB (got ${hex(load)}-${hex(end)})`, 'ERR_KERNEL_ADDRESS');
    }
    // CS = load >> 4, so IP is the entry's offset from the load address and must fit 16 bits.
    if (entry - load > 0xffff) throw new InvalidArgumentError('real-mode entry is more than 64 KiB past the load address', 'ERR_KERNEL_ADDRESS');
    sregs = realModeSregs(load >> 4);
    rip = entry - load;
  } else if (mode === 'protected') {
    writeGdt(memory, 'protected');
    sregs = entrySregs('protected');
    rip = entry;
  } else {
    const cr3 = writeIdentityPageTables(memory);
    writeGdt(memory, 'long');
    sregs = entrySregs('long', cr3);
    rip = entry;
  }
  writeGuest(memory, load, image);
  return {
    format: 'flat',
    regs: { rip: BigInt(rip), rsp: BigInt(mode === 'real' ? 0xfffe : BOOT_STACK_TOP), rflags: 2n },
    sregs,
    e820: buildE820(ramLayout),
    kernelRange: { start: load, end },
    entry,
  };
}
