// MSI-X (PCI Local Bus 3.0 §6.8.2): the capability's Message Control bits, the vector table
// and the Pending Bit Array, which live in a memory BAR. A vector whose entry or whole
// function is masked is not lost: its pending bit is set and the message goes out when the
// mask is cleared. Messages are delivered through an injected MsiSink (KVM_SIGNAL_MSI).
import type { BusDevice } from '../../bus/device.js';

export const PCI_CAP_ID_MSIX = 0x11;
/** Capability layout: Message Control at +2, Table Offset/BIR at +4, PBA Offset/BIR at +8. */
export const PCI_MSIX_FLAGS = 2;
export const PCI_MSIX_TABLE = 4;
export const PCI_MSIX_PBA = 8;
export const PCI_MSIX_CAP_SIZE = 12;
export const PCI_MSIX_FLAGS_QSIZE = 0x07ff;
export const PCI_MSIX_FLAGS_MASKALL = 0x4000;
export const PCI_MSIX_FLAGS_ENABLE = 0x8000;
/** Table entry: address low/high, data, vector control (bit 0 masks the vector). */
export const PCI_MSIX_ENTRY_SIZE = 16;
export const PCI_MSIX_ENTRY_LOWER_ADDR = 0;
export const PCI_MSIX_ENTRY_UPPER_ADDR = 4;
export const PCI_MSIX_ENTRY_DATA = 8;
export const PCI_MSIX_ENTRY_VECTOR_CTRL = 12;
export const PCI_MSIX_ENTRY_CTRL_MASKBIT = 1;
/** Largest table the capability can describe. */
export const MSIX_MAX_VECTORS = 2048;

export interface MsiSink {
  /** Deliver one message: a write of `data` to `address`. */
  signalMsi(address: bigint, data: number): void;
}

export interface MsixState {
  table: number[];
  pending: number[];
  enabled: boolean;
  functionMask: boolean;
}

export class Msix {
  readonly vectors: number;
  /** The table as the guest programs it (little-endian dwords). */
  private readonly table: Uint8Array;
  private readonly tableView: DataView;
  private readonly pending: Uint8Array;
  enabled = false;
  functionMask = false;
  /** Messages sent / held pending / sent late when unmasked. */
  readonly counters = { sent: 0, heldPending: 0, sentOnUnmask: 0 };

  /** The table window (16 bytes per vector) and the PBA window, for the BAR that holds them. */
  readonly tableWindow: BusDevice;
  readonly pbaWindow: BusDevice;

  constructor(vectors: number, private readonly sink: MsiSink | undefined) {
    if (!Number.isInteger(vectors) || vectors < 1 || vectors > MSIX_MAX_VECTORS) throw new RangeError(`MSI-X vectors ${vectors} not in 1..${MSIX_MAX_VECTORS}`);
    this.vectors = vectors;
    this.table = new Uint8Array(vectors * PCI_MSIX_ENTRY_SIZE);
    this.tableView = new DataView(this.table.buffer);
    this.pending = new Uint8Array(Math.ceil(vectors / 64) * 8);
    this.reset();
    this.tableWindow = {
      read: (o, s) => readBytes(this.table, o, s),
      write: (o, s, v) => this.writeTable(o, s, v),
    };
    this.pbaWindow = {
      read: (o, s) => readBytes(this.pending, o, s),
      write: () => {}, // read-only
    };
  }

  /** Bytes the table and the PBA take in their BAR. */
  get tableBytes(): number { return this.table.length; }
  get pbaBytes(): number { return this.pending.length; }

  /** Power-on state: every vector masked, nothing pending, MSI-X disabled. */
  reset(): void {
    this.table.fill(0);
    for (let v = 0; v < this.vectors; v++) this.tableView.setUint32(v * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL, PCI_MSIX_ENTRY_CTRL_MASKBIT, true);
    this.pending.fill(0);
    this.enabled = false;
    this.functionMask = false;
  }

