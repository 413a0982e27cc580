// A minimal guest-side split-virtqueue driver over fake guest RAM, for unit tests: lays out the
// rings, writes descriptors (well formed or not), publishes them and reads the used ring.
import type { GuestMemory } from '../../lib/kvm/memory.js';
import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, type Virtqueue } from '../../lib/devices/virtio/virtqueue.js';

export interface Desc {
  addr: number | bigint;
  len: number;
  flags?: number;
  next?: number;
}

export class TestDriver {
  availIdx = 0;
  usedSeen = 0;
  constructor(readonly mem: GuestMemory, readonly size: number, readonly desc: number, readonly avail: number, readonly used: number) {}

  /** Point `q` at this layout and enable it. */
  install(q: Virtqueue, opts: { eventIdx?: boolean; indirect?: boolean } = {}): string | undefined {
    q.size = this.size;
    q.descAddr = this.desc;
    q.driverAddr = this.avail;
    q.deviceAddr = this.used;
    q.eventIdx = opts.eventIdx ?? false;
    q.indirect = opts.indirect ?? false;
    return q.enable();
  }

  writeDesc(table: number, i: number, d: Desc): void {
    const a = BigInt(d.addr);
    this.mem.writeU64(table + 16 * i, a);
    this.mem.writeU32(table + 16 * i + 8, d.len);
    this.mem.writeU16(table + 16 * i + 12, d.flags ?? 0);
    this.mem.writeU16(table + 16 * i + 14, d.next ?? 0);
  }

  /** Write `descs` as one chain starting at table index `first` (linked first, first+1, …). */
  chain(first: number, descs: Array<{ addr: number; len: number; write?: boolean }>, table = this.desc): number {
    descs.forEach((d, k) => {
      const last = k === descs.length - 1;
      this.writeDesc(table, first + k, {
        addr: d.addr, len: d.len,
        flags: (d.write ? VIRTQ_DESC_F_WRITE : 0) | (last ? 0 : VIRTQ_DESC_F_NEXT),
        next: last ? 0 : first + k + 1,
      });
    });
    return first;
  }

  /** An indirect descriptor at direct index `i` pointing to a table at `table` of `n` entries. */
  indirect(i: number, table: number, n: number): number {
    this.writeDesc(this.desc, i, { addr: table, len: 16 * n, flags: VIRTQ_DESC_F_INDIRECT });
    return i;
  }

  /** Publish head `head` in the available ring. */
  publish(head: number): void {
    this.mem.writeU16(this.avail + 4 + 2 * (this.availIdx % this.size), head);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    this.mem.writeU16(this.avail + 2, this.availIdx);
  }

  setAvailIdx(v: number): void {
    this.availIdx = v & 0xffff;
    this.mem.writeU16(this.avail + 2, this.availIdx);
  }

  set usedEvent(v: number) { this.mem.writeU16(this.avail + 4 + 2 * this.size, v); }
  set availFlags(v: number) { this.mem.writeU16(this.avail, v); }
  get availEvent(): number { return this.mem.readU16(this.used + 4 + 8 * this.size); }
  get usedIdx(): number { return this.mem.readU16(this.used + 2); }

  /** Used elements published since the last call. */
  takeUsed(): Array<{ id: number; len: number }> {
    const out: Array<{ id: number; len: number }> = [];
    const idx = this.usedIdx;
    while (this.usedSeen !== idx) {
      const e = this.used + 4 + 8 * (this.usedSeen % this.size);
      out.push({ id: this.mem.readU32(e), len: this.mem.readU32(e + 4) });
      this.usedSeen = (this.usedSeen + 1) & 0xffff;
    }
    return out;
  }
}
