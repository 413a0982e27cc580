// One descriptor chain the driver made available: its device-readable buffers, then its
// device-writable ones, every one already checked to lie inside a single guest RAM region.
// Buffers are kept as (address, length) and turned into views on demand, so a chain a device
// holds across event-loop turns stays valid even if the RAM mapping object is replaced.
import type { DmaMemory } from '../../bus/device.js';

export interface ChainBuffer {
  readonly addr: number;
  readonly len: number;
}

export class DescriptorChain {
  /** Descriptor table index of the chain's head: what goes into the used ring. */
  readonly head: number;
  readonly readable: readonly ChainBuffer[];
  readonly writable: readonly ChainBuffer[];
  /** Sum of the readable / writable buffer lengths. */
  readonly readableLength: number;
  readonly writableLength: number;

  constructor(private readonly mem: DmaMemory, head: number, readable: ChainBuffer[], writable: ChainBuffer[]) {
    this.head = head;
    this.readable = readable;
    this.writable = writable;
    let r = 0;
    for (const b of readable) r += b.len;
    let w = 0;
    for (const b of writable) w += b.len;
    this.readableLength = r;
    this.writableLength = w;
  }

  /** Zero-copy views of the readable buffers (valid for this event-loop turn). */
  readableViews(): Uint8Array[] {
    return this.readable.map((b) => this.mem.view(b.addr, b.len));
  }

  /** Zero-copy views of the writable buffers (valid for this event-loop turn). */
  writableViews(): Uint8Array[] {
    return this.writable.map((b) => this.mem.view(b.addr, b.len));
  }

  /**
   * Copy readable bytes [offset, offset+length) out of guest RAM into `dst` at `dstOffset`
   * (length clipped to what the chain and `dst` hold). Returns the bytes copied.
   */
  readInto(dst: Uint8Array, offset = 0, length = this.readableLength - offset, dstOffset = 0): number {
    length = Math.max(0, Math.min(length, this.readableLength - offset, dst.length - dstOffset));
    let skip = offset;
    let done = 0;
    for (const b of this.readable) {
      if (done >= length) break;
      if (skip >= b.len) {
        skip -= b.len;
        continue;
      }
      const n = Math.min(b.len - skip, length - done);
      dst.set(this.mem.view(b.addr + skip, n), dstOffset + done);
      done += n;
      skip = 0;
    }
    return done;
  }

  /** A copy of the readable bytes [offset, offset+length). */
  read(offset = 0, length = this.readableLength - offset): Buffer {
    const out = Buffer.allocUnsafe(Math.max(0, Math.min(length, this.readableLength - offset)));
    this.readInto(out, offset, out.length);
    return out;
  }

  /**
   * Copy `src` into the writable buffers starting `offset` bytes in (clipped to the space the
   * chain has). Returns the bytes written.
   */
  write(src: Uint8Array, offset = 0): number {
    const length = Math.max(0, Math.min(src.length, this.writableLength - offset));
    let skip = offset;
    let done = 0;
    for (const b of this.writable) {
      if (done >= length) break;
      if (skip >= b.len) {
        skip -= b.len;
        continue;
      }
      const n = Math.min(b.len - skip, length - done);
      this.mem.view(b.addr + skip, n).set(src.subarray(done, done + n));
      done += n;
      skip = 0;
    }
    return done;
  }
}
