// The RTL8139's transmit side: normal-mode descriptors (TSD/TSAD) sent as soon as the driver
// hands one over, and the C+ engine a TxPoll write starts on the high- and normal-priority
// rings. Frames go to the backend, or back into the receiver with TxLoopBack; ISR bits and
// counters report how each went.
import type { TcpSegmentation } from '../../net/backend.js';
import { TurnBudget, type DeferWork, type WorkLimits } from '../work-budget.js';
import { cplusMode, reg64, type Chip } from './chip.js';
import { CplusTxRing, type CplusTxOptions } from './cplus.js';
import * as R from './regs.js';
import { TxDescriptors, type TxSink } from './tx.js';

export class Transmitter implements TxSink, CplusTxOptions {
  /** Normal mode: TSD0-3 and their buffers at TSAD0-3. */
  readonly descriptors = new TxDescriptors();
  /** C+ mode: the rings at TxRingAddr (normal priority) and HiTxRingAddr (high priority). */
  readonly ring = new CplusTxRing();
  readonly hiRing = new CplusTxRing();
  /**
   * C+ transmit as the chip does it: a TxPoll write starts the engine, which works through the
   * queues it was told about while the CPU runs. Here one turn of the event loop does what its
   * WorkBudget allows and defers the rest; `pollBits` holds the HPQ/NPQ bits still being served
   * (TxPoll reads them back until their queue is empty, as the RTL8169 family documents), and
   * `cancel` the deferred turn.
   */
  private pollBits = 0;
  private cancel: (() => void) | undefined;
  private readonly budget: TurnBudget;
  private closed = false;

  constructor(private readonly chip: Chip, private readonly defer: DeferWork, limits: WorkLimits | undefined,
    private readonly loopback: (frame: Uint8Array) => void) {
    this.budget = new TurnBudget(limits);
  }

  /** ChipCmd.RST: every descriptor the host's again, the rings at their start, no transmit going on. */
  reset(): void {
    this.descriptors.reset();
    this.stop();
    this.ring.reset();
    this.hiRing.reset();
  }

  /** TxPoll's HPQ/NPQ bits of the queues still being transmitted. */
  get polling(): number {
    return this.pollBits;
  }

  /** C+ transmit is on: CpCmd.CpTxOn and ChipCmd.TE. */
  private get enabled(): boolean {
    return (this.chip.dv.getUint16(R.CpCmd, true) & R.CpTxOn) !== 0 && (this.chip.regs[R.ChipCmd]! & R.CmdTxEnb) !== 0;
  }

  /** TxConfig's loopback mode: what is sent comes back in, nothing reaches the wire. */
  private get looped(): boolean {
    return (this.chip.dv.getUint32(R.TxConfig, true) & R.TxLoopBack) === R.TxLoopBack;
  }

  /** One frame to the wire (TxSink); false when there is no carrier. */
  transmit(frame: Uint8Array): boolean {
    if (this.looped) {
      this.loopback(frame);
      return true;
    }
    const { stats } = this.chip;
    const backend = this.chip.backend();
    if (!this.chip.phy.linkUp || backend === undefined) {
      stats.txNoCarrier++;
      return false;
    }
    stats.txFrames++;
    stats.txBytes += frame.length;
    backend.send(frame);
    return true;
  }

  /** A C+ ring's frame (CplusTxOptions). */
  send(frame: Uint8Array): void {
    this.transmit(frame);
  }

  /**
   * A LargeSend frame handed to the backend whole (NetBackend.sendSegmented), counted as the
   * segments it makes on the wire. False (the ring then cuts it) when the backend cannot, or
   * the frame loops back or meets no carrier: transmit() handles and counts those per segment.
   */
  sendSegmented(frame: Uint8Array, tso: TcpSegmentation): boolean {
    const b = this.chip.backend();
    if (b?.sendSegmented === undefined || !this.chip.phy.linkUp) return false;
    if (this.looped) return false;
    if (!b.sendSegmented(frame, tso)) return false;
    this.chip.stats.txFrames += tso.segments;
    this.chip.stats.txBytes += frame.length + (tso.segments - 1) * tso.headerLength;
    return true;
  }

