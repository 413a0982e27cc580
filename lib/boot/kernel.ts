// Kernel loading entry point: detect the image format from its bytes and dispatch to the
// loader that knows it. Every loader returns a BootSetup: the vCPU 0 state for its entry mode
// and what it told the guest (e820, where the kernel and initrd went).
import { InvalidArgumentError } from '../errors.js';
import type { BootSetup, KernelFormat, LoadOptions } from './types.js';
import { checkRamLayout } from './e820.js';
import { hasSetupHeader } from './setup-header.js';
import { ELFCLASS32, ELFCLASS64, isElf, parseElf, pvhEntry } from './elf.js';
import { findMultibootHeader, MULTIBOOT_AOUT_KLUDGE, loadMultiboot } from './multiboot.js';
import { loadBzImage } from './bzimage.js';
import { loadVmlinux } from './vmlinux.js';
import { loadFlat } from './flat.js';

export type { KernelFormat, FlatMode, InitrdModule, LoadOptions, BootSetup, BootProtocol } from './types.js';

/** Recognise a kernel image from its bytes; throws ERR_KERNEL_FORMAT naming what it saw. */
export function detectKernelFormat(image: Uint8Array): KernelFormat {
  if (!(image instanceof Uint8Array)) throw new InvalidArgumentError('kernel image must be a Uint8Array', 'ERR_KERNEL_FORMAT');
  if (hasSetupHeader(image)) return 'bzimage';
  const mb = findMultibootHeader(image);
  if (isElf(image)) {
    const cls = image.length > 4 ? image[4] : 0;
    if (mb !== undefined && (cls === ELFCLASS32 || (mb.flags & MULTIBOOT_AOUT_KLUDGE) !== 0)) return 'multiboot';
    if (cls === ELFCLASS64) {
      const elf = parseElf(image);
      return pvhEntry(image, elf) !== undefined ? 'pvh' : 'elf64';
    }
    parseElf(image); // throws ERR_KERNEL_ARCH for foreign machines
    throw new InvalidArgumentError('32-bit ELF kernel without a Multiboot header: nothing to enter it through', 'ERR_KERNEL_FORMAT');
  }
  if (mb !== undefined && (mb.flags & MULTIBOOT_AOUT_KLUDGE) !== 0) return 'multiboot';
  throw new InvalidArgumentError(`unknown kernel format: ${describeBytes(image)}; pass format: 'flat' for a raw binary`, 'ERR_KERNEL_FORMAT');
}

/** A short human description of what unrecognised bytes look like. */
function describeBytes(b: Uint8Array): string {
  if (b.length === 0) return 'the image is empty';
  const head = Array.from(b.subarray(0, 8), (x) => x.toString(16).padStart(2, '0')).join(' ');
  const starts = (...m: number[]): boolean => m.every((x, i) => b[i] === x);
  let guess = 'no bzImage "HdrS" header at 0x202, no ELF magic, no Multiboot header in the first 8 KiB';
  if (starts(0x1f, 0x8b)) guess = 'a gzip stream (decompress it first)';
  else if (starts(0xfd, 0x37, 0x7a, 0x58, 0x5a)) guess = 'an xz stream (decompress it first)';
  else if (starts(0x28, 0xb5, 0x2f, 0xfd)) guess = 'a zstd stream (decompress it first)';
  else if (starts(0x30, 0x37, 0x30, 0x37, 0x30)) guess = 'a cpio archive (an initrd, not a kernel?)';
  else if (starts(0x4d, 0x5a)) guess = 'a PE/EFI executable without a Linux boot header';
  else if (b.length < 0x206) guess = `only ${b.length} bytes, too short for a bzImage header`;
  return `${b.length} bytes starting ${head} — looks like ${guess}`;
}

/** Load a kernel into guest RAM and describe how vCPU 0 must start. */
export function loadKernel(image: Uint8Array, opts: LoadOptions): BootSetup {
  if (!(image instanceof Uint8Array)) throw new InvalidArgumentError('kernel image must be a Uint8Array', 'ERR_KERNEL_FORMAT');
  if (opts === null || typeof opts !== 'object' || opts.memory === undefined) {
    throw new InvalidArgumentError('loadKernel needs { memory, ramLayout }');
  }
  checkRamLayout(opts.ramLayout);
  if (opts.initrd !== undefined && opts.initrds !== undefined) {
    throw new InvalidArgumentError('give either initrd or initrds, not both');
  }
  const format = opts.format ?? detectKernelFormat(image);
  switch (format) {
    case 'bzimage': return loadBzImage(image, opts);
    case 'elf64': return loadVmlinux(image, opts, false);
    case 'pvh': return loadVmlinux(image, opts, true);
    case 'multiboot': return loadMultiboot(image, opts);
    case 'flat': return loadFlat(image, opts);
    default:
      throw new InvalidArgumentError(`unknown kernel format ${JSON.stringify(format)}`, 'ERR_KERNEL_FORMAT');
  }
}
