// RTL8139 in both revisions: 8139too-style normal mode (RX ring buffer, four TX descriptors)
// and 8139cp-style C+ mode (descriptor rings, offloads), driven by random register accesses,
// driver-like sequences, random DMA contents, hostile rings (addresses at RAM edges, outside
// RAM, overlapping each other), frames arriving from the backend (also from inside a transmit),
// ring-size changes, link flaps, timers, resets and snapshot round trips.
//
// Invariants after every operation: no DMA outside guest RAM; INTx up exactly while
// (ISR & IMR) != 0 and the command register does not disable INTx; the backend's contract kept
// (frame sizes, LargeSend descriptions, pause/resume pairing); at most one timer armed.
import { RecordingIrqLine } from '../../../lib/bus/irq.js';
import { PCI_COMMAND, PCI_COMMAND_INTX_DISABLE, PCI_STATUS, PCI_STATUS_INTERRUPT } from '../../../lib/devices/pci/config-space.js';
import { Rtl8139, regs as R } from '../../../lib/devices/rtl8139/index.js';
import type { Rtl8139State } from '../../../lib/devices/rtl8139/rtl8139.js';
import { FuzzBackend } from '../backend.js';
import { boundedWorkOptions, FakeClock, FakeTimers } from '../clock.js';
import { CheckedMemory } from '../dma.js';
import { ipFrame, wireFrame, destination } from '../frames.js';
import { checkReadValue, type FuzzInstance, type FuzzTarget } from '../harness.js';
import type { Rng } from '../rng.js';

/** Guest RAM: two regions with a hole between them, small enough that rings and buffers collide. */
const RAM = [{ guestPhysAddr: 0, size: 0x20000 }, { guestPhysAddr: 0x30000, size: 0x10000 }] as const;
const RAM_EDGES = [0x20000, 0x40000];
/** Where the driver-like sequences put things (C+ rings, buffers). */
const TX_RING = 0x12000;
const HI_TX_RING = 0x13000;
const RX_RING = 0x14000;
const BUFS = [0x15000, 0x18000, 0x1c000, 0x30000, 0x38000];
const BIG_BUF = 0x30000;

/** Weighted operations (weights differ per revision: each chip mostly runs its own driver's mode). */
type OpName =
  | 'writeAny' | 'readAny' | 'writeReg' | 'normalTx' | 'consumeRx' | 'inject' | 'cpTx' | 'cpRx' | 'txPoll' | 'dmaNoise'
  | 'link' | 'time' | 'powerOn' | 'snapshot' | 'init' | 'backend' | 'config';

const WEIGHTS: Record<'normal' | 'cplus', Record<OpName, number>> = {
  normal: {
    writeAny: 8, readAny: 10, writeReg: 14, normalTx: 12, consumeRx: 8, inject: 16, cpTx: 2, cpRx: 1, txPoll: 1, dmaNoise: 4,
    link: 0.5, time: 3, powerOn: 0.2, snapshot: 0.3, init: 1.5, backend: 0.3, config: 1.5,
  },
  cplus: {
    writeAny: 8, readAny: 10, writeReg: 12, normalTx: 2, consumeRx: 1, inject: 16, cpTx: 12, cpRx: 8, txPoll: 8, dmaNoise: 4,
    link: 0.5, time: 3, powerOn: 0.2, snapshot: 0.3, init: 1.5, backend: 0.3, config: 1.5,
  },
};

