// A split virtqueue (virtio 1.2 §2.7): the descriptor table, the driver ("available") ring and
// the device ("used") ring in guest RAM, and the device's private indices.
//
// Every value read from guest RAM is hostile. The walker refuses, without throwing:
//   - an available index that ran more than queue-size entries ahead of ours,
//   - a head or `next` index at or past the table size,
//   - a chain longer than the queue size (this also catches loops), or longer than 4 GiB,
//   - an indirect descriptor without the feature, inside an indirect table, with NEXT set,
//     or whose table is empty, not a multiple of 16 bytes, larger than the queue size,
//   - a buffer outside guest RAM (or whose address + length overflows 64 bits),
//   - a device-readable buffer after a device-writable one.
// Any of these marks the queue broken: pop() returns undefined from then on and the transport
// is told (it sets DEVICE_NEEDS_RESET). A chain that is well formed but wrong for the device
// (e.g. readable where the device must write) is the device's to drop(), with a counter.
import type { DmaMemory } from '../../bus/device.js';
import { DescriptorChain, type ChainBuffer } from './chain.js';

export const VIRTQ_DESC_F_NEXT = 1;
export const VIRTQ_DESC_F_WRITE = 2;
export const VIRTQ_DESC_F_INDIRECT = 4;
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
export const VIRTQ_USED_F_NO_NOTIFY = 1;

/** Largest queue size the split layout allows (§2.7: Queue Size is at most 32768). */
export const VIRTQ_MAX_SIZE = 32768;
const DESC_SIZE = 16;
const MAX_CHAIN_BYTES = 0x1_0000_0000;

/** Where the three parts of the queue live and how large it is (what the common config sets). */
export interface VirtqueueLayout {
  size: number;
  descAddr: number;
  driverAddr: number;
  deviceAddr: number;
}

/** Virtqueue.saveState(). */
export interface VirtqueueState extends VirtqueueLayout {
  enabled: boolean;
  lastAvailIdx: number;
  usedIdx: number;
  signalledUsed: number | null;
  broken: string | null;
}

export interface VirtqueueCounters {
  /** Chains handed to the device. */
  popped: number;
  /** Used elements written. */
  used: number;
  /** Chains the device dropped as wrong for it (written length 0). */
  dropped: number;
  /** Interrupts sent / suppressed by the driver's flags or used_event. */
  interrupts: number;
  suppressed: number;
}

export class Virtqueue {
  readonly index: number;
  readonly maxSize: number;
  size: number;
  descAddr = 0;
  driverAddr = 0;
  deviceAddr = 0;
  enabled = false;
  /** Negotiated VIRTIO_RING_F_EVENT_IDX / VIRTIO_RING_F_INDIRECT_DESC (set by the transport). */
  eventIdx = false;
  indirect = false;
  /** Why the queue stopped (a malformed ring or chain), or undefined. */
  broken: string | undefined;
  readonly counters: VirtqueueCounters = { popped: 0, used: 0, dropped: 0, interrupts: 0, suppressed: 0 };

  private lastAvailIdx = 0;
  private usedIdx = 0;
  /** used idx at the last interrupt decision, for EVENT_IDX (undefined: signal the next one). */
  private signalledUsed: number | undefined;
  /** With EVENT_IDX: the driver notifies once it has made this many more chains available. */
  private notifyEvery = 1;

  /**
   * @param interrupt raises this queue's interrupt (MSI-X vector or INTx + ISR), set by the transport
   * @param onBroken tells the transport the driver broke the queue (→ DEVICE_NEEDS_RESET)
   */
  constructor(
    private readonly mem: DmaMemory,
    index: number,
    maxSize: number,
    public interrupt: () => void = () => {},
    public onBroken: (q: Virtqueue, reason: string) => void = () => {},
  ) {
    this.index = index;
    this.maxSize = maxSize;
    this.size = maxSize;
  }

  /** Back to the state after a device reset: disabled, maximum size, no addresses. */
  reset(): void {
    this.size = this.maxSize;
    this.descAddr = this.driverAddr = this.deviceAddr = 0;
    this.enabled = false;
    this.eventIdx = this.indirect = false;
    this.broken = undefined;
    this.lastAvailIdx = this.usedIdx = 0;
    this.signalledUsed = undefined;
    this.notifyEvery = 1;
  }

  /**
   * The driver wrote queue_enable = 1: check the layout once (size a power of two no larger
   * than the maximum, rings aligned and inside guest RAM). Returns why it is refused, or undefined.
   */
  enable(): string | undefined {
    const why = this.layoutProblem();
    if (why !== undefined) {
      this.fail(why);
      return why;
    }
    this.enabled = true;
    this.lastAvailIdx = 0;
    this.usedIdx = 0;
    this.signalledUsed = undefined;
    this.notifyEvery = 1;
    return undefined;
  }

