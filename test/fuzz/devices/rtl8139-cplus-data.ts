// RTL8139C+ descriptor rings, end to end, against a model of 8139cp: frames cut into chains
// of TX descriptors (VLAN tags inserted by the chip) must reach the wire byte for byte and in
// order, with every descriptor handed back clean; frames from the wire must land in the RX
// descriptors in ring order, with length, FCS and a stripped VLAN tag reported as 8139cp reads
// them, or be accounted for (too short, longer than the buffers, dropped by a full hold-back
// queue, lost in a ring the driver reset). The driver re-opens the chip with another ring size
// and buffer size now and then.
import { RecordingIrqLine } from '../../../lib/bus/irq.js';
import { crc32 } from '../../../lib/net/checksum.js';
import { BackendBase } from '../../../lib/net/backend.js';
import { Rtl8139, regs as R } from '../../../lib/devices/rtl8139/index.js';
import { boundedWorkOptions, FakeClock, FakeTimers } from '../clock.js';
import { CheckedMemory } from '../dma.js';
import type { FuzzInstance, FuzzTarget } from '../harness.js';
import type { Rng } from '../rng.js';

const RAM = [{ guestPhysAddr: 0, size: 0x100000 }] as const;
const TX_RING = 0x1000;
const RX_RING = 0x2000;
const TX_BUFS = 0x4000; // 64 KiB of TX buffers
const RX_BUFS = 0x20000; // up to 64 RX buffers of up to 8 KiB
const TX_RING_SIZE = 64; // 8139cp's CP_TX_RING_SIZE
const ETH_ZLEN = 60;

const swab16 = (v: number): number => ((v & 0xff) << 8) | ((v >>> 8) & 0xff);

class Recorder extends BackendBase {
  readonly frames: Uint8Array[] = [];
  send(frame: Uint8Array): void {
    this.frames.push(frame.slice());
  }
  inject(frame: Uint8Array): void {
    this.deliver(frame);
  }
}

class CplusDataFuzz implements FuzzInstance {
  op = 'none';
  private readonly mem = new CheckedMemory(RAM);
  private readonly clock = new FakeClock();
  private readonly timers = new FakeTimers(this.clock);
  /** Turns the NIC deferred (bounded work per exit). */
  private readonly deferred = new FakeTimers(this.clock);
  private readonly irq = new RecordingIrqLine();
  private readonly backend = new Recorder();
  private readonly nic: Rtl8139;
  private txHead = 0;
  private rxTail = 0;
  private rxRingSize = 64;
  private rxBufSize = 1536;
  private vlanStrip = false;
  /** Frames the RX ring must yield, oldest first (padded, as the wire carried them). */
  private rxExpected: Uint8Array[] = [];
  private txFrames = 0;
  private rxFrames = 0;
  private lostToReset = 0;

  constructor(private readonly rng: Rng) {
    this.nic = new Rtl8139({ mem: this.mem, clock: this.clock, timers: this.timers, revision: 0x20, rxQueueLimit: rng.pick([1, 8, 64]), ...boundedWorkOptions(this.deferred) });
    this.nic.attach({ map: () => {}, unmap: () => {} }, this.irq);
    this.nic.attachBackend(this.backend);
    this.open();
  }

  private w(off: number, size: number, v: number): void {
    this.nic.mmioBar.write(off, size, v);
  }

  /** cp_open/cp_init_hw: reset, rings, C+ mode (VLAN strip or not), RX/TX on, RxConfig. */
  private open(): void {
    const r = this.rng;
    this.lostToReset += this.rxExpected.length;
    this.rxExpected = [];
    this.rxRingSize = r.chance(0.5) ? 64 : r.range(1, 64);
    this.rxBufSize = r.pick([1536, 1536, 2048, 0x1fff, r.range(64, 1600)]);
    this.vlanStrip = r.chance(0.5);
    this.w(R.ChipCmd, 1, R.CmdReset);
    this.mem.inner.fill(TX_RING, 16 * TX_RING_SIZE, 0);
    this.mem.inner.writeU32(TX_RING + 16 * (TX_RING_SIZE - 1), R.RingEnd);
    for (let i = 0; i < this.rxRingSize; i++) this.armRx(i);
    this.w(R.CpCmd, 2, R.PCIMulRW | R.CpRxOn | R.CpTxOn | (this.vlanStrip ? R.RxVlanOn : 0));
    this.w(R.RxRingAddr, 4, RX_RING);
    this.w(R.RxRingAddr + 4, 4, 0);
    this.w(R.TxRingAddr, 4, TX_RING);
    this.w(R.TxRingAddr + 4, 4, 0);
    this.w(R.ChipCmd, 1, R.CmdRxEnb | R.CmdTxEnb);
    this.w(R.RxConfig, 4, R.AcceptAllPhys | R.AcceptBroadcast | R.AcceptMulticast | R.AcceptMyPhys);
    this.w(R.IntrMask, 2, 0xffff);
    this.txHead = 0;
    this.rxTail = 0;
  }

