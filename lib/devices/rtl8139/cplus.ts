// C+ mode descriptor rings (8139cp): 16-byte descriptors {opts1, opts2, addr lo, addr hi} in
// guest RAM, OWN set while the chip owns one, EOR closing the ring. Every descriptor and buffer
// address is checked against guest RAM before use; a bad one completes the descriptor with an
// error bit (or stops the ring if the descriptor itself is unreachable), never throws.
import type { DmaMemory } from '../../bus/device.js';
import type { TcpSegmentation } from '../../net/backend.js';
import { prepareSegmentation, TcpSegmenter } from '../../net/tcp-segmentation.js';
import type { WorkBudget } from '../work-budget.js';
import { insertChecksums, insertVlanTag, rxChecksumStatus, stripVlanTag } from './offload.js';
import { fcsOf } from './rx.js';
import {
  CP_DESC_SIZE, CpRxLenMask, CpTxLenMask, DescOwn, FirstFrag, IPCS, LargeSend, LastFrag,
  MSSMask, MSSShift, RingEnd, RxBcast, RxBroadcast, RxError, RxErrFIFO, RxMcast, RxMulticast,
  RxPhysical, RxPhysMatch, RxVlanTagged, TCPCS, TxError, TxStatusBits, TxVlanTag, UDPCS,
} from './regs.js';

/** Descriptors a ring may hold (datasheet maximum); also bounds the descriptors walked per turn. */
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
  /** Of errors, LargeSend descriptors refused for an MSS below CP_MIN_MSS. */
  badMss: number;
  /** A descriptor address outside guest RAM stopped the ring. */
  ringError: boolean;
  /** The turn's WorkBudget ran out before the ring did: poll again on a later turn. */
  more: boolean;
}

export interface CplusTxOptions {
  send(frame: Uint8Array): void;
  /**
   * Optional: take a LargeSend frame whole (NetBackend.sendSegmented); false makes the ring
   * segment it and send() each segment, as it does when this is absent.
   */
  sendSegmented?(frame: Uint8Array, tso: TcpSegmentation): boolean;
}

/**
 * The smallest LargeSend MSS the chip segments with; a descriptor asking for less completes
 * with TxError and is counted (Rtl8139Stats.txBadMss), nothing is sent.
 *
 * The datasheet gives MSS only as an 11-bit field "the driver passes", with no minimum and no
 * status bit of its own, and 8139cp copies gso_size into it unchanged. Linux's TCP never makes
 * a GSO packet with gso_size below TCP_MIN_GSO_SIZE = 8 (TCP_MIN_SND_MSS 48 minus 40 bytes of
 * options), so no real driver asks for less. Refused rather than clamped: clamping would put
 * segments larger than the MSS the guest chose (and its peer may have advertised) on the wire
 * without anyone knowing, while TxError shows up in the guest's tx_errors and on our counter.
 * At MSS 8 a 64 KiB LargeSend makes ~8,200 segments; at MSS 1 it would make 65,000 tiny frames,
 * a 55-fold amplification no TCP asks for.
 */
export const CP_MIN_MSS = 8;

/** Segments cut between two checks of the turn's budget (its clock in particular). */
const SEGMENT_BATCH = 32;

/** A LargeSend frame part-way through its segments when the budget ran out. */
interface Emitting {
  seg: TcpSegmenter;
  /** Guest address of the chain's last descriptor, and the opts1 it gets once all is sent. */
  desc: number;
  status: number;
  /** Ring index after that descriptor. */
  nextIndex: number;
}

/** CplusTxRing.saveState(). */
export interface CplusTxRingState {
  index: number; parts: number[][]; bytes: number; first: number; firstOpts2: number; inFrame: boolean; broken: boolean;
  /** A LargeSend frame being cut into segments (whole frame, MSS, next segment). */
  emitting?: { frame: number[]; mss: number; next: number; desc: number; status: number; nextIndex: number };
}

export class CplusTxRing {
  index = 0;
  private parts: Uint8Array[] = [];
  private bytes = 0;
  private first = 0;
  private firstOpts2 = 0;
  private inFrame = false;
  private broken = false;
  private emitting: Emitting | undefined;