class Rtl8139Fuzz implements FuzzInstance {
  op = 'none';
  untimed = false;
  private readonly mem = new CheckedMemory(RAM);
  private readonly clock = new FakeClock();
  private readonly timers = new FakeTimers(this.clock);
  /** Turns the NIC deferred (bounded work per exit); run one between two operations. */
  private readonly deferred = new FakeTimers(this.clock);
  private readonly irq = new RecordingIrqLine();
  private readonly nic: Rtl8139;
  private backend: FuzzBackend;
  private readonly names: OpName[];
  private readonly weights: number[];
  private readonly total: number;
  private irqRaised = 0;
  /** Most frames the NIC put on the wire in one operation (LargeSend cuts many). */
  private maxFramesPerOp = 0;
  private framesBefore = 0;
  private lastLevel = false;
  private oldBackends = { sent: 0, segmented: 0 };
  /** Where the driver writes its next TX descriptor in the normal and high rings (8139cp's tx_head). */
  private readonly txHead = new Map<number, number>([[TX_RING, 0], [HI_TX_RING, 0]]);
  /** Descriptors in the RX ring the driver set up (8139cp: 64). */
  private rxRingSize = 64;

  constructor(private readonly rng: Rng, private readonly mode: 'normal' | 'cplus') {
    this.nic = new Rtl8139({
      mem: this.mem, clock: this.clock, timers: this.timers, revision: mode === 'normal' ? 0x10 : 0x20,
      rxQueueLimit: rng.pick([1, 4, 64]), ...boundedWorkOptions(this.deferred),
    });
    this.nic.attach({ map: () => {}, unmap: () => {} }, this.irq);
    this.backend = new FuzzBackend(rng);
    this.nic.attachBackend(this.backend);
    const w = WEIGHTS[mode];
    this.names = Object.keys(w) as OpName[];
    this.weights = this.names.map((n) => w[n]);
    this.total = this.weights.reduce((a, b) => a + b, 0);
    // RAM starts random: rings the guest never wrote hold garbage, as they would.
    for (const r of RAM) this.mem.inner.write(r.guestPhysAddr, rng.junk(r.size));
    this.driverInit();
  }

  // ------------------------------------------------------------------ generators

  /** A DMA address: usually a sensible one, often a hostile one. */
  private addr(align = 4): number {
    const r = this.rng;
    const k = r.int(100);
    if (k < 45) {
      const reg = r.pick(RAM);
      return (reg.guestPhysAddr + r.int(reg.size)) & ~(align - 1);
    }
    if (k < 65) return r.pick([TX_RING, HI_TX_RING, RX_RING, ...BUFS, 0]);
    if (k < 80) return Math.max(0, r.pick(RAM_EDGES) - r.int(2048)) & ~(align - 1);
    if (k < 88) return 0x20000 + r.int(0x10000); // the hole
    if (k < 94) return r.u32() & ~(align - 1);
    return r.pick([0xffff_fff0, 0xffff_f000, 0x1_0000 - 16, 0x40000, 0x3ffff]);
  }

  private reg(offset: number, size: number, value: number): void {
    this.nic.mmioBar.write(offset, size, value);
  }

  /** What 8139too or 8139cp does at open (the revision's own driver, sometimes the other's). */
  private driverInit(): void {
    const r = this.rng;
    const cplus = this.mode === 'cplus' ? r.chance(0.85) : r.chance(0.15);
    this.reg(R.ChipCmd, 1, R.CmdReset);
    this.reg(R.Cfg9346, 1, R.Cfg9346_Unlock);
    if (cplus) {
      this.reg(R.CpCmd, 2, R.PCIMulRW | (r.chance(0.7) ? R.RxChkSum : 0) | (r.chance(0.3) ? R.RxVlanOn : 0) | R.CpRxOn | R.CpTxOn);
      this.reg(R.RxRingAddr, 4, RX_RING);
      this.reg(R.RxRingAddr + 4, 4, 0);
      this.reg(R.TxRingAddr, 4, TX_RING);
      this.reg(R.TxRingAddr + 4, 4, 0);
      this.reg(R.HiTxRingAddr, 4, HI_TX_RING);
      this.reg(R.HiTxRingAddr + 4, 4, 0);
      // Fresh rings: TX descriptors all the driver's, RX descriptors all the NIC's.
      for (const ring of [TX_RING, HI_TX_RING]) {
        this.mem.inner.fill(ring, 64 * 16, 0);
        this.txHead.set(ring, 0);
      }
      this.rxRingSize = r.chance(0.8) ? 64 : r.range(1, 64);
      this.writeRxDescriptors(0, this.rxRingSize, true);
    } else {
      this.reg(R.RxBuf, 4, r.chance(0.8) ? r.pick([0, 0x1000]) : this.addr());
      for (let i = 0; i < 4; i++) this.reg(R.TxAddr0 + 4 * i, 4, BUFS[i]!);
    }
    this.reg(R.ChipCmd, 1, R.CmdRxEnb | R.CmdTxEnb);
    this.reg(R.RxConfig, 4, this.rxConfig());
    this.reg(R.TxConfig, 4, r.chance(0.1) ? R.TxLoopBack : 0x0300_0700);
    this.reg(R.Cfg9346, 1, R.Cfg9346_Lock);
    this.reg(R.IntrMask, 2, r.chance(0.9) ? 0xffff : r.u16());
  }