  private armRx(i: number): void {
    const d = RX_RING + 16 * i;
    this.mem.inner.writeU32(d + 4, 0);
    this.mem.inner.writeU32(d + 8, RX_BUFS + 0x2000 * i);
    this.mem.inner.writeU32(d + 12, 0);
    this.mem.inner.writeU32(d, (R.DescOwn | (i === this.rxRingSize - 1 ? R.RingEnd : 0) | this.rxBufSize) >>> 0);
  }

  /** cp_start_xmit: one frame over 1-4 descriptors, TxPoll, then check what reached the wire. */
  private transmit(): void {
    const r = this.rng;
    const frame = r.junk(r.range(14, 1514));
    const tag = r.chance(0.3) ? r.u16() : undefined;
    const pieces = Math.min(r.range(1, 4), TX_RING_SIZE);
    const cuts = [0];
    for (let p = 1; p < pieces; p++) cuts.push(r.int(frame.length + 1));
    cuts.push(frame.length);
    cuts.sort((a, z) => a - z);
    let buf = TX_BUFS;
    const descs: number[] = [];
    for (let p = 0; p < pieces; p++) {
      const part = frame.subarray(cuts[p]!, cuts[p + 1]!);
      this.mem.inner.write(buf, part);
      const i = this.txHead;
      const d = TX_RING + 16 * i;
      const o1 = R.DescOwn | (i === TX_RING_SIZE - 1 ? R.RingEnd : 0) | (p === 0 ? R.FirstFrag : 0) | (p === pieces - 1 ? R.LastFrag : 0) | part.length;
      this.mem.inner.writeU32(d + 4, tag === undefined ? 0 : (R.TxVlanTag | swab16(tag)) >>> 0);
      this.mem.inner.writeU32(d + 8, buf);
      this.mem.inner.writeU32(d + 12, 0);
      this.mem.inner.writeU32(d, o1 >>> 0);
      descs.push(d);
      buf += part.length;
      this.txHead = (this.txHead + 1) % TX_RING_SIZE;
    }
    const sent = this.backend.frames.length;
    this.w(R.TxPoll, 1, R.NormalTxPoll);
    this.deferred.drain();
    const out = this.backend.frames.splice(sent);
    let want = frame;
    if (tag !== undefined) {
      want = new Uint8Array(frame.length + 4);
      want.set(frame.subarray(0, 12));
      want.set([0x81, 0x00, tag >>> 8, tag & 0xff], 12);
      want.set(frame.subarray(12), 16);
    }
    if (out.length !== 1) throw new Error(`TxPoll over a ${pieces}-descriptor frame put ${out.length} frames on the wire`);
    if (!sameBytes(out[0]!, want)) throw new Error(`the wire got ${out[0]!.length} bytes, the descriptors held ${want.length}${tag !== undefined ? ' (tagged)' : ''}: contents differ`);
    for (const d of descs) {
      const o1 = this.mem.inner.readU32(d);
      if ((o1 & R.DescOwn) !== 0 || (o1 & R.TxError) !== 0) throw new Error(`TX descriptor at 0x${d.toString(16)} came back as 0x${o1.toString(16)}`);
    }
    this.txFrames++;
  }

  private deliver(): void {
    const r = this.rng;
    const len = r.chance(0.03) ? r.int(14) : r.chance(0.1) ? r.range(1500, 9000) : r.range(14, 1514);
    const frame = r.junk(len);
    if (len >= 18 && r.chance(0.3)) frame.set([0x81, 0x00], 12);
    const missed = this.nic.stats.rxMissed;
    this.backend.inject(frame);
    if (this.nic.stats.rxMissed > missed) return; // a full hold-back queue drops the new frame
    if (len < 14) return;
    const padded = len >= ETH_ZLEN ? frame : pad(frame);
    const stripped = this.vlanStrip && padded.length >= 18 && padded[12] === 0x81 && padded[13] === 0x00;
    // One frame, one buffer: longer than the buffer (with its FCS) and the chip drops it.
    if ((stripped ? padded.length - 4 : padded.length) + 4 > this.rxBufSize) return;
    this.rxExpected.push(padded);
  }