  private layoutProblem(): string | undefined {
    const n = this.size;
    if (!Number.isInteger(n) || n < 1 || n > this.maxSize || (n & (n - 1)) !== 0) {
      return `queue ${this.index}: size ${n} is not a power of two in 1..${this.maxSize}`;
    }
    const extra = this.eventIdx ? 2 : 0;
    const parts: Array<[string, number, number, number]> = [
      ['descriptor table', this.descAddr, DESC_SIZE * n, 16],
      ['driver ring', this.driverAddr, 4 + 2 * n + extra, 2],
      ['device ring', this.deviceAddr, 4 + 8 * n + extra, 4],
    ];
    for (const [what, addr, len, align] of parts) {
      if (addr % align !== 0) return `queue ${this.index}: ${what} at 0x${addr.toString(16)} is not ${align}-byte aligned`;
      if (!this.mem.contains(addr, len)) return `queue ${this.index}: ${what} [0x${addr.toString(16)}, +${len}) is outside guest RAM`;
    }
    return undefined;
  }

  /** Usable: enabled and not broken. */
  get ready(): boolean {
    return this.enabled && this.broken === undefined;
  }

  /** Chains the driver has made available that we have not popped yet (0 when not ready or broken). */
  pending(): number {
    if (!this.ready) return 0;
    const n = (this.mem.readU16(this.driverAddr + 2) - this.lastAvailIdx) & 0xffff;
    return n > this.size ? 0 : n;
  }

  /**
   * Take the next available chain, or undefined when there is none, the queue is not ready, or
   * the chain is malformed (the queue is then broken and the transport told).
   */
  pop(): DescriptorChain | undefined {
    if (!this.ready) return undefined;
    const availIdx = this.mem.readU16(this.driverAddr + 2);
    const n = (availIdx - this.lastAvailIdx) & 0xffff;
    if (n === 0) {
      this.publishAvailEvent();
      return undefined;
    }
    if (n > this.size) {
      this.fail(`queue ${this.index}: available index ${availIdx} is ${n} ahead of ${this.lastAvailIdx} (size ${this.size})`);
      return undefined;
    }
    const head = this.mem.readU16(this.driverAddr + 4 + 2 * (this.lastAvailIdx % this.size));
    let chain: DescriptorChain | undefined;
    try {
      chain = this.walk(head);
    } catch (e) {
      // Every address was checked before use; this is the last line that keeps a guest value
      // from throwing out of the run loop.
      return this.bad(`queue ${this.index}: ${(e as Error).message}`);
    }
    if (chain === undefined) return undefined;
    this.lastAvailIdx = (this.lastAvailIdx + 1) & 0xffff;
    this.counters.popped++;
    this.publishAvailEvent();
    return chain;
  }

  /**
   * Give back the last `count` popped chains unused (they will be popped again). Only for chains
   * popped most recently and not yet used, e.g. a device saving state while it holds buffers.
   */
  unpop(count: number): void {
    this.lastAvailIdx = (this.lastAvailIdx - count) & 0xffff;
    this.counters.popped -= count;
  }

  /** With EVENT_IDX, ask the driver to notify once it adds `notifyEvery` chains past what we have consumed. */
  private publishAvailEvent(): void {
    if (this.eventIdx) this.mem.writeU16(this.deviceAddr + 4 + 8 * this.size, (this.lastAvailIdx + this.notifyEvery - 1) & 0xffff);
  }

  /**
   * With EVENT_IDX (§2.7.10, avail_event): have the driver notify only once it has made `count`
   * more chains available (1, the default: each one). Each notification costs the guest an exit
   * and us an event-loop turn; a device that needs no word of each new buffer asks for fewer.
   * It must be sure the driver will add that many, or look at the queue itself later. Returns
   * whether chains are available already: the driver may have added them before it could see
   * the new threshold, so look again rather than wait.
   */
  notifyAfter(count: number): boolean {
    this.notifyEvery = Math.max(1, Math.min(this.size, Math.floor(count)));
    if (this.ready) this.publishAvailEvent();
    return this.pending() > 0;
  }

  /** Return a chain to the driver, `written` bytes of its writable part filled. */
  push(chain: DescriptorChain, written: number): void {
    if (!this.ready) return;
    const len = Math.max(0, Math.min(written, chain.writableLength));
    const slot = this.deviceAddr + 4 + 8 * (this.usedIdx % this.size);
    this.mem.writeU32(slot, chain.head);
    this.mem.writeU32(slot + 4, len);
    // The element is written before the index that publishes it (x86 keeps store order).
    this.usedIdx = (this.usedIdx + 1) & 0xffff;
    this.mem.writeU16(this.deviceAddr + 2, this.usedIdx);
    this.counters.used++;
  }

  /** Return a chain the device cannot use (wrong direction, too short…): used with length 0, counted. */
  drop(chain: DescriptorChain): void {
    this.counters.dropped++;
    this.push(chain, 0);
  }