  private rxConfig(): number {
    const r = this.rng;
    if (r.chance(0.1)) return r.u32();
    const accept = r.chance(0.8) ? R.AcceptBroadcast | R.AcceptMyPhys | R.AcceptMulticast : r.int(0x40);
    return accept | (r.int(4) << R.RxCfgLenShift) | (r.chance(0.5) ? R.RxCfgWrap : 0) | (r.int(8) << 13);
  }

  /** Descriptors `count` from index `first` of the C+ RX ring, owned by the NIC. */
  private writeRxDescriptors(first: number, count: number, endAtLast: boolean): void {
    const r = this.rng;
    for (let i = 0; i < count; i++) {
      const idx = first + i;
      const d = RX_RING + 16 * idx;
      if (!this.mem.contains(d, 16)) break;
      const size = r.chance(0.8) ? r.pick([1536, 2048, 0x1fff]) : r.int(0x2000);
      const eor = (endAtLast && i === count - 1) || r.chance(0.02) ? R.RingEnd : 0;
      const buf = r.chance(0.8) ? r.pick(BUFS) + 0x800 * r.int(4) : this.addr();
      this.mem.inner.writeU32(d + 4, 0);
      this.mem.inner.writeU32(d + 8, buf);
      this.mem.inner.writeU32(d + 12, r.chance(0.95) ? 0 : r.u32());
      this.mem.inner.writeU32(d, ((r.chance(0.95) ? R.DescOwn : 0) | eor | size | (r.chance(0.05) ? r.u32() & 0x0fff_e000 : 0)) >>> 0);
    }
  }

