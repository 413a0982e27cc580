// The types every loader shares: what it is given (LoadOptions) and what it returns (BootSetup).
// Their own file, so the loaders and kernel.ts (which dispatches to them) do not import each other.
import type { GuestMemory } from '../kvm/memory.js';
import type { Regs, SregsPatch } from '../kvm/regs.js';
import type { E820Entry } from './e820.js';

export type KernelFormat = 'bzimage' | 'elf64' | 'pvh' | 'multiboot' | 'flat';
export type FlatMode = 'real' | 'protected' | 'long';
/** The two protected-mode entries boot.rst defines for a bzImage. */
export type BootProtocol = '32-bit' | '64-bit';

export interface InitrdModule {
  name: string;
  bytes: Uint8Array;
}

export interface LoadOptions {
  /** Guest RAM, already created by the machine. */
  memory: GuestMemory;
  /** RAM regions (below the PCI hole, and above 4 GiB). The first must start at 0. */
  ramLayout: ReadonlyArray<{ guestPhysAddr: number; size: number }>;
  cmdline?: string;
  /** Linux initrd (one image). */
  initrd?: Uint8Array;
  /**
   * Several initrds: Multiboot modules (each with its name as module cmdline), or for Linux
   * concatenated into one initramfs (cpio archives may simply follow each other).
   */
  initrds?: InitrdModule[];
  /** First word of the Multiboot cmdline: "<kernelName> <cmdline>". Default "kernel". */
  kernelName?: string;
  /** Where the ACPI helper put the RSDP (zero page acpi_rsdp_addr, PVH rsdp_paddr). */
  rsdpAddress?: number;
  /** Flat binaries: load address (default FLAT_LOAD_START), entry (default the load address), mode (default 'real'). */
  flatLoadAddress?: number;
  flatEntry?: number;
  flatMode?: FlatMode;
  /** Force a format instead of detecting it from the bytes ('flat' can only be forced). */
  format?: KernelFormat;
  /**
   * bzImage entry: '64-bit' (long mode at startup_64) or '32-bit' (flat protected mode at
   * code32_start). Default: 64-bit when the header says XLF_KERNEL_64, else 32-bit.
   */
  bootProtocol?: BootProtocol;
}

export interface BootSetup {
  format: KernelFormat;
  /** vCPU 0 (BSP) general registers. */
  regs: Partial<Regs>;
  /** Segment/CR/EFER state for the entry mode. */
  sregs: SregsPatch;
  /** The memory map the guest was told (the machine reuses it for fw_cfg). */
  e820: E820Entry[];
  kernelRange: { start: number; end: number };
  initrdRange?: { start: number; end: number };
  /** Entry point (guest-physical). */
  entry: number;
}