  reset(): void {
    this.index = 0;
    this.dropPartial();
    this.emitting = undefined;
  }

  /** Whether a LargeSend frame is part-way through its segments. */
  get busy(): boolean {
    return this.emitting !== undefined;
  }

  /** Ring position and a frame assembled from descriptors so far (its parts as byte arrays). */
  saveState(): CplusTxRingState {
    const e = this.emitting;
    return {
      index: this.index, parts: this.parts.map((p) => Array.from(p)), bytes: this.bytes, first: this.first,
      firstOpts2: this.firstOpts2, inFrame: this.inFrame, broken: this.broken,
      ...(e !== undefined ? { emitting: { frame: Array.from(e.seg.frame), mss: e.seg.mss, next: e.seg.next, desc: e.desc, status: e.status, nextIndex: e.nextIndex } } : {}),
    };
  }

  loadState(s: CplusTxRingState): void {
    this.index = s.index; this.parts = s.parts.map((p) => Uint8Array.from(p)); this.bytes = s.bytes; this.first = s.first;
    this.firstOpts2 = s.firstOpts2; this.inFrame = s.inFrame; this.broken = s.broken;
    this.emitting = undefined;
    const e = s.emitting;
    if (e === undefined) return;
    const seg = TcpSegmenter.of(Uint8Array.from(e.frame), e.mss);
    const index = (v: number): boolean => Number.isInteger(v) && v >= 0 && v < CP_MAX_DESCRIPTORS;
    if (seg === undefined || !Number.isInteger(e.next) || e.next < 0 || e.next > seg.total || !index(e.nextIndex) ||
      !Number.isSafeInteger(e.desc) || e.desc < 0) return;
    seg.next = e.next;
    this.emitting = { seg, desc: e.desc, status: e.status >>> 0, nextIndex: e.nextIndex };
  }

  private dropPartial(): void {
    this.parts = [];
    this.bytes = 0;
    this.inFrame = false;
    this.broken = false;
  }

  /**
   * Process owned descriptors from `ring` until one is not ours, CP_MAX_DESCRIPTORS were walked
   * or `budget` ran out (then `more` is set and the next call goes on where this one stopped,
   * in the middle of a LargeSend frame's segments if need be).
   */
  poll(mem: DmaMemory, ring: number, opts: CplusTxOptions, budget: WorkBudget): CplusTxResult {
    const res: CplusTxResult = { frames: 0, errors: 0, badMss: 0, ringError: false, more: false };
    if (this.emitting !== undefined && !this.continueEmit(mem, opts, budget, res)) {
      res.more = true;
      return res;
    }
    let walked = 0;
    for (; walked < CP_MAX_DESCRIPTORS; walked++) {
      if (budget.exhausted) {
        res.more = true;
        break;
      }
      const desc = ring + this.index * CP_DESC_SIZE;
      if (!mem.contains(desc, CP_DESC_SIZE)) {
        res.ringError = true;
        break;
      }
      const opts1 = mem.readU32(desc);
      if ((opts1 & DescOwn) === 0) break;
      // Every descriptor counts, so that a ring of ones that send nothing (refused, broken
      // chains) is walked a turn's worth at a time like one that sends.
      budget.spend(1, CP_DESC_SIZE);
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
      const nextIndex = (opts1 & RingEnd) !== 0 || this.index + 1 >= CP_MAX_DESCRIPTORS ? 0 : this.index + 1;
      if (last) {
        const f = this.first;
        if (this.broken || this.bytes === 0) {
          status |= TxError;
          res.errors++;
        } else if ((f & LargeSend) !== 0 && ((f >>> MSSShift) & MSSMask) < CP_MIN_MSS) {
          status |= TxError;
          res.errors++;
          res.badMss++;
        } else if (!this.emit(mem, opts, budget, res, desc, status >>> 0, nextIndex)) {
          // Cut part-way: the descriptor completes (and the ring moves on) on a later turn.
          this.dropPartial();
          res.more = true;
          return res;
        }
        this.dropPartial();
      }
      mem.writeU32(desc, status >>> 0);
      this.index = nextIndex;
    }
    if (walked === CP_MAX_DESCRIPTORS) res.more = true; // a whole ring in one turn: look again
    // A chain still open when the walk stops waits for its next TxPoll: the driver owns those
    // buffers again (OWN is clear), so keep copies, not views of them.
    if (this.parts.length > 0) this.parts = this.parts.map((p) => p.slice());
    return res;
  }

