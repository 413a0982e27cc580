// A PCI type-0 configuration space: 256 bytes plus per-bit masks saying what the guest may
// write. Register offsets are the PCI Local Bus Specification 3.0 names (Linux pci_regs.h).

export const PCI_VENDOR_ID = 0x00;
export const PCI_DEVICE_ID = 0x02;
export const PCI_COMMAND = 0x04;
export const PCI_STATUS = 0x06;
export const PCI_REVISION_ID = 0x08;
export const PCI_CLASS_PROG = 0x09;
export const PCI_CLASS_DEVICE = 0x0a;
export const PCI_CACHE_LINE_SIZE = 0x0c;
export const PCI_LATENCY_TIMER = 0x0d;
export const PCI_HEADER_TYPE = 0x0e;
export const PCI_BASE_ADDRESS_0 = 0x10;
export const PCI_SUBSYSTEM_VENDOR_ID = 0x2c;
export const PCI_SUBSYSTEM_ID = 0x2e;
export const PCI_ROM_ADDRESS = 0x30;
export const PCI_CAPABILITY_LIST = 0x34;
export const PCI_INTERRUPT_LINE = 0x3c;
export const PCI_INTERRUPT_PIN = 0x3d;

export const PCI_COMMAND_IO = 0x1;
export const PCI_COMMAND_MEMORY = 0x2;
export const PCI_COMMAND_MASTER = 0x4;
export const PCI_COMMAND_PARITY = 0x40;
export const PCI_COMMAND_SERR = 0x100;
export const PCI_COMMAND_INTX_DISABLE = 0x400;

export const PCI_STATUS_INTERRUPT = 0x08;
export const PCI_STATUS_CAP_LIST = 0x10;
/** Error bits the guest clears by writing 1 (parity, signalled/received aborts, SERR). */
export const PCI_STATUS_W1C = 0xf900;

export const PCI_BASE_ADDRESS_SPACE_IO = 0x1;
export const PCI_BASE_ADDRESS_MEM_PREFETCH = 0x8;

export class PciConfigSpace {
  readonly bytes = new Uint8Array(256);
  /** Bits the guest may set or clear with a config write. */
  readonly writable = new Uint8Array(256);
  /** Bits the guest clears by writing 1. */
  readonly writeOneToClear = new Uint8Array(256);

  /** Guest-visible read; accesses past the end read as all-ones bytes. */
  read(offset: number, size: number): number {
    let v = 0;
    for (let i = size - 1; i >= 0; i--) {
      const o = offset + i;
      v = v * 256 + (o >= 0 && o < 256 ? this.bytes[o]! : 0xff);
    }
    return v >>> 0;
  }

  /** Guest write through the masks. Returns true when any byte changed. */
  write(offset: number, size: number, value: number): boolean {
    let changed = false;
    for (let i = 0; i < size; i++) {
      const o = offset + i;
      if (o < 0 || o >= 256) continue;
      const b = Math.floor(value / 2 ** (8 * i)) & 0xff;
      const w = this.writable[o]!;
      const c = this.writeOneToClear[o]!;
      const old = this.bytes[o]!;
      const next = ((old & ~w) | (b & w)) & ~(b & c) & 0xff;
      if (next !== old) {
        this.bytes[o] = next;
        changed = true;
      }
    }
    return changed;
  }

  // Device-side accessors: bypass the masks (the device owns its read-only fields).
  get8(o: number): number { return this.bytes[o]!; }
  get16(o: number): number { return this.bytes[o]! | (this.bytes[o + 1]! << 8); }
  get32(o: number): number { return (this.get16(o) | (this.get16(o + 2) << 16)) >>> 0; }
  set8(o: number, v: number): void { this.bytes[o] = v & 0xff; }
  set16(o: number, v: number): void { this.set8(o, v); this.set8(o + 1, v >>> 8); }
  set32(o: number, v: number): void { this.set16(o, v & 0xffff); this.set16(o + 2, v >>> 16); }

  /** Declare the guest-writable bits of a register of `size` bytes. */
  setWritable(o: number, size: number, mask: number): void {
    for (let i = 0; i < size; i++) this.writable[o + i] = Math.floor(mask / 2 ** (8 * i)) & 0xff;
  }
  setWriteOneToClear(o: number, size: number, mask: number): void {
    for (let i = 0; i < size; i++) this.writeOneToClear[o + i] = Math.floor(mask / 2 ** (8 * i)) & 0xff;
  }
}
