// RTL8139 normal-mode receive, end to end: frames of every length arrive from the backend
// while a model of 8139too's receive loop consumes the ring (some of it, all of it, or nothing
// for a while), and the driver re-opens the chip with another ring size or WRAP setting now and
// then. Every frame must come out of the ring intact, in order, with its header and FCS, or be
// accounted for: too short or too long for the chip, dropped by a full hold-back queue (MPC),
// or lost in a ring the driver reset. Nothing else may go missing or change.
import { RecordingIrqLine } from '../../../lib/bus/irq.js';
import { crc32 } from '../../../lib/net/checksum.js';
import { MemoryBackend } from '../../../lib/net/backend.js';
import { Rtl8139, regs as R } from '../../../lib/devices/rtl8139/index.js';
import { boundedWorkOptions, FakeClock, FakeTimers } from '../clock.js';
import { CheckedMemory } from '../dma.js';
import type { FuzzInstance, FuzzTarget } from '../harness.js';
import type { Rng } from '../rng.js';

const RAM = [{ guestPhysAddr: 0, size: 0x20000 }] as const;
const RX_MAX_FRAME = 1792; // 8139too's limit (datasheet: 1792 + CRC); longer frames are dropped
const ETH_ZLEN = 60;

class Rtl8139RxFuzz implements FuzzInstance {
  op = 'none';
  private readonly mem = new CheckedMemory(RAM);
  private readonly clock = new FakeClock();
  private readonly timers = new FakeTimers(this.clock);
  /** Turns the NIC deferred (bounded work per exit). */
  private readonly deferred = new FakeTimers(this.clock);
  private readonly irq = new RecordingIrqLine();
  private readonly backend = new MemoryBackend();
  private readonly nic: Rtl8139;
  /** Frames the chip took (stored or held back), oldest first: what the ring must yield. */
  private expected: Uint8Array[] = [];
  /** 8139too's cur_rx. */
  private curRx = 0;
  private rbstart = 0;
  private ringSize = 8192;
  private linear = false;
  private consumed = 0;
  private lostToReset = 0;

  constructor(private readonly rng: Rng) {
    this.nic = new Rtl8139({ mem: this.mem, clock: this.clock, timers: this.timers, revision: 0x10, rxQueueLimit: rng.pick([1, 8, 64]), ...boundedWorkOptions(this.deferred) });
    this.nic.attach({ map: () => {}, unmap: () => {} }, this.irq);
    this.nic.attachBackend(this.backend);
    this.open();
  }

  private w(off: number, size: number, v: number): void {
    this.nic.ioBar.write(off, size, v);
  }

  private r(off: number, size: number): number {
    return this.nic.ioBar.read(off, size);
  }

  /** rtl8139_open/hw_start: reset, ring address, RX on, RxConfig (ring size, WRAP), interrupts. */
  private open(): void {
    const r = this.rng;
    // Frames stored in the old ring and not yet read are gone with it. So are those the NIC
    // holds back for a full ring: 8139too enables RX before it writes RxConfig, so they meet an
    // RxConfig that accepts nothing and are dropped (counted as filtered).
    this.lostToReset += this.expected.length;
    this.expected = [];
    const len = r.int(4);
    this.ringSize = 8192 << len;
    this.linear = r.chance(0.5) && len < 3;
    this.rbstart = r.pick([0, 0x1000, 0x4]);
    this.w(R.ChipCmd, 1, R.CmdReset);
    this.w(R.RxBuf, 4, this.rbstart);
    this.w(R.ChipCmd, 1, R.CmdRxEnb | R.CmdTxEnb);
    this.w(R.RxConfig, 4, R.AcceptAllPhys | R.AcceptBroadcast | R.AcceptMulticast | R.AcceptMyPhys | (len << R.RxCfgLenShift) | (this.linear ? R.RxCfgWrap : 0));
    this.w(R.IntrMask, 2, R.RxOK | R.RxErr | R.RxOverflow | R.RxFIFOOver);
    this.curRx = 0;
    this.storedAtOpen = this.nic.stats.rxFrames;
    this.consumedAtOpen = 0;
  }

  private storedAtOpen = 0;
  private consumedAtOpen = 0;

  /** Frames in the ring the driver has not read yet (the NIC's count since open minus the driver's). */
  private storedUnread(): number {
    return this.nic.stats.rxFrames - this.storedAtOpen - this.consumedAtOpen;
  }

  private ringByte(off: number): number {
    const o = this.linear ? off : off % this.ringSize;
    return this.mem.inner.readU8(this.rbstart + o);
  }

