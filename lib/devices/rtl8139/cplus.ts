// C+ mode descriptor rings (8139cp): 16-byte descriptors {opts1, opts2, addr lo, addr hi} in
// guest RAM, OWN set while the chip owns one, EOR closing the ring. Every descriptor and buffer
// address is checked against guest RAM before use; a bad one completes the descriptor with an
// error bit (or stops the ring if the descriptor itself is unreachable), never throws.
import type { DmaMemory } from '../../bus/device.js';
import type { TcpSegmentation } from '../../net/backend.js';
import { prepareSegmentation, segmentTcp } from '../../net/tcp-segmentation.js';
import { insertChecksums, insertVlanTag, rxChecksumStatus, stripVlanTag } from './offload.js';
import { fcsOf } from './rx.js';
import {
  CP_DESC_SIZE, CpRxLenMask, CpTxLenMask, DescOwn, FirstFrag, IPCS, LargeSend, LastFrag,
  MSSMask, MSSShift, RingEnd, RxBcast, RxBroadcast, RxError, RxErrFIFO, RxMcast, RxMulticast,
  RxPhysical, RxPhysMatch, RxVlanTagged, TCPCS, TxError, TxStatusBits, TxVlanTag, UDPCS,
} from './regs.js';

/** Descriptors a ring may hold (datasheet maximum); also bounds the work of one TxPoll. */
export const CP_MAX_DESCRIPTORS = 1024;
/** Largest frame a chain of TX descriptors may build (a 64 KiB TSO payload plus headers). */
export const CP_MAX_TX_FRAME = 0x10000 + 256;

function swab16(v: number): number {
  return ((v & 0xff) << 8) | ((v >>> 8) & 0xff);
}

export interface CplusTxResult {
  /** Frames (or TSO segments) handed to the wire. */
  frames: number;
  /** Descriptor chains completed with TxError. */
  errors: number;
  /** A descriptor address outside guest RAM stopped the ring. */
  ringError: boolean;
}

export interface CplusTxOptions {
  send(frame: Uint8Array): void;
  /**
   * Optional: take a LargeSend frame whole (NetBackend.sendSegmented); false makes the ring
   * segment it and send() each segment, as it does when this is absent.
   */
  sendSegmented?(frame: Uint8Array, tso: TcpSegmentation): boolean;
}

/** CplusTxRing.saveState(). */
export interface CplusTxRingState {
  index: number; parts: number[][]; bytes: number; first: number; firstOpts2: number; inFrame: boolean; broken: boolean;
}

export class CplusTxRing {
  index = 0;
  private parts: Uint8Array[] = [];
  private bytes = 0;
  private first = 0;
  private firstOpts2 = 0;
  private inFrame = false;
  private broken = false;

  reset(): void {
    this.index = 0;
    this.dropPartial();
  }

  /** Ring position and a frame assembled from descriptors so far (its parts as byte arrays). */
  saveState(): CplusTxRingState {
    return {
      index: this.index, parts: this.parts.map((p) => Array.from(p)), bytes: this.bytes, first: this.first,
      firstOpts2: this.firstOpts2, inFrame: this.inFrame, broken: this.broken,
    };
  }

  loadState(s: CplusTxRingState): void {
    this.index = s.index; this.parts = s.parts.map((p) => Uint8Array.from(p)); this.bytes = s.bytes; this.first = s.first;
    this.firstOpts2 = s.firstOpts2; this.inFrame = s.inFrame; this.broken = s.broken;
  }

  private dropPartial(): void {
    this.parts = [];
    this.bytes = 0;
    this.inFrame = false;
    this.broken = false;
  }

  /** Process owned descriptors from `ring` until one is not ours (bounded per call). */
  poll(mem: DmaMemory, ring: number, opts: CplusTxOptions): CplusTxResult {
    const res: CplusTxResult = { frames: 0, errors: 0, ringError: false };
    for (let budget = 0; budget < CP_MAX_DESCRIPTORS; budget++) {
      const desc = ring + this.index * CP_DESC_SIZE;
      if (!mem.contains(desc, CP_DESC_SIZE)) {
        res.ringError = true;
        break;
      }
      const opts1 = mem.readU32(desc);
      if ((opts1 & DescOwn) === 0) break;
      const opts2 = mem.readU32(desc + 4);
      const addr = mem.readU32(desc + 8) + mem.readU32(desc + 12) * 0x1_0000_0000;
      const len = opts1 & CpTxLenMask;
      if ((opts1 & FirstFrag) !== 0) {
        if (this.inFrame) res.errors++; // a chain that never saw LastFrag is abandoned
        this.dropPartial();
        this.inFrame = true;
        this.first = opts1;
        this.firstOpts2 = opts2;
      } else if (!this.inFrame) {
        this.inFrame = true;
        this.broken = true; // continuation without a first fragment
      }
      if (!this.broken) {
        if (this.bytes + len > CP_MAX_TX_FRAME || !mem.contains(addr, len)) this.broken = true;
        else if (len > 0) {
          // A view: the chain is usually complete in this call and copied once, in emit().
          this.parts.push(mem.view(addr, len));
          this.bytes += len;
        }
      }
      const last = (opts1 & LastFrag) !== 0;
      // The chip writes status over the command bits (LargeSend, MSS, IPCS/UDPCS/TCPCS), where
      // the driver reads TxColCnt and the error bits: clear them, or every TSO frame would come
      // back with "collisions" (and an MSS with bit 9 set, like 536, with TxFIFOUnder).
      let status = (opts1 & ~(DescOwn | TxStatusBits)) >>> 0;
      if (last) {
        if (this.broken || this.bytes === 0) {
          status |= TxError;
          res.errors++;
        } else {
          res.frames += this.emit(opts);
        }
        this.dropPartial();
      }
      mem.writeU32(desc, status >>> 0);
      this.index = (opts1 & RingEnd) !== 0 || this.index + 1 >= CP_MAX_DESCRIPTORS ? 0 : this.index + 1;
    }
    // A chain still open when the walk stops waits for its next TxPoll: the driver owns those
    // buffers again (OWN is clear), so keep copies, not views of them.
    if (this.parts.length > 0) this.parts = this.parts.map((p) => p.slice());
    return res;
  }

