// Decodes a vCPU's shared kvm_run page into VcpuExit objects. This is the exit hot path:
// offsets are read once into fields, and 'io' data views are cached per (offset, length).
import { native } from '../native.js';
import type { VcpuExit, SystemEventExit } from './exit.js';

const SYSTEM_EVENT_TYPES: Record<number, SystemEventExit['type']> = {
  1: 'shutdown', 2: 'reset', 3: 'crash', 4: 'wakeup', 5: 'suspend', 6: 'sev-term',
};

/**
 * A u64 of kvm_run as a Number (two u32 loads): addresses and offsets there are below 2^53,
 * and getBigUint64 plus the BigInt-to-Number step cost more than the rest of an exit's decode.
 */
function u64(v: DataView, at: number): number {
  return v.getUint32(at, true) + v.getUint32(at + 4, true) * 0x1_0000_0000;
}

export class KvmRun {
  readonly view: DataView;
  readonly bytes: Uint8Array;
  private readonly ioViews = new Map<number, Uint8Array>();
  private readonly mmioData: Uint8Array;
  // offsets
  private readonly oDir: number;
  private readonly oSize: number;
  private readonly oPort: number;
  private readonly oCount: number;
  private readonly oDataOff: number;
  private readonly oMmioAddr: number;
  private readonly oMmioLen: number;
  private readonly oMmioWrite: number;
  private readonly oExitReason: number;
  private readonly c: Record<string, number>;
  private readonly L: Record<string, number>;
  private readonly ring: Record<string, number>;

  constructor(readonly buffer: ArrayBuffer) {
    const L = native().layout.kvm_run;
    this.L = L;
    this.ring = native().layout.kvm_coalesced_mmio_ring;
    this.c = native().constants;
    this.view = new DataView(buffer);
    this.bytes = new Uint8Array(buffer);
    this.oDir = L.io_direction!;
    this.oSize = L.io_size!;
    this.oPort = L.io_port!;
    this.oCount = L.io_count!;
    this.oDataOff = L.io_data_offset!;
    this.oMmioAddr = L.mmio_phys_addr!;
    this.oMmioLen = L.mmio_len!;
    this.oMmioWrite = L.mmio_is_write!;
    this.oExitReason = L.exit_reason!;
    this.mmioData = new Uint8Array(buffer, L.mmio_data!, 8);
  }

  /**
   * Apply the writes KVM queued in the coalesced ring (zones registered with
   * Vm.registerCoalesced*) in order, then mark them consumed. Call before handling any exit
   * so devices see those writes before anything that follows them. Returns how many.
   */
  drainCoalesced(write: (pio: boolean, address: number, size: number, value: number) => void): number {
    const v = this.view;
    const R = this.ring;
    const base = R.page_offset!;
    if (base + 4096 > this.buffer.byteLength) return 0;
    let first = v.getUint32(base + R.first!, true);
    const last = v.getUint32(base + R.last!, true);
    let n = 0;
    const max = R.max!;
    // A guest cannot move `last` (only KVM writes it); bound the walk anyway.
    while (first !== last && first < max && n < max) {
      const e = base + R.entries! + first * R.entry_size!;
      const addr = u64(v, e + R.entry_phys_addr!);
      const len = v.getUint32(e + R.entry_len!, true);
      const pio = v.getUint32(e + R.entry_pio!, true) !== 0;
      const d = e + R.entry_data!;
      if (len === 1) write(pio, addr, 1, v.getUint8(d));
      else if (len === 2) write(pio, addr, 2, v.getUint16(d, true));
      else if (len === 4) write(pio, addr, 4, v.getUint32(d, true));
      else if (len === 8) {
        write(pio, addr, 4, v.getUint32(d, true));
        write(pio, addr + 4, 4, v.getUint32(d + 4, true));
      }
      first = (first + 1) % max;
      n++;
    }
    if (n > 0) v.setUint32(base + R.first!, first, true);
    return n;
  }

  /** True when the coalesced ring holds writes not yet applied (cheap: two loads). */
  get coalescedPending(): boolean {
    const base = this.ring.page_offset!;
    if (base + 4096 > this.buffer.byteLength) return false;
    return this.view.getUint32(base + this.ring.first!, true) !== this.view.getUint32(base + this.ring.last!, true);
  }

  get exitReason(): number {
    return this.view.getUint32(this.oExitReason, true);
  }

  /** Decode the exit KVM_RUN just reported (`reason` from the shim; -1 = kicked). */
  decode(reason: number): VcpuExit {
    const c = this.c;
    const v = this.view;
    switch (reason) {
      case -1:
        return { reason: 'interrupted' };
      case c.KVM_EXIT_IO: {
        const size = v.getUint8(this.oSize);
        const count = v.getUint32(this.oCount, true);
        const off = u64(v, this.oDataOff);
        const len = size * count;
        const key = off * 65536 + len;
        let data = this.ioViews.get(key);
        if (data === undefined) {
          // The kernel places the data inside the mapping; anything else is refused, not read.
          data = off + len <= this.buffer.byteLength ? new Uint8Array(this.buffer, off, len) : new Uint8Array(len);
          this.ioViews.set(key, data);
        }
        return {
          reason: 'io',
          direction: v.getUint8(this.oDir) === c.KVM_EXIT_IO_OUT ? 'out' : 'in',
          port: v.getUint16(this.oPort, true),
          size,
          count,
          data,
        };
      }
      case c.KVM_EXIT_MMIO:
        return {
          reason: 'mmio',
          isWrite: v.getUint8(this.oMmioWrite) !== 0,
          address: u64(v, this.oMmioAddr),
          size: v.getUint32(this.oMmioLen, true),
          data: this.mmioData,
        };
      case c.KVM_EXIT_HLT:
        return { reason: 'hlt' };
      case c.KVM_EXIT_SHUTDOWN:
        return { reason: 'shutdown' };
      case c.KVM_EXIT_INTR:
        return { reason: 'interrupted' };
      case c.KVM_EXIT_IRQ_WINDOW_OPEN:
        return { reason: 'irq-window-open' };
      case c.KVM_EXIT_DEBUG:
        return { reason: 'debug' };
      case c.KVM_EXIT_SYSTEM_EVENT: {
        const t = v.getUint32(this.L.system_event_type!, true);
        return { reason: 'system-event', type: SYSTEM_EVENT_TYPES[t] ?? 'unknown', rawType: t };
      }
      case c.KVM_EXIT_FAIL_ENTRY:
        return {
          reason: 'fail-entry',
          hardwareEntryFailureReason: v.getBigUint64(this.L.fail_entry_reason!, true),
          cpu: v.getUint32(this.L.fail_entry_cpu!, true),
        };
      case c.KVM_EXIT_INTERNAL_ERROR: {
        const n = Math.min(v.getUint32(this.L.internal_ndata!, true), 16);
        const data: bigint[] = [];
        for (let i = 0; i < n; i++) data.push(v.getBigUint64(this.L.internal_data! + i * 8, true));
        return { reason: 'internal-error', suberror: v.getUint32(this.L.internal_suberror!, true), data };
      }
      default:
        return { reason: 'unknown', exitReason: reason };
    }
  }
}