  /**
   * Whether the driver wants an interrupt for the used elements pushed since the last call
   * (§2.7.7.2 / §2.7.10): used_event with EVENT_IDX, else the NO_INTERRUPT flag.
   */
  needsInterrupt(): boolean {
    if (!this.ready) return false;
    if (this.eventIdx) {
      const now = this.usedIdx;
      const old = this.signalledUsed;
      this.signalledUsed = now;
      if (old === undefined) return true;
      const usedEvent = this.mem.readU16(this.driverAddr + 4 + 2 * this.size);
      return ((now - usedEvent - 1) & 0xffff) < ((now - old) & 0xffff);
    }
    return (this.mem.readU16(this.driverAddr) & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
  }

  /** Raise the queue's interrupt if the driver wants one for what was pushed. */
  notify(): void {
    if (this.needsInterrupt()) {
      this.counters.interrupts++;
      this.interrupt();
    } else {
      this.counters.suppressed++;
    }
  }

  private fail(reason: string): void {
    if (this.broken !== undefined) return;
    this.broken = reason;
    this.onBroken(this, reason);
  }

  /** Follow the chain starting at `head`; undefined (and the queue broken) when malformed. */
  private walk(head: number): DescriptorChain | undefined {
    const mem = this.mem;
    const readable: ChainBuffer[] = [];
    const writable: ChainBuffer[] = [];
    let table = this.descAddr;
    let tableSize = this.size;
    let inIndirect = false;
    let idx = head;
    let count = 0;
    let bytes = 0;
    const q = `queue ${this.index}`;
    if (idx >= tableSize) return this.bad(`${q}: head ${idx} is past the table (size ${tableSize})`);
    for (;;) {
      if (++count > this.size) return this.bad(`${q}: chain from head ${head} is longer than the queue size (a loop?)`);
      const d = table + DESC_SIZE * idx;
      const lo = mem.readU32(d);
      const hi = mem.readU32(d + 4);
      const len = mem.readU32(d + 8);
      const flags = mem.readU16(d + 12);
      const next = mem.readU16(d + 14);
      // Addresses at or above 2^53 cannot be guest RAM; refusing them keeps the arithmetic exact.
      if (hi >= 0x20_0000) return this.bad(`${q}: descriptor ${idx} address 0x${hi.toString(16)}${lo.toString(16).padStart(8, '0')} is outside guest RAM`);
      const addr = hi * 0x1_0000_0000 + lo;
      if ((flags & VIRTQ_DESC_F_INDIRECT) !== 0) {
        if (!this.indirect) return this.bad(`${q}: indirect descriptor ${idx} without VIRTIO_RING_F_INDIRECT_DESC`);
        if (inIndirect) return this.bad(`${q}: indirect descriptor inside an indirect table`);
        if ((flags & VIRTQ_DESC_F_NEXT) !== 0) return this.bad(`${q}: indirect descriptor ${idx} also has NEXT`);
        if (len === 0 || len % DESC_SIZE !== 0) return this.bad(`${q}: indirect table length ${len} is not a non-zero multiple of 16`);
        if (len / DESC_SIZE > this.size) return this.bad(`${q}: indirect table of ${len / DESC_SIZE} entries exceeds the queue size ${this.size}`);
        if (!mem.contains(addr, len)) return this.bad(`${q}: indirect table [0x${addr.toString(16)}, +${len}) is outside guest RAM`);
        table = addr;
        tableSize = len / DESC_SIZE;
        inIndirect = true;
        idx = 0;
        count = 0;
        continue;
      }
      if (!mem.contains(addr, len)) return this.bad(`${q}: buffer [0x${addr.toString(16)}, +${len}) is outside guest RAM`);
      bytes += len;
      if (bytes > MAX_CHAIN_BYTES) return this.bad(`${q}: chain from head ${head} is longer than 4 GiB`);
      if ((flags & VIRTQ_DESC_F_WRITE) !== 0) {
        writable.push({ addr, len });
      } else {
        if (writable.length > 0) return this.bad(`${q}: device-readable descriptor ${idx} after a device-writable one`);
        readable.push({ addr, len });
      }
      if ((flags & VIRTQ_DESC_F_NEXT) === 0) break;
      if (next >= tableSize) return this.bad(`${q}: next ${next} is past the table (size ${tableSize})`);
      idx = next;
    }
    return new DescriptorChain(mem, head, readable, writable);
  }

  private bad(reason: string): undefined {
    this.fail(reason);
    return undefined;
  }

  saveState(): VirtqueueState {
    return {
      size: this.size, descAddr: this.descAddr, driverAddr: this.driverAddr, deviceAddr: this.deviceAddr,
      enabled: this.enabled, lastAvailIdx: this.lastAvailIdx, usedIdx: this.usedIdx,
      signalledUsed: this.signalledUsed ?? null, broken: this.broken ?? null,
    };
  }

  /** Restore; eventIdx/indirect come from the transport's negotiated features. */
  loadState(s: VirtqueueState): void {
    this.size = s.size;
    this.descAddr = s.descAddr;
    this.driverAddr = s.driverAddr;
    this.deviceAddr = s.deviceAddr;
    this.enabled = s.enabled;
    this.lastAvailIdx = s.lastAvailIdx & 0xffff;
    this.usedIdx = s.usedIdx & 0xffff;
    this.signalledUsed = s.signalledUsed ?? undefined;
    this.broken = s.broken ?? undefined;
  }
}