  /** cp_rx_poll: take completed descriptors in ring order, check each, hand it back. */
  private receive(max: number): void {
    this.deferred.drain(); // receive work the NIC deferred is done by the time the driver looks
    for (let n = 0; n < max; n++) {
      const d = RX_RING + 16 * this.rxTail;
      const o1 = this.mem.inner.readU32(d);
      if ((o1 & R.DescOwn) !== 0) return;
      const padded = this.rxExpected.shift();
      if (padded === undefined) throw new Error(`RX descriptor ${this.rxTail} completed (0x${o1.toString(16)}) with no frame sent`);
      const tagged = this.vlanStrip && padded.length >= 18 && padded[12] === 0x81 && padded[13] === 0x00;
      let data = padded;
      if (tagged) {
        data = new Uint8Array(padded.length - 4);
        data.set(padded.subarray(0, 12));
        data.set(padded.subarray(16), 12);
      }
      const opts2 = this.mem.inner.readU32(d + 4);
      const len = o1 & 0x1fff;
      if ((o1 & (R.FirstFrag | R.LastFrag)) !== (R.FirstFrag | R.LastFrag) >>> 0 || (o1 & R.RxError) !== 0) throw new Error(`RX descriptor ${this.rxTail}: status 0x${o1.toString(16)}`);
      if (len !== data.length + 4) throw new Error(`RX descriptor ${this.rxTail}: length ${len}, sent ${data.length} + 4 FCS`);
      const got = this.mem.inner.read(RX_BUFS + 0x2000 * this.rxTail, len);
      if (!sameBytes(got.subarray(0, data.length), data)) throw new Error(`RX descriptor ${this.rxTail}: frame contents differ`);
      const fcs = crc32(padded); // the FCS of the frame as the wire carried it, tag included
      if (got[data.length] !== (fcs & 0xff) || got[data.length + 3] !== fcs >>> 24) throw new Error(`RX descriptor ${this.rxTail}: FCS`);
      const wantOpts2 = tagged ? (R.RxVlanTagged | swab16((padded[14]! << 8) | padded[15]!)) >>> 0 : 0;
      if (opts2 !== wantOpts2) throw new Error(`RX descriptor ${this.rxTail}: opts2 0x${opts2.toString(16)}, expected 0x${wantOpts2.toString(16)}`);
      this.armRx(this.rxTail);
      this.rxTail = (this.rxTail + 1) % this.rxRingSize;
      this.rxFrames++;
    }
  }

  step(): void {
    const r = this.rng;
    const k = r.int(100);
    if (k < 25) {
      this.op = 'transmit a frame';
      this.transmit();
    } else if (k < 65) {
      const burst = r.chance(0.9) ? 1 : r.range(2, 80);
      this.op = `${burst} frame(s) from the wire`;
      for (let i = 0; i < burst; i++) this.deliver();
    } else if (k < 97) {
      const max = r.chance(0.5) ? 1e9 : r.range(1, 4);
      this.op = `driver polls up to ${max} RX descriptor(s)`;
      this.receive(max);
      // 8139cp acknowledges and refills; the write is what lets held-back frames in.
      this.w(R.IntrStatus, 2, 0xffff);
    } else {
      this.op = 'driver re-opens the chip (ring size, buffer size, VLAN strip)';
      this.open();
    }
  }

  check(): void {
    this.mem.assertClean();
    const s = this.nic.stats;
    if (s.rxDmaErrors !== 0 || s.txErrors !== 0) throw new Error(`errors: rxDma ${s.rxDmaErrors}, tx ${s.txErrors}`);
    const isr = this.nic.interruptStatus;
    const imr = this.nic.mmioBar.read(R.IntrMask, 2);
    if (this.irq.level !== ((isr & imr) !== 0)) throw new Error(`INTx ${this.irq.level} with ISR 0x${isr.toString(16)} IMR 0x${imr.toString(16)}`);
  }

  stats(): Record<string, number> {
    const s = this.nic.stats;
    return { txFrames: this.txFrames, rxFrames: this.rxFrames, missed: s.rxMissed, tooLong: s.rxTooLong, short: s.rxFiltered, lostToReset: this.lostToReset };
  }

  close(): void {
    this.nic.close();
    this.backend.close();
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** The frame padded with zeros to the 60 bytes the wire carries at least. */
function pad(frame: Uint8Array): Uint8Array {
  const out = new Uint8Array(ETH_ZLEN);
  out.set(frame);
  return out;
}

export const rtl8139CplusDataTarget: FuzzTarget = { name: 'rtl8139-cplus-rings', file: 'rtl8139-cplus-data', create: (rng) => new CplusDataFuzz(rng) };