  /** rtl8139_rx: read packets until the ring is empty (or `max` of them). */
  private consume(max: number): void {
    this.deferred.drain(); // receive work the NIC deferred is done by the time the driver looks
    for (let n = 0; n < max; n++) {
      const empty = (this.r(R.ChipCmd, 1) & R.RxBufEmpty) !== 0;
      const unread = this.storedUnread();
      if (empty !== (unread === 0)) throw new Error(`ChipCmd.BUFE ${empty} with ${unread} unread frame(s) in the ring`);
      if (empty) return;
      const at = this.curRx % this.ringSize;
      const status = this.ringByte(at) | (this.ringByte(at + 1) << 8);
      const len = this.ringByte(at + 2) | (this.ringByte(at + 3) << 8);
      const frame = this.expected.shift();
      if (frame === undefined) throw new Error(`a packet at ring offset 0x${at.toString(16)} that nobody sent (status 0x${status.toString(16)}, length ${len})`);
      let padded = frame;
      if (frame.length < ETH_ZLEN) {
        padded = new Uint8Array(ETH_ZLEN);
        padded.set(frame);
      }
      if ((status & R.RxStatusOK) === 0) throw new Error(`packet status 0x${status.toString(16)} at 0x${at.toString(16)} without ROK`);
      if (len !== padded.length + 4) throw new Error(`packet length ${len} at 0x${at.toString(16)}, sent ${frame.length} (${padded.length} padded) + 4 FCS`);
      for (let i = 0; i < padded.length; i++) {
        const b = this.ringByte(at + 4 + i);
        if (b !== padded[i]) throw new Error(`packet at 0x${at.toString(16)} byte ${i}: 0x${b.toString(16)}, sent 0x${padded[i]!.toString(16)} (ring ${this.ringSize}, ${this.linear ? 'WRAP' : 'wrapping'})`);
      }
      const fcs = crc32(padded);
      for (let i = 0; i < 4; i++) {
        if (this.ringByte(at + 4 + padded.length + i) !== ((fcs >>> (8 * i)) & 0xff)) throw new Error(`packet at 0x${at.toString(16)}: FCS byte ${i} wrong`);
      }
      this.curRx = (this.curRx + len + 4 + 3) & ~3;
      this.w(R.RxBufPtr, 2, (this.curRx - 16) & 0xffff);
      this.consumedAtOpen++;
      this.consumed++;
    }
  }

  step(): void {
    const r = this.rng;
    const k = r.int(100);
    if (k < 55) {
      const burst = r.chance(0.9) ? 1 : r.range(2, 40);
      this.op = `${burst} frame(s) from the wire`;
      for (let i = 0; i < burst; i++) this.deliver();
    } else if (k < 90) {
      const max = r.chance(0.5) ? 1e9 : r.range(1, 4);
      this.op = `driver reads up to ${max} packet(s)`;
      this.consume(max);
      this.w(R.IntrStatus, 2, 0xffff);
    } else if (k < 93) {
      this.op = 'driver re-opens the chip (ring size, WRAP)';
      this.open();
    } else {
      this.op = 'interrupt acknowledge';
      this.w(R.IntrStatus, 2, r.u16());
    }
  }

  private deliver(): void {
    const r = this.rng;
    const len = r.chance(0.05) ? r.int(14) : r.chance(0.05) ? r.range(RX_MAX_FRAME - 8, RX_MAX_FRAME + 8) : r.range(14, 1514);
    const frame = r.junk(len);
    const missed = this.nic.stats.rxMissed;
    this.backend.inject(frame);
    // A frame pushed onto a full hold-back queue is the one dropped (MPC counts it).
    if (this.nic.stats.rxMissed > missed) return;
    // Too short or too long for the chip: dropped now, or when the queue offers it to the ring.
    if (len < 14 || len > RX_MAX_FRAME) return;
    this.expected.push(frame);
  }

  check(): void {
    this.mem.assertClean();
    const s = this.nic.stats;
    if (s.rxDmaErrors !== 0) throw new Error(`${s.rxDmaErrors} RX DMA errors with the ring in RAM`);
    const unread = this.storedUnread();
    if (unread < 0 || unread > this.expected.length) throw new Error(`${unread} frames in the ring, ${this.expected.length} expected in all`);
    const isr = this.nic.interruptStatus;
    const imr = this.r(R.IntrMask, 2);
    if (this.irq.level !== ((isr & imr) !== 0)) throw new Error(`INTx ${this.irq.level} with ISR 0x${isr.toString(16)} IMR 0x${imr.toString(16)}`);
  }

  stats(): Record<string, number> {
    const s = this.nic.stats;
    return { consumed: this.consumed, stored: s.rxFrames, missed: s.rxMissed, tooLong: s.rxTooLong, short: s.rxFiltered, lostToReset: this.lostToReset };
  }

  close(): void {
    this.nic.close();
    this.backend.close();
  }
}

export const rtl8139RxTarget: FuzzTarget = { name: 'rtl8139-rx-ring', file: 'rtl8139-rx', create: (rng) => new Rtl8139RxFuzz(rng) };