  /** A chain of C+ TX descriptors carrying one frame (LargeSend, checksums, VLAN at random). */
  private writeTxChain(ringBase: number): void {
    const r = this.rng;
    const dst = destination(r, this.nic.mac);
    // Now and then the worst a driver can ask for: a 60 KB TCP frame cut at an MSS of 1-8.
    const extreme = r.chance(0.03);
    const big = extreme || r.chance(0.2);
    const frame = extreme || r.chance(0.7) ? ipFrame(r, dst, big ? r.range(extreme ? 50_000 : 0, 60_000) : r.int(1500)) : r.junk(r.int(2000));
    const pieces = extreme ? 1 : r.range(1, 6);
    let first = r.chance(0.8) ? this.txHead.get(ringBase)! : r.int(64);
    let at = 0;
    // Small frames go piecewise into the buffers; large ones (TSO) contiguously into the
    // second RAM region, the only place 60 KB fit.
    const contiguous = frame.length > 0x3000;
    let bufAt = contiguous ? BIG_BUF : r.pick(BUFS);
    let flags = 0;
    if (extreme) {
      flags |= R.LargeSend | (r.range(1, 8) << R.MSSShift);
    } else if (r.chance(0.4)) {
      // LargeSend: the MSS field is 11 bits. Tiny MSS values cut one frame into thousands of
      // segments: the NIC refuses MSS < CP_MIN_MSS and spreads the rest over turns.
      const mss = r.chance(0.7) ? r.range(536, 1460) : r.chance(0.5) ? r.int(0x800) : r.int(64);
      flags |= R.LargeSend | (mss << R.MSSShift);
    } else if (r.chance(0.5)) {
      flags |= (r.chance(0.7) ? R.IPCS : 0) | (r.chance(0.5) ? R.TCPCS : 0) | (r.chance(0.3) ? R.UDPCS : 0);
    }
    const opts2 = r.chance(0.2) ? (R.TxVlanTag | r.u16()) >>> 0 : 0;
    for (let p = 0; p < pieces; p++) {
      const len = p === pieces - 1 ? frame.length - at : Math.min(frame.length - at, r.int(Math.ceil(frame.length / pieces) + 1));
      const hostile = r.chance(0.05);
      const buf = hostile ? this.addr() : bufAt;
      if (!hostile && this.mem.contains(buf, len)) this.mem.inner.write(buf, frame.subarray(at, at + len));
      bufAt = contiguous ? bufAt + len : BUFS[(BUFS.indexOf(bufAt) + 1) % BUFS.length]!;
      let o1 = R.DescOwn | flags | (r.chance(0.97) ? len : r.u16());
      if (p === 0 && r.chance(0.97)) o1 |= R.FirstFrag;
      if (p === pieces - 1 && r.chance(0.97)) o1 |= R.LastFrag;
      if (first === 63 || r.chance(0.01)) o1 |= R.RingEnd;
      const d = ringBase + 16 * first;
      if (this.mem.contains(d, 16)) {
        this.mem.inner.writeU32(d + 4, opts2);
        this.mem.inner.writeU32(d + 8, buf >>> 0);
        this.mem.inner.writeU32(d + 12, r.chance(0.97) ? 0 : r.u32());
        this.mem.inner.writeU32(d, o1 >>> 0);
      }
      at += len;
      first = (first + 1) % 64;
    }
    this.txHead.set(ringBase, first);
  }

  /** A register write a driver (or a confused one) would make, with values that mean something. */
  private writeReg(): void {
    const r = this.rng;
    const k = r.int(26);
    let off: number;
    let size: 1 | 2 | 4;
    let v: number;
    switch (k) {
      case 0: off = R.ChipCmd; size = 1; v = r.chance(0.8) ? R.CmdRxEnb | R.CmdTxEnb : r.chance(0.5) ? R.CmdReset : r.u8(); break;
      case 1: off = R.RxConfig; size = 4; v = this.rxConfig(); break; // ring-size changes mid-stream
      case 2: off = R.RxBuf; size = 4; v = this.addr(); break;
      case 3: off = R.RxBufPtr; size = 2; v = r.u16(); break;
      case 4: off = R.IntrMask; size = 2; v = r.chance(0.6) ? 0xffff : r.u16(); break;
      case 5: off = R.IntrStatus; size = 2; v = r.chance(0.6) ? 0xffff : r.u16(); break;
      case 6: off = R.TxConfig; size = 4; v = r.chance(0.3) ? R.TxLoopBack : r.chance(0.5) ? 0x0300_0700 : r.u32(); break;
      case 7: off = R.TimerInt; size = 4; v = r.chance(0.3) ? 0 : r.chance(0.7) ? r.int(100_000) : r.u32(); break;
      case 8: off = R.Timer; size = 4; v = r.u32(); break;
      case 9: off = R.Cfg9346; size = 1; v = r.pick([R.Cfg9346_Unlock, R.Cfg9346_Lock, R.Cfg9346_EEM_AUTOLOAD, R.Cfg9346_EEM_PROGRAM | r.int(16)]); break;
      case 10: off = r.pick([R.Config1, R.Config3, R.Config4, R.Config5, R.HltClk]); size = 1; v = r.u8(); break;
      case 11: off = R.BasicModeCtrl; size = 2; v = r.pick([R.BMCR_RESET, R.BMCR_ANENABLE | R.BMCR_ANRESTART, R.BMCR_SPEED100 | R.BMCR_FULLDPLX, r.u16()]); break;
      case 12: off = r.pick([R.NWayAdvert, R.CSCR, R.MultiIntr, R.RxMaxSize, R.IntrMitigate, R.TxThresh]); size = 2; v = r.u16(); break;
      case 13: off = R.MAR0 + 4 * r.int(2); size = 4; v = r.u32(); break;
      case 14: off = R.IDR0 + r.int(6); size = 1; v = r.u8(); break;
      case 15: off = R.CpCmd; size = 2; v = r.chance(0.7) ? r.int(0x80) & 0x7b : r.u16(); break;
      case 16: off = r.pick([R.TxRingAddr, R.HiTxRingAddr, R.RxRingAddr]); size = 4; v = r.chance(0.6) ? r.pick([TX_RING, HI_TX_RING, RX_RING]) : this.addr(16); break;
      case 17: off = r.pick([R.TxRingAddr + 4, R.HiTxRingAddr + 4, R.RxRingAddr + 4, R.StatsAddr + 4]); size = 4; v = r.chance(0.8) ? 0 : r.u32(); break;
      case 18: off = R.StatsAddr; size = 4; v = (this.addr(64) | (r.chance(0.8) ? R.DumpStats : 0)) >>> 0; break;
      case 19: off = R.TxPoll; size = 1; v = r.pick([R.NormalTxPoll, R.HighTxPoll, R.ForceSWInt, r.u8()]); break;
      case 20: off = R.RxMissed; size = 4; v = r.u32(); break;
      case 21: off = R.TxStatus0 + 4 * r.int(4); size = 4; v = r.u32(); break;
      case 22: off = R.TxAddr0 + 4 * r.int(4); size = 4; v = this.addr(); break;
      default: off = r.int(0x100); size = r.size(); if (off + size > 0x100) off = 0x100 - size; v = r.value(size); break;
    }
    this.op = `writeReg(0x${off.toString(16)}, ${size}, 0x${v.toString(16)})`;
    this.reg(off, size, v);
  }

