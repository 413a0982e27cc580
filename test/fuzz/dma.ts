// Guest RAM for the fuzzers: a GuestMemory over plain buffers, wrapped so that every access a
// device makes outside RAM is recorded as a violation (the real GuestMemory throws, and a
// device that catches that throw would hide it). `contains` is a question, not an access.
import type { DmaMemory } from '../../lib/bus/device.js';
import { fakeGuestMemory, type GuestMemory } from '../../lib/kvm/memory.js';

export interface RamRegion {
  guestPhysAddr: number;
  size: number;
}

export interface DmaViolation {
  method: string;
  gpa: number;
  length: number;
}

export class CheckedMemory implements DmaMemory {
  readonly inner: GuestMemory;
  readonly violations: DmaViolation[] = [];
  /** Bytes the device read and wrote in RAM. */
  bytesRead = 0;
  bytesWritten = 0;

  constructor(readonly layout: readonly RamRegion[]) {
    this.inner = fakeGuestMemory(layout.map((r) => ({ ...r })));
  }

  private check(method: string, gpa: number, length: number): void {
    if (!this.inner.contains(gpa, length)) this.violations.push({ method, gpa, length });
  }

  contains(gpa: number, length: number): boolean {
    return this.inner.contains(gpa, length);
  }

  read(gpa: number, length: number): Uint8Array {
    this.check('read', gpa, length);
    this.bytesRead += length;
    return this.inner.read(gpa, length);
  }

  view(gpa: number, length: number): Uint8Array {
    this.check('view', gpa, length);
    this.bytesRead += length;
    return this.inner.view(gpa, length);
  }

  write(gpa: number, bytes: Uint8Array): void {
    this.check('write', gpa, bytes.length);
    this.bytesWritten += bytes.length;
    this.inner.write(gpa, bytes);
  }

  readU8(gpa: number): number { this.check('readU8', gpa, 1); this.bytesRead += 1; return this.inner.readU8(gpa); }
  readU16(gpa: number): number { this.check('readU16', gpa, 2); this.bytesRead += 2; return this.inner.readU16(gpa); }
  readU32(gpa: number): number {
    this.check('readU32', gpa, 4);
    this.bytesRead += 4;
    return this.inner.readU32(gpa);
  }
  readU64(gpa: number): bigint { this.check('readU64', gpa, 8); this.bytesRead += 8; return this.inner.readU64(gpa); }
  writeU8(gpa: number, v: number): void { this.check('writeU8', gpa, 1); this.bytesWritten += 1; this.inner.writeU8(gpa, v); }
  writeU16(gpa: number, v: number): void { this.check('writeU16', gpa, 2); this.bytesWritten += 2; this.inner.writeU16(gpa, v); }
  writeU32(gpa: number, v: number): void { this.check('writeU32', gpa, 4); this.bytesWritten += 4; this.inner.writeU32(gpa, v); }
  writeU64(gpa: number, v: bigint): void { this.check('writeU64', gpa, 8); this.bytesWritten += 8; this.inner.writeU64(gpa, v); }

  /** Throw if any access fell outside RAM (and forget it, so one bug is reported once). */
  assertClean(): void {
    if (this.violations.length === 0) return;
    const v = this.violations.splice(0);
    throw new Error(`DMA outside guest RAM: ${v.slice(0, 4).map((x) => `${x.method}(0x${x.gpa.toString(16)}, ${x.length})`).join(', ')}${v.length > 4 ? ` and ${v.length - 4} more` : ''}`);
  }
}
