// Guest-physical memory as seen from the host: a set of non-overlapping RAM regions, each a
// zero-copy Uint8Array over the mmap the native shim made. Every access is bounds-checked
// against a single region (an access that straddles two regions is refused, as a DMA engine
// on a real board would not cross a hole either).
import { GuestMemoryError, InvalidArgumentError } from '../errors.js';
import type { DmaMemory } from '../bus/device.js';
import { toBigInt } from './u64.js';

/** A RAM region of guest-physical memory and its host view. */
export interface RamRegion {
  /** KVM memory slot number. */
  readonly slot: number;
  /** Guest-physical address of the first byte. */
  readonly guestPhysAddr: number;
  /** Bytes. */
  readonly size: number;
  /** True when the guest cannot write it (its writes exit as MMIO). */
  readonly readonly: boolean;
  /** Zero-copy view of the region's host memory. */
  readonly bytes: Uint8Array;
}

interface Entry {
  start: number;
  end: number; // exclusive
  bytes: Uint8Array;
  view: DataView;
  region: RamRegion;
}

export class GuestMemory implements DmaMemory {
  private entries: Entry[] = [];
  private last: Entry | undefined;

  /** Add a region (the Vm calls this after KVM accepted the slot). */
  addRegion(region: RamRegion): void {
    const start = region.guestPhysAddr;
    const end = start + region.size;
    for (const e of this.entries) {
      if (start < e.end && e.start < end) {
        throw new InvalidArgumentError(
          `region [0x${start.toString(16)}, 0x${end.toString(16)}) overlaps slot ${e.region.slot}`,
          'ERR_REGION_OVERLAP');
      }
    }
    const b = region.bytes;
    this.entries.push({ start, end, bytes: b, view: new DataView(b.buffer, b.byteOffset, b.byteLength), region });
    this.entries.sort((a, z) => a.start - z.start);
  }

  /** Forget a region (the Vm calls this when a slot goes). */
  removeRegion(slot: number): void {
    this.entries = this.entries.filter((e) => e.region.slot !== slot);
    this.last = undefined;
  }

  /** The regions, in guest-physical order. */
  get regions(): readonly RamRegion[] {
    return this.entries.map((e) => e.region);
  }

  /** Total bytes of RAM across regions. */
  get size(): number {
    return this.entries.reduce((n, e) => n + (e.end - e.start), 0);
  }

  private find(gpa: number, length: number): Entry {
    if (!Number.isSafeInteger(gpa) || gpa < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new GuestMemoryError(Number.isFinite(gpa) ? gpa : 0, Number.isFinite(length) ? length : 0, 'not a valid address/length');
    }
    const l = this.last;
    if (l !== undefined && gpa >= l.start && gpa + length <= l.end) return l;
    for (const e of this.entries) {
      if (gpa >= e.start && gpa + length <= e.end) {
        this.last = e;
        return e;
      }
    }
    throw new GuestMemoryError(gpa, length);
  }

  contains(gpa: number, length: number): boolean {
    if (!Number.isSafeInteger(gpa) || gpa < 0 || !Number.isSafeInteger(length) || length < 0) return false;
    for (const e of this.entries) if (gpa >= e.start && gpa + length <= e.end) return true;
    return false;
  }

  /** Copy `length` bytes out of guest RAM. */
  read(gpa: number, length: number): Uint8Array {
    const e = this.find(gpa, length);
    return e.bytes.slice(gpa - e.start, gpa - e.start + length);
  }

  /** Zero-copy view into guest RAM; valid until the region is removed. */
  view(gpa: number, length: number): Uint8Array {
    const e = this.find(gpa, length);
    return e.bytes.subarray(gpa - e.start, gpa - e.start + length);
  }

  /** Copy `bytes` into guest memory at `gpa`. */
  write(gpa: number, bytes: Uint8Array): void {
    const e = this.find(gpa, bytes.length);
    e.bytes.set(bytes, gpa - e.start);
  }

  /** Fill [gpa, gpa+length) with `value`. */
  fill(gpa: number, length: number, value = 0): void {
    const e = this.find(gpa, length);
    e.bytes.fill(value, gpa - e.start, gpa - e.start + length);
  }

  /** Read one byte. */
  readU8(gpa: number): number {
    const e = this.find(gpa, 1);
    return e.bytes[gpa - e.start]!;
  }
  /** Read a little-endian 16-bit value. */
  readU16(gpa: number): number {
    const e = this.find(gpa, 2);
    return e.view.getUint16(gpa - e.start, true);
  }
  /** Read a little-endian 32-bit value. */
  readU32(gpa: number): number {
    const e = this.find(gpa, 4);
    return e.view.getUint32(gpa - e.start, true);
  }
  /** Read a little-endian 64-bit value. */
  readU64(gpa: number): bigint {
    const e = this.find(gpa, 8);
    return e.view.getBigUint64(gpa - e.start, true);
  }
  /** Write one byte. */
  writeU8(gpa: number, value: number): void {
    const e = this.find(gpa, 1);
    e.bytes[gpa - e.start] = value;
  }
  /** Write a little-endian 16-bit value. */
  writeU16(gpa: number, value: number): void {
    const e = this.find(gpa, 2);
    e.view.setUint16(gpa - e.start, value, true);
  }
  /** Write a little-endian 32-bit value. */
  writeU32(gpa: number, value: number): void {
    const e = this.find(gpa, 4);
    e.view.setUint32(gpa - e.start, value >>> 0, true);
  }
  /** Write a little-endian 64-bit value (a bigint, or a safe-integer number). */
  writeU64(gpa: number, value: bigint | number): void {
    const e = this.find(gpa, 8);
    e.view.setBigUint64(gpa - e.start, BigInt.asUintN(64, toBigInt(value, 'value')), true);
  }
}

/** GuestMemory over plain ArrayBuffers, for unit tests of devices and loaders (no KVM). */
export function fakeGuestMemory(layout: Array<{ guestPhysAddr: number; size: number }>): GuestMemory {
  const mem = new GuestMemory();
  layout.forEach((r, slot) =>
    mem.addRegion({ slot, guestPhysAddr: r.guestPhysAddr, size: r.size, readonly: false, bytes: new Uint8Array(r.size) }));
  return mem;
}