  // ------------------------------------------------------------------ operations

  step(): void {
    const r = this.rng;
    // One turn of the event loop between two guest actions: work the NIC deferred runs now.
    this.deferred.runDue();
    const name = this.names[r.weighted(this.weights, this.total)]!;
    this.untimed = name === 'snapshot';
    const nic = this.nic;
    switch (name) {
      case 'writeAny': {
        const size = r.size();
        const off = r.int(0x100 - size + 1);
        const v = r.value(size);
        this.op = `write(0x${off.toString(16)}, ${size}, 0x${v.toString(16)})`;
        (r.chance(0.5) ? nic.ioBar : nic.mmioBar).write(off, size, v);
        return;
      }
      case 'readAny': {
        const size = r.size();
        const off = r.chance(0.3) ? r.pick([R.IntrStatus, R.ChipCmd, R.RxBufAddr, R.TxSummary, R.MediaStatus, R.Cfg9346, R.BasicModeStatus]) : r.int(0x100 - size + 1);
        this.op = `read(0x${off.toString(16)}, ${size})`;
        checkReadValue((r.chance(0.5) ? nic.ioBar : nic.mmioBar).read(off, size), size, this.op);
        return;
      }
      case 'writeReg':
        this.writeReg();
        return;
      case 'normalTx': {
        // 8139too's start_xmit: frame into the descriptor's buffer, then TSD = size (OWN clear).
        const n = r.int(4);
        const buf = r.chance(0.8) ? BUFS[n]! : this.addr();
        const len = r.chance(0.9) ? r.range(14, 1514) : r.int(0x2000);
        if (buf !== BUFS[n]) this.reg(R.TxAddr0 + 4 * n, 4, buf);
        if (r.chance(0.9) && this.mem.contains(buf, Math.min(len, 1800))) this.mem.inner.write(buf, r.bytes(Math.min(len, 64)));
        const tsd = len | (r.chance(0.5) ? r.int(64) << 16 : 0) | (r.chance(0.05) ? R.TxHostOwns : 0);
        this.op = `normal TX: TSAD${n}=0x${buf.toString(16)} TSD${n}=0x${tsd.toString(16)}`;
        this.reg(R.TxStatus0 + 4 * n, 4, tsd);
        checkReadValue(nic.mmioBar.read(R.TxStatus0 + 4 * n, 4), 4, this.op);
        return;
      }
      case 'consumeRx': {
        // 8139too's rx loop: walk packets from CAPR+16 to CBR, then CAPR = CBR - 16 (or part way).
        const cbr = nic.mmioBar.read(R.RxBufAddr, 2);
        const capr = r.chance(0.8) ? (cbr - 16) & 0xffff : r.u16();
        this.op = `consume RX: CBR 0x${cbr.toString(16)}, CAPR=0x${capr.toString(16)}`;
        this.reg(R.RxBufPtr, 2, capr);
        this.reg(R.IntrStatus, 2, R.RxOK | R.RxErr | R.RxOverflow | R.RxFIFOOver);
        return;
      }
      case 'inject': {
        const n = r.chance(0.95) ? 1 : r.range(2, 80); // bursts overflow rings and the hold-back queue
        const later = r.chance(0.2); // delivered from inside the NIC's next transmit
        this.op = `inject ${n} frame(s)${later ? ' (held for pollReceive)' : ''}`;
        for (let i = 0; i < n; i++) this.backend.inject(wireFrame(r, nic.mac), later);
        return;
      }
      case 'cpTx': {
        const hi = r.chance(0.2);
        this.op = `C+ TX chain in the ${hi ? 'high' : 'normal'} ring`;
        this.writeTxChain(hi ? HI_TX_RING : TX_RING);
        if (r.chance(0.5)) {
          this.reg(R.TxPoll, 1, hi ? R.HighTxPoll : R.NormalTxPoll);
        }
        return;
      }
      case 'cpRx': {
        // Mostly the driver's refill of the whole ring, sometimes a stray part of it.
        const whole = r.chance(0.7);
        const first = whole ? 0 : r.int(64);
        const count = whole ? this.rxRingSize : r.range(1, 64);
        this.op = `C+ RX descriptors ${first}..${first + count - 1}`;
        this.writeRxDescriptors(first, count, whole || r.chance(0.3));
        return;
      }
      case 'txPoll': {
        const v = r.chance(0.9) ? r.pick([R.NormalTxPoll, R.HighTxPoll, R.NormalTxPoll | R.HighTxPoll]) : r.u8();
        this.op = `TxPoll 0x${v.toString(16)}`;
        this.reg(R.TxPoll, 1, v);
        return;
      }
      case 'dmaNoise': {
        // Guest RAM changes under the NIC: random bytes over a ring or anywhere.
        const at = r.chance(0.5) ? r.pick([TX_RING, HI_TX_RING, RX_RING, 0]) + r.int(1024) : this.addr(1);
        const len = r.range(1, 256);
        this.op = `DMA noise at 0x${at.toString(16)} (${len} bytes)`;
        if (this.mem.contains(at, len)) this.mem.inner.write(at, r.junk(len));
        return;
      }
      case 'link': {
        const up = r.chance(0.6);
        this.op = `carrier ${up ? 'up' : 'down'}`;
        this.backend.setCarrier(up);
        return;
      }
      case 'time': {
        const ns = r.chance(0.9) ? r.int(5_000_000) : r.u32() * 10;
        this.op = `clock +${ns} ns, run due timers`;
        this.clock.advance(ns);
        this.timers.runDue();
        return;
      }
      case 'powerOn':
        this.op = 'reset() (power-on)';
        nic.reset();
        this.framesBefore = nic.stats.txFrames;
        return;
      case 'snapshot': {
        // Host-side (untimed): a partial TX chain of up to 64 KB is saved as a number array.
        this.op = 'saveState/loadState round trip';
        const s = JSON.stringify(nic.saveState());
        nic.loadState(JSON.parse(s) as Rtl8139State);
        const again = JSON.stringify(nic.saveState());
        if (again !== s) throw new Error('state changed by a saveState/loadState round trip');
        return;
      }
      case 'init':
        this.op = 'driver open sequence';
        this.driverInit();
        return;
      case 'backend': {
        this.op = 'backend replaced';
        this.oldBackends.sent += this.backend.sent;
        this.oldBackends.segmented += this.backend.segmented;
        this.checkBackend();
        this.backend.close();
        this.backend = new FuzzBackend(r);
        nic.attachBackend(this.backend);
        return;
      }
      case 'config': {
        const size = r.size();
        const off = r.chance(0.7) ? PCI_COMMAND : r.int(0x40) & ~(size - 1);
        const v = off === PCI_COMMAND ? 0x7 | (r.chance(0.3) ? PCI_COMMAND_INTX_DISABLE : 0) : r.value(size);
        this.op = `config write(0x${off.toString(16)}, ${size}, 0x${v.toString(16)})`;
        nic.writeConfig(off, size, v);
        checkReadValue(nic.readConfig(off, size), size, this.op);
        return;
      }
    }
  }

