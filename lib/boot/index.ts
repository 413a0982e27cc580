// Public surface of the boot layer: kernel loaders and vCPU set-up.
export type { KernelFormat, FlatMode, InitrdModule, LoadOptions, BootSetup } from './types.js';
export { loadKernel, detectKernelFormat } from './kernel.js';
export type { E820Entry, RamRange } from './e820.js';
export { buildE820, E820_RAM, E820_RESERVED, E820_ACPI, E820_NVS, E820_UNUSABLE } from './e820.js';
export type { CpuidOptions } from './cpu-setup.js';
export { buildCpuid, bootMsrs } from './cpu-setup.js';
export { BOOT_CS, BOOT_DS, BOOT_TSS, entrySregs, realModeSregs, writeGdt } from './gdt.js';
export { writeIdentityPageTables, translate } from './page-tables.js';
export { findMultibootHeader, MULTIBOOT_BOOTLOADER_MAGIC } from './multiboot.js';
export { parseSetupHeader } from './setup-header.js';
export type { BootProtocol } from './bzimage.js';
export type { SetupHeader } from './setup-header.js';
export { parseElf, pvhEntry } from './elf.js';