  /**
   * Send the assembled frame. False when it is a LargeSend frame whose segments did not all
   * fit in the budget: the rest is kept in `emitting`, and its last descriptor stays the chip's.
   */
  private emit(mem: DmaMemory, opts: CplusTxOptions, budget: WorkBudget, res: CplusTxResult, desc: number, status: number, nextIndex: number): boolean {
    let frame: Uint8Array = new Uint8Array(this.bytes);
    let o = 0;
    for (const p of this.parts) {
      frame.set(p, o);
      o += p.length;
    }
    const f = this.first;
    // 8139cp stores the tag byte-swapped (swab16) in the low half of opts2. The tag goes in
    // first, so that a LargeSend frame is cut (or handed on whole) with it, as on the wire.
    if ((this.firstOpts2 & TxVlanTag) !== 0) frame = insertVlanTag(frame, swab16(this.firstOpts2 & 0xffff));
    if ((f & LargeSend) !== 0) {
      const mss = (f >>> MSSShift) & MSSMask;
      if (opts.sendSegmented !== undefined) {
        const whole = prepareSegmentation(frame, mss);
        // Whole only if its segments fit in a turn: whoever takes it may cut it on this thread
        // at once (a capture recording the wire, the host kernel forwarding it). A tiny MSS
        // (up to ~8,200 segments) is cut here instead, a turn's budget at a time.
        if (whole !== undefined && whole.tso.segments <= budget.limits.segments && opts.sendSegmented(whole.frame, whole.tso)) {
          budget.spend(whole.tso.segments, whole.frame.length);
          res.frames += whole.tso.segments;
          return true;
        }
      }
      const seg = TcpSegmenter.of(frame, mss);
      if (seg !== undefined) {
        this.emitting = { seg, desc, status, nextIndex };
        return this.continueEmit(mem, opts, budget, res);
      }
      // Not TCP/IPv4: the chip sends it as it is.
    } else if ((f & (IPCS | TCPCS | UDPCS)) !== 0) {
      insertChecksums(frame, (f & IPCS) !== 0, (f & TCPCS) !== 0, (f & UDPCS) !== 0);
    }
    opts.send(frame);
    budget.spend(1, frame.length);
    res.frames++;
    return true;
  }

  /** Cut and send what the budget allows of `emitting`; true once it is all sent. */
  private continueEmit(mem: DmaMemory, opts: CplusTxOptions, budget: WorkBudget, res: CplusTxResult): boolean {
    const e = this.emitting!;
    const each = e.seg.headerLength + e.seg.mss;
    while (!e.seg.done) {
      const k = Math.min(budget.fits(each), SEGMENT_BATCH);
      if (k === 0) return false;
      const bytes = e.seg.bytesOf(k);
      for (const s of e.seg.cut(k)) opts.send(s);
      budget.spend(k, bytes);
      res.frames += k;
    }
    this.emitting = undefined;
    if (mem.contains(e.desc, 4)) mem.writeU32(e.desc, e.status);
    this.index = e.nextIndex;
    return true;
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

  /** Who owns each descriptor up to the one with EOR: N the NIC, D the driver, ? unreachable. */
  owners(mem: DmaMemory, ring: number): string {
    let out = '';
    for (let i = 0; i < CP_MAX_DESCRIPTORS; i++) {
      const desc = ring + i * CP_DESC_SIZE;
      if (!mem.contains(desc, CP_DESC_SIZE)) return `${out}?`;
      const opts1 = mem.readU32(desc);
      out += (opts1 & DescOwn) !== 0 ? 'N' : 'D';
      if ((opts1 & RingEnd) !== 0) break;
    }
    return out;
  }

  private advance(eor: number): void {
    this.index = eor !== 0 || this.index + 1 >= CP_MAX_DESCRIPTORS ? 0 : this.index + 1;
  }
}