  /** The capability's Message Control was written: new enable and function-mask bits. */
  setControl(enabled: boolean, functionMask: boolean): void {
    this.enabled = enabled;
    this.functionMask = functionMask;
    this.flushPending();
  }

  /** Message Control as read: table size - 1 and the two guest bits. */
  get control(): number {
    return ((this.vectors - 1) & PCI_MSIX_FLAGS_QSIZE) | (this.functionMask ? PCI_MSIX_FLAGS_MASKALL : 0) | (this.enabled ? PCI_MSIX_FLAGS_ENABLE : 0);
  }

  isPending(v: number): boolean {
    return (this.pending[v >> 3]! & (1 << (v & 7))) !== 0;
  }

  private masked(v: number): boolean {
    return this.functionMask || (this.tableView.getUint32(v * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL, true) & PCI_MSIX_ENTRY_CTRL_MASKBIT) !== 0;
  }

  /**
   * Signal vector `v`. Returns false when MSI-X is off or `v` is not a vector (the caller uses
   * INTx or drops it); true when sent or held pending behind a mask.
   */
  notify(v: number): boolean {
    if (!this.enabled || !Number.isInteger(v) || v < 0 || v >= this.vectors) return false;
    if (this.masked(v)) {
      this.pending[v >> 3]! |= 1 << (v & 7);
      this.counters.heldPending++;
      return true;
    }
    this.send(v);
    this.counters.sent++;
    return true;
  }

  private send(v: number): void {
    const e = v * PCI_MSIX_ENTRY_SIZE;
    const lo = this.tableView.getUint32(e + PCI_MSIX_ENTRY_LOWER_ADDR, true);
    const hi = this.tableView.getUint32(e + PCI_MSIX_ENTRY_UPPER_ADDR, true);
    const data = this.tableView.getUint32(e + PCI_MSIX_ENTRY_DATA, true);
    this.sink?.signalMsi((BigInt(hi) << 32n) | BigInt(lo), data);
  }

  private writeTable(offset: number, size: number, value: number): void {
    if (offset < 0 || offset + size > this.table.length) return;
    for (let i = 0; i < size; i++) this.table[offset + i] = Math.floor(value / 2 ** (8 * i)) & 0xff;
    // Only the mask bit of vector control is defined; the rest reads as zero.
    const v = Math.floor(offset / PCI_MSIX_ENTRY_SIZE);
    const ctrl = v * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL;
    if (offset + size > ctrl) {
      this.tableView.setUint32(ctrl, this.tableView.getUint32(ctrl, true) & PCI_MSIX_ENTRY_CTRL_MASKBIT, true);
      this.flushPending();
    }
  }

  /** Send what was held for vectors that are no longer masked. */
  private flushPending(): void {
    if (!this.enabled) return;
    for (let v = 0; v < this.vectors; v++) {
      if (!this.isPending(v) || this.masked(v)) continue;
      this.pending[v >> 3]! &= ~(1 << (v & 7));
      this.send(v);
      this.counters.sentOnUnmask++;
    }
  }

  saveState(): MsixState {
    return { table: Array.from(this.table), pending: Array.from(this.pending), enabled: this.enabled, functionMask: this.functionMask };
  }

  loadState(s: MsixState): void {
    this.table.set(s.table.slice(0, this.table.length));
    this.pending.set(s.pending.slice(0, this.pending.length));
    this.enabled = s.enabled;
    this.functionMask = s.functionMask;
  }
}

/** Little-endian read of `size` bytes at `offset`; bytes outside read as 0. */
export function readBytes(bytes: Uint8Array, offset: number, size: number): number {
  let v = 0;
  for (let i = size - 1; i >= 0; i--) {
    const o = offset + i;
    v = v * 256 + (o >= 0 && o < bytes.length ? bytes[o]! : 0);
  }
  return v >>> 0;
}
