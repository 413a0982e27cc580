// The RTL8139's receive side: a frame from the wire passes the RxConfig address filter and goes
// into the normal-mode ring buffer or the next C+ descriptor, and ISR bits and counters say how
// it went. Frames the ring has no room for yet wait in the RxQueue in front of it; frames lost
// for good count in RxMissed (MPC).
import { RX_CHECKSUMS_VALID } from '../../net/receive-offload.js';
import { TurnBudget, type DeferWork, type WorkLimits } from '../work-budget.js';
import { reg64, type Chip } from './chip.js';
import { CplusRxRing } from './cplus.js';
import * as R from './regs.js';
import { filterFrame, padFrame, RX_MAX_FRAME, RxRing } from './rx.js';
import { RxQueue, type RxOffer } from './rx-queue.js';

export type RxOutcome = 'ok' | 'full' | 'filtered' | 'disabled' | 'dropped';

export class Receiver implements RxOffer {
  /** Normal mode: the ring buffer at RBSTART (RxBuf). */
  readonly ring = new RxRing();
  /** C+ mode: the descriptor ring at RxRingAddr. */
  readonly cplusRing = new CplusRxRing();
  /** Frames from the backend waiting for room in the ring. */
  readonly queue: RxQueue;
  /** RxMissed (MPC): frames dropped for want of room, 24 bits. */
  missed = 0;
  /**
   * Receive is bounded per turn as transmit is: frames beyond the budget wait in the RX queue
   * (which pauses the backend) for a deferred flush, however many a TAP batch or a held-back
   * backlog would deliver at once.
   */
  private readonly budget: TurnBudget;
  private cancel: (() => void) | undefined;
  private closed = false;

  constructor(private readonly chip: Chip, private readonly defer: DeferWork, limits: WorkLimits | undefined, queueLimit: number) {
    this.budget = new TurnBudget(limits);
    this.queue = new RxQueue(this, queueLimit);
  }

  /** ChipCmd.RST: both rings start over (MPC survives; only a power-on reset clears it). */
  reset(): void {
    this.ring.reset();
    this.cplusRing.reset();
  }

  /** Rtl8139.tryReceive(): 'full' leaves the frame to the caller, nothing counted missed. */
  tryReceive(frame: Uint8Array, flags = 0): RxOutcome {
    const { dv, stats } = this.chip;
    if ((this.chip.regs[R.ChipCmd]! & R.CmdRxEnb) === 0 || !this.chip.phy.linkUp) {
      stats.rxDisabled++;
      return 'disabled';
    }
    const rxConfig = dv.getUint32(R.RxConfig, true);
    const bits = frame.length < 14 ? -1 : filterFrame(frame, this.chip.regs, rxConfig);
    if (bits < 0) {
      stats.rxFiltered++;
      return 'filtered';
    }
    const cplusRx = (dv.getUint16(R.CpCmd, true) & R.CpRxOn) !== 0;
    if (!cplusRx && frame.length > RX_MAX_FRAME) {
      stats.rxTooLong++;
      return 'dropped';
    }
    this.budget.begin();
    try {
      if (this.budget.exhausted) {
        // This turn's share is used: the frame waits (the caller holds it back), a later turn
        // takes it. Not a full ring: no RxOverflow, nothing missed yet.
        this.deferTurn();
        return 'full';
      }
      this.budget.spend(1, frame.length);
      return this.store(frame, flags, bits, rxConfig, cplusRx);
    } finally {
      this.budget.leave();
    }
  }

  /** tryReceive's second half: the frame passed the filter and this turn has room for it. */
  private store(frame: Uint8Array, flags: number, bits: number, rxConfig: number, cplusRx: boolean): RxOutcome {
    const { dv, mem, stats } = this.chip;
    // Written to guest RAM straight from the backend's buffer, the FCS after it: no copy here.
    // The rings compute the FCS only once they have room: a frame held back for a full ring is
    // offered again at every register write until the driver refills it.
    const data = padFrame(frame);
    if (cplusRx) {
      const cmd = dv.getUint16(R.CpCmd, true);
      const r = this.cplusRing.receive(mem, reg64(dv, R.RxRingAddr), data, bits, (cmd & R.RxVlanOn) !== 0, (cmd & R.RxChkSum) !== 0,
        (flags & RX_CHECKSUMS_VALID) !== 0);
      if (r === 'no-descriptor') {
        // RxEmpty (RxOverflow's bit in C+ mode): no free descriptor, the driver's cue to refill.
        // The frame is not lost yet (the caller may hold it back); countMissed() says when it is.
        this.chip.raise(R.RxOverflow);
        return 'full';
      }
      if (r === 'too-long') {
        stats.rxTooLong++;
        return 'dropped';
      }
      if (r === 'dma-error') {
        stats.rxDmaErrors++;
        this.chip.raise(R.RxErr);
        return 'dropped';
      }
    } else {
      let r: string;
      try {
        r = this.ring.store(mem, dv.getUint32(R.RxBuf, true), rxConfig, data, R.RxStatusOK | bits);
      } catch {
        r = 'dma-error';
      }
      // A full ring with a frame held back: the chip would drop it and raise RxOverflow, which
      // 8139too counts in rx_errors; ours is not lost yet (countMissed() raises RxOverflow when
      // one is). RxOK instead: 8139too's poll reads the ring only while ISR has an Rx bit, so
      // without one it would leave the unread frames there and wait for an interrupt.
      if (r === 'full') {
        this.chip.raise(R.RxOK);
        return 'full';
      }
      if (r === 'dma-error') {
        stats.rxDmaErrors++;
        this.chip.raise(R.RxErr);
        return 'dropped';
      }
    }
    stats.rxFrames++;
    stats.rxBytes += frame.length;
    if (bits & R.RxBroadcast) stats.rxBroadcast++;
    else if (bits & R.RxMulticast) stats.rxMulticast++;
    else stats.rxPhysical++;
    this.chip.raise(R.RxOK);
    return 'ok';
  }

  /** The waiting frames get a turn of their own, on a later turn of the event loop. */
  private deferTurn(): void {
    if (this.cancel !== undefined || this.closed) return;
    this.chip.stats.rxDeferred++;
    this.cancel = this.defer(() => {
      this.cancel = undefined;
      this.budget.begin(true);
      this.queue.flush();
      this.budget.leave();
    });
  }

  /** Rtl8139.receive(): a frame the ring has no room for is missed. */
  receive(frame: Uint8Array): boolean {
    const r = this.tryReceive(frame);
    if (r === 'full') this.countMissed();
    return r === 'ok';
  }

  /**
   * A frame the ring could not take is dropped: MPC counts it and ISR says so (RxOverflow and
   * RxFIFOOver; in C+ mode the same bits are RxEmpty and RxFIFOOvr).
   */
  countMissed(): void {
    this.missed = (this.missed + 1) & 0xffffff;
    this.chip.stats.rxMissed++;
    this.chip.raise(R.RxOverflow | R.RxFIFOOver);
  }

  /** A frame waits in the queue (RxOffer). */
  countQueued(): void {
    this.chip.stats.rxQueued++;
  }

  /** The queue asks the backend to stop delivering, or to go on (RxOffer). */
  backpressure(pause: boolean): void {
    const backend = this.chip.backend();
    if (!pause) {
      backend?.resumeReceive?.();
      return;
    }
    this.chip.stats.rxPauses++;
    backend?.pauseReceive?.();
  }

  /** Closed: no deferred turn runs, none is started. */
  close(): void {
    this.closed = true;
    this.cancel?.();
    this.cancel = undefined;
  }
}