  /**
   * After a burst of transmits, take in what the backend already holds: a host stack answers
   * inside the send (ACKs, and the data they release), and seeing it now spares the guest an
   * entry, a kick and another exit before it does. Measured in the lab: see bench/net.ts.
   */
  private pollBackend(): void {
    this.chip.backend()?.pollReceive?.();
  }

  /** Normal mode: send the descriptors handed over (a TSD write, or the transmitter enabled). */
  runNormal(): void {
    const { dv, stats } = this.chip;
    if ((this.chip.regs[R.ChipCmd]! & R.CmdTxEnb) === 0 || cplusMode(dv)) return;
    let sent = 0;
    for (const n of this.descriptors.takePending()) {
      sent++;
      const outcome = this.descriptors.send(n, dv.getUint32(R.TxAddr0 + 4 * n, true), this.chip.mem, this, undefined);
      if (outcome === 'sent' || outcome === 'no-carrier') this.chip.raise(R.TxOK);
      else {
        stats.txErrors++;
        if (outcome === 'bad-size') stats.txBadSize++;
        else stats.txDmaErrors++;
        this.chip.raise(R.TxErr);
      }
    }
    if (sent > 0) this.pollBackend();
  }

  /**
   * TxPoll: serve the queues in `bits` (HPQ before NPQ). With a turn already deferred the
   * engine is busy and picks the new descriptors up there: a burst of TxPoll writes (a rep
   * outsb, say) starts one turn's work, not one per write.
   */
  poll(bits: number): void {
    if (bits === 0 || !this.enabled) return;
    this.pollBits |= bits;
    if (this.cancel === undefined) this.turn();
  }

  /** One turn of the C+ engine: what the budget allows, the rest deferred. */
  private turn(fresh = false): void {
    this.budget.begin(fresh);
    let frames = 0;
    for (const [bit, ring, reg] of [[R.HighTxPoll, this.hiRing, R.HiTxRingAddr], [R.NormalTxPoll, this.ring, R.TxRingAddr]] as const) {
      if ((this.pollBits & bit) === 0) continue;
      if (this.budget.exhausted) break;
      const more = this.runRing(ring, reg);
      frames += more.frames;
      if (!more.more) this.pollBits &= ~bit;
    }
    if (this.pollBits !== 0 && !this.closed) {
      this.chip.stats.txDeferred++;
      this.cancel = this.defer(() => {
        this.cancel = undefined;
        if (!this.enabled) this.pollBits = 0;
        else this.turn(true);
      });
    }
    this.budget.leave();
    if (frames > 0) this.pollBackend();
  }

  private runRing(ring: CplusTxRing, reg: number): { frames: number; more: boolean } {
    const { mem, stats } = this.chip;
    const base = reg64(this.chip.dv, reg);
    if (base === 0) return { frames: 0, more: false };
    const r = ring.poll(mem, base, this, this.budget);
    let bits = 0;
    if (r.frames > 0) bits |= R.TxOK;
    if (r.errors > 0 || r.ringError) {
      stats.txErrors += r.errors + (r.ringError ? 1 : 0);
      stats.txBadMss += r.badMss;
      if (r.ringError) stats.txDmaErrors++;
      bits |= R.TxErr;
    }
    if (bits !== 0) this.chip.raise(bits);
    return { frames: r.frames, more: r.more && !r.ringError };
  }

  /**
   * A C+ ring got a new base (`bit` its TxPoll bit): it starts again at its first descriptor,
   * and its poll is forgotten (with the deferred turn if nothing else is polled).
   */
  ringMoved(bit: number): void {
    this.pollBits &= ~bit;
    if (this.pollBits === 0) this.stop();
    (bit === R.HighTxPoll ? this.hiRing : this.ring).reset();
  }

  /** Transmitter off, reset or closed: forget the polls and any deferred turn. */
  stop(): void {
    this.pollBits = 0;
    this.cancel?.();
    this.cancel = undefined;
  }

  /** After a restore: queues that were part-way through (TxPoll bits) go on, on a later turn. */
  resume(bits: number): void {
    this.stop();
    const polling = bits & (R.HighTxPoll | R.NormalTxPoll);
    if (polling === 0 || this.closed) return;
    this.pollBits = polling;
    this.cancel = this.defer(() => {
      this.cancel = undefined;
      this.turn(true);
    });
  }

  close(): void {
    this.closed = true;
    this.stop();
  }
}
