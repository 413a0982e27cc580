// Decodes a vCPU's shared kvm_run page into VcpuExit objects. This is the exit hot path:
// offsets are read once into fields, and 'io' data views are cached per (offset, length).
import { native } from '../native.js';
import type { VcpuExit, SystemEventExit } from './exit.js';

const SYSTEM_EVENT_TYPES: Record<number, SystemEventExit['type']> = {
  1: 'shutdown', 2: 'reset', 3: 'crash', 4: 'wakeup', 5: 'suspend', 6: 'sev-term',
};

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

  constructor(readonly buffer: ArrayBuffer) {
    const L = native().layout.kvm_run;
    this.L = L;
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
        const off = Number(v.getBigUint64(this.oDataOff, true));
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
          address: Number(v.getBigUint64(this.oMmioAddr, true)),
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
