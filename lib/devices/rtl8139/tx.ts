// Normal-mode transmit (8139too): four descriptors, each a TxStatus (TSD) / TxAddr (TSAD) pair.
//
// Ownership is the reverse of most NICs: the driver writes the size with OWN = 0 to hand the
// buffer over; the chip sets OWN = 1 once the data is copied into its FIFO (the buffer is the
// driver's again), then TOK when the frame is on the wire, and raises TxOK.
import type { DmaMemory } from '../../bus/device.js';
import {
  TxAborted, TxCarrierLost, TxEarlyThreshMask, TxHostOwns, TxSizeMask, TxStatOK, TX_MAX_SIZE,
  TxUnderrun,
} from './regs.js';

export interface TxSink {
  /** Put a frame on the wire; false when the link is down (carrier lost). */
  transmit(frame: Uint8Array): boolean;
}

export type TxOutcome = 'sent' | 'no-carrier' | 'bad-size' | 'dma-error';

/** TxDescriptors.saveState(). */
export interface TxDescriptorsState {
  status: number[];
  pending: number[];
}

export class TxDescriptors {
  /** TSD0..3 as the chip reports them. */
  readonly status = new Uint32Array(4);
  /** Descriptors handed over while the transmitter was off, in the order the driver wrote them. */
  private pending: number[] = [];

  reset(): void {
    // After reset every buffer belongs to the host (OWN = 1), none has been sent.
    this.status.fill(TxHostOwns);
    this.pending = [];
  }

  saveState(): TxDescriptorsState {
    return { status: Array.from(this.status), pending: [...this.pending] };
  }

  loadState(s: TxDescriptorsState): void {
    this.status.set(s.status.slice(0, 4));
    this.pending = [...s.pending];
  }

  /** TxSummary (TSAD): TOK3..0 | TUN3..0 | TABT3..0 | OWN3..0. */
  summary(): number {
    let v = 0;
    for (let i = 0; i < 4; i++) {
      const s = this.status[i]!;
      if (s & TxStatOK) v |= 0x1000 << i;
      if (s & TxUnderrun) v |= 0x0100 << i;
      if (s & TxAborted) v |= 0x0010 << i;
      if (s & TxHostOwns) v |= 0x0001 << i;
    }
    return v;
  }

  /**
   * The driver wrote TSDn. Keeps the driver-writable fields (size, OWN, early-TX threshold) and
   * clears the old completion status. Returns true when the descriptor is now the chip's.
   */
  write(n: number, value: number): boolean {
    const v = (value & (TxSizeMask | TxHostOwns | TxEarlyThreshMask)) >>> 0;
    this.status[n] = v;
    if ((v & TxHostOwns) !== 0) return false;
    if (!this.pending.includes(n)) this.pending.push(n);
    return true;
  }

  /** Descriptor indices waiting for the transmitter (oldest first); clears the list. */
  takePending(): number[] {
    const p = this.pending;
    this.pending = [];
    return p;
  }

  /**
   * Send descriptor n from guest buffer `addr`. Bad sizes and buffers outside guest RAM abort
   * the descriptor (TABT) instead of throwing.
   */
  send(n: number, addr: number, mem: DmaMemory, sink: TxSink, loopback: ((f: Uint8Array) => void) | undefined): TxOutcome {
    const size = this.status[n]! & TxSizeMask;
    const keep = this.status[n]! & (TxSizeMask | TxEarlyThreshMask);
    if (size === 0 || size > TX_MAX_SIZE) {
      this.status[n] = (keep | TxHostOwns | TxAborted) >>> 0;
      return 'bad-size';
    }
    if (!mem.contains(addr, size)) {
      this.status[n] = (keep | TxHostOwns | TxAborted) >>> 0;
      return 'dma-error';
    }
    const frame = mem.read(addr, size);
    if (loopback !== undefined) {
      loopback(frame);
      this.status[n] = (keep | TxHostOwns | TxStatOK) >>> 0;
      return 'sent';
    }
    if (!sink.transmit(frame)) {
      // No carrier: the frame goes nowhere but the descriptor completes, flagged CRS.
      this.status[n] = (keep | TxHostOwns | TxStatOK | TxCarrierLost) >>> 0;
      return 'no-carrier';
    }
    this.status[n] = (keep | TxHostOwns | TxStatOK) >>> 0;
    return 'sent';
  }
}

