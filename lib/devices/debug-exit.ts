// isa-debug-exit (QEMU's test device): a guest write of v ends the run with status (v << 1) | 1,
// so a test guest can report pass/fail without an ACPI stack, and the status is never 0 (which
// would be indistinguishable from a clean poweroff). Reads return all-ones.
import { InvalidArgumentError } from '../errors.js';
import type { BusDevice } from '../bus/device.js';

/**
 * Ports decoded (QEMU's `iosize=0x04` as used with `iobase=0xf4`), so `outb`, `outw` and `outl`
 * all land on the device.
 */
export const DEBUG_EXIT_IO_SIZE = 4;

export interface DebugExitOptions {
  /** The guest asked to exit; `code` = (value << 1) | 1 of the value written (access-size wide). */
  onExit(code: number): void;
}

export class DebugExit implements BusDevice {
  private readonly onExit: (code: number) => void;

  constructor(opts: DebugExitOptions) {
    if (opts === null || typeof opts !== 'object' || typeof opts.onExit !== 'function') {
      throw new InvalidArgumentError('DebugExit needs { onExit }');
    }
    this.onExit = opts.onExit;
  }

  reset(): void {
    // Stateless.
  }

  read(_offset: number, size: number): number {
    return size >= 4 ? 0xffff_ffff : (1 << (size * 8)) - 1;
  }

  write(_offset: number, size: number, value: number): void {
    const width = size >= 4 ? 0x1_0000_0000 : 2 ** (size * 8);
    // Arithmetic, not `<<`: a 32-bit value shifted left does not fit an int32.
    const v = ((value % width) + width) % width;
    this.onExit(v * 2 + 1);
  }
}