  private emit(opts: CplusTxOptions): number {
    const frame = new Uint8Array(this.bytes);
    let o = 0;
    for (const p of this.parts) {
      frame.set(p, o);
      o += p.length;
    }
    const f = this.first;
    let out: Uint8Array[] = [frame];
    const tagged = (this.firstOpts2 & TxVlanTag) !== 0;
    if ((f & LargeSend) !== 0) {
      const mss = (f >>> MSSShift) & MSSMask;
      // Tagged frames are always cut here: the tag goes into each segment below.
      if (opts.sendSegmented !== undefined && !tagged) {
        const whole = prepareSegmentation(frame, mss);
        if (whole !== undefined && opts.sendSegmented(whole.frame, whole.tso)) return whole.tso.segments;
      }
      out = segmentTcp(frame, mss) ?? [frame];
    } else if ((f & (IPCS | TCPCS | UDPCS)) !== 0) {
      insertChecksums(frame, (f & IPCS) !== 0, (f & TCPCS) !== 0, (f & UDPCS) !== 0);
    }
    if (tagged) {
      // 8139cp stores the tag byte-swapped (swab16) in the low half of opts2.
      const tci = swab16(this.firstOpts2 & 0xffff);
      out = out.map((s) => insertVlanTag(s, tci));
    }
    for (const s of out) opts.send(s);
    return out.length;
  }
}

export type CplusRxResult = 'ok' | 'no-descriptor' | 'too-long' | 'dma-error';

export class CplusRxRing {
  index = 0;

  reset(): void {
    this.index = 0;
  }

  /**
   * Store one received frame (padded) and its FCS in the next RX descriptor.
   * `filterBits` are the normal-mode RxBroadcast/RxPhysical/RxMulticast bits of the filter;
   * `checksumsValid`: the backend vouched for the frame's checksums (no need to sum it).
   */
  receive(mem: DmaMemory, ring: number, frame: Uint8Array, filterBits: number,
    vlanStrip: boolean, checksum: boolean, checksumsValid = false): CplusRxResult {
    const desc = ring + this.index * CP_DESC_SIZE;
    if (!mem.contains(desc, CP_DESC_SIZE)) return 'dma-error';
    const opts1 = mem.readU32(desc);
    if ((opts1 & DescOwn) === 0) return 'no-descriptor';
    let data = frame;
    let opts2 = 0;
    if (vlanStrip) {
      const s = stripVlanTag(frame);
      if (s !== undefined) {
        data = s[0];
        opts2 = RxVlanTagged | swab16(s[1]);
      }
    }
    const length = data.length + 4; // the FCS goes with the frame, as the wire had it
    const bufSize = opts1 & CpRxLenMask;
    // 8139cp does not reassemble frames spread over descriptors: one frame, one buffer.
    if (length > bufSize) return 'too-long';
    const addr = mem.readU32(desc + 8) + mem.readU32(desc + 12) * 0x1_0000_0000;
    const eor = opts1 & RingEnd;
    if (!mem.contains(addr, length)) {
      mem.writeU32(desc + 4, 0);
      mem.writeU32(desc, (eor | FirstFrag | LastFrag | RxError | RxErrFIFO | length) >>> 0);
      this.advance(eor);
      return 'dma-error';
    }
    mem.write(addr, data);
    // The FCS of the frame as the wire carried it, tag included.
    mem.write(addr + data.length, fcsOf(frame));
    let status = eor | FirstFrag | LastFrag | length;
    if (filterBits & RxBroadcast) status |= RxBcast;
    if (filterBits & RxPhysical) status |= RxPhysMatch;
    if (filterBits & RxMulticast) status |= RxMcast;
    if (checksum) status |= rxChecksumStatus(data, checksumsValid);
    mem.writeU32(desc + 4, opts2 >>> 0);
    // opts1 last: clearing OWN hands the descriptor back to the driver.
    mem.writeU32(desc, status >>> 0);
    this.advance(eor);
    return 'ok';
  }

  private advance(eor: number): void {
    this.index = eor !== 0 || this.index + 1 >= CP_MAX_DESCRIPTORS ? 0 : this.index + 1;
  }
}
