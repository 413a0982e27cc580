// The contract between a bus and the devices on it (DESIGN §5). Numbers in, numbers out:
// no buffers and no allocation per access, because every guest I/O exit goes through here.

/**
 * A register range of a device window (offset from its base) whose guest writes may be queued
 * by KVM (coalesced MMIO/PIO) instead of exiting one by one, and applied in order before the
 * next exit: registers whose writes have no effect the guest could observe before its next
 * access to the device.
 */
export interface CoalescedZone {
  /** Offset from the window's base. */
  offset: number;
  /** Bytes. */
  size: number;
}

/**
 * A device window on the PIO or MMIO bus. `offset` is relative to the base the device was
 * registered at, `size` is the access width in bytes (1, 2, 4 or 8). Values wider than 32 bits
 * (8-byte MMIO) are passed as two calls by the bus, low dword first, so devices only see
 * numbers that fit in 32 bits.
 */
export interface BusDevice {
  /** Read `size` bytes at `offset` within the device's window. */
  read(offset: number, size: number): number;
  /** Write `size` bytes (`value`) at `offset` within the device's window. */
  write(offset: number, size: number, value: number): void;
  /**
   * Optional: the zones of this window whose writes may be coalesced (see CoalescedZone). The
   * machine registers them with KVM where the window is registered; a PCI BAR declares its
   * own (PciBarDefinition.coalescedWrites), applied wherever the guest maps the BAR.
   */
  readonly coalescedWrites?: readonly CoalescedZone[];
}

/** An interrupt line a device drives; the machine wires it to KVM_IRQ_LINE. */
export interface IrqLine {
  /** Assert the (level-triggered) line. */
  raise(): void;
  /** Deassert the line. */
  lower(): void;
  /** Edge: raise then lower. */
  pulse(): void;
}

/** Guest RAM as devices see it: bounds-checked DMA (implemented by GuestMemory). */
export interface DmaMemory {
  /** True when [gpa, gpa+length) lies entirely inside one RAM region. */
  contains(gpa: number, length: number): boolean;
  /** Copy out of guest RAM (throws GuestMemoryError outside RAM). */
  read(gpa: number, length: number): Uint8Array;
  /** Zero-copy view of guest RAM (throws GuestMemoryError outside RAM). Do not keep it. */
  view(gpa: number, length: number): Uint8Array;
  /** Copy `bytes` into guest RAM (throws GuestMemoryError outside RAM). */
  write(gpa: number, bytes: Uint8Array): void;
  /** Read one byte. */
  readU8(gpa: number): number;
  /** Read a little-endian 16-bit value. */
  readU16(gpa: number): number;
  /** Read a little-endian 32-bit value. */
  readU32(gpa: number): number;
  /** Read a little-endian 64-bit value. */
  readU64(gpa: number): bigint;
  /** Write one byte. */
  writeU8(gpa: number, value: number): void;
  /** Write a little-endian 16-bit value. */
  writeU16(gpa: number, value: number): void;
  /** Write a little-endian 32-bit value. */
  writeU32(gpa: number, value: number): void;
  /** Write a little-endian 64-bit value. */
  writeU64(gpa: number, value: bigint): void;
}

/** A monotonic clock devices are given (injected so unit tests can drive time). */
export interface Clock {
  /** Nanoseconds, monotonic. */
  nowNs(): bigint;
}