  private checkBackend(): void {
    const p = this.backend.problems;
    if (p.length > 0) throw new Error(`backend contract: ${p.splice(0).slice(0, 3).join('; ')}`);
  }

  check(): void {
    const frames = this.nic.stats.txFrames;
    this.maxFramesPerOp = Math.max(this.maxFramesPerOp, frames - this.framesBefore);
    this.framesBefore = frames;
    this.mem.assertClean();
    this.checkBackend();
    const nic = this.nic;
    // What a driver's interrupt handler reads; IMR first (the read polls the timer, which may
    // set TimeOut in ISR).
    const imr = nic.mmioBar.read(R.IntrMask, 2);
    const isr = nic.mmioBar.read(R.IntrStatus, 2);
    const cmd = nic.readConfig(PCI_COMMAND, 2);
    const pending = (isr & imr) !== 0;
    const want = pending && (cmd & PCI_COMMAND_INTX_DISABLE) === 0;
    if (this.irq.level !== want) {
      throw new Error(`INTx ${this.irq.level ? 'up' : 'down'} with ISR 0x${isr.toString(16)} IMR 0x${imr.toString(16)} command 0x${cmd.toString(16)}`);
    }
    if (((nic.readConfig(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT) !== 0) !== pending) {
      throw new Error(`PCI status interrupt bit disagrees with ISR 0x${isr.toString(16)} & IMR 0x${imr.toString(16)}`);
    }
    if (want && !this.lastLevel) this.irqRaised++;
    this.lastLevel = want;
    if (this.timers.live > 1) throw new Error(`${this.timers.live} timers armed (the NIC has one)`);
    // At most a transmit turn and a receive turn wait: deferred work must not pile up.
    if (this.deferred.live > 2) throw new Error(`${this.deferred.live} deferred turns pending`);
  }

  stats(): Record<string, number> {
    const s = this.nic.stats;
    return {
      txFrames: s.txFrames, rxFrames: s.rxFrames, rxMissed: s.rxMissed, txErrors: s.txErrors, rxDmaErrors: s.rxDmaErrors,
      sent: this.oldBackends.sent + this.backend.sent, segmented: this.oldBackends.segmented + this.backend.segmented,
      irqEdges: this.irqRaised, maxFramesPerOp: this.maxFramesPerOp, dmaMiB: Math.round((this.mem.bytesRead + this.mem.bytesWritten) / 1048576),
    };
  }

  close(): void {
    this.nic.close();
    this.backend.close();
  }
}

export const rtl8139NormalTarget: FuzzTarget = { name: 'rtl8139-8139too', file: 'rtl8139-normal', create: (rng) => new Rtl8139Fuzz(rng, 'normal') };
export const rtl8139CplusTarget: FuzzTarget = { name: 'rtl8139-8139cp', file: 'rtl8139-cplus', create: (rng) => new Rtl8139Fuzz(rng, 'cplus') };
