// Realtek RTL8139C / RTL8139C+ on PCI (10ec:8139): one 256-byte register file behind I/O BAR0
// and MMIO BAR1. Revision 0x10 is the plain 8139C Linux drives with 8139too (normal-mode RX
// ring, four TX descriptors); revision 0x20 is the C+ chip 8139cp drives (descriptor rings,
// checksum/TSO/VLAN offload). Both modes live in the same chip, as in the hardware.
//
// Everything the guest hands us (ring and buffer addresses, sizes, descriptor chains) is
// checked where it is read; errors become ISR bits and counters, never exceptions.
import type { BusDevice, Clock, DmaMemory } from '../../bus/device.js';
import type { NetBackend, TcpSegmentation } from '../../net/backend.js';
import { PciDevice, type PciDeviceState } from '../pci/device.js';
import { CplusRxRing, CplusTxRing, type CplusTxOptions, type CplusTxRingState } from './cplus.js';
import { Eeprom93C46, rtl8139EepromImage, type EepromState } from './eeprom.js';
import { Rtl8139Phy, type PhyState } from './mii.js';
import * as R from './regs.js';
import { filterFrame, padFrame, RX_MAX_FRAME, RxRing } from './rx.js';
import { TxDescriptors, type TxDescriptorsState } from './tx.js';
import { RxQueue } from './rx-queue.js';
import { RX_CHECKSUMS_VALID } from '../../net/receive-offload.js';
import { parseMac } from './mac.js';
import { tallyCounters, zeroStats, type Rtl8139Stats } from './stats.js';

export { parseMac } from './mac.js';
export type { Rtl8139Stats } from './stats.js';
import { REGISTER_SPAN, REGISTER_WIDTH } from './register-span.js';
import { deferImmediate, TurnBudget, type DeferWork, type WorkLimits } from '../work-budget.js';
import { Rtl8139Timer, type DeviceTimers, type TimerState } from './timer.js';

export type { DeviceTimers } from './timer.js';

export interface Rtl8139Options {
  mem: DmaMemory;
  clock: Clock;
  /** Station address; default 52:54:00:12:34:56. */
  mac?: Uint8Array | string;
  /** PCI revision: 0x10 (8139too) or 0x20 (8139cp, the default). */
  revision?: number;
  /** Schedules the TimerInt interrupt; default: unref'd setTimeout. */
  timers?: DeviceTimers;
  /** Frames a full RX ring holds back before counting them missed (attachBackend). Default 64. */
  rxQueueLimit?: number;
  /**
   * Runs the rest of a transmit, or of a receive flood, on a later turn of the event loop when
   * one turn's WorkBudget ran out (default: setImmediate). The machine's also makes the run
   * loop yield for it soon.
   */
  defer?: DeferWork;
  /** Work per turn (default DEFAULT_WORK_LIMITS); tests use small ones. */
  workLimits?: WorkLimits;
}

export type RxOutcome = 'ok' | 'full' | 'filtered' | 'disabled' | 'dropped';

const CONFIG_LOCKED = new Set([R.Config1, R.Config3, R.Config4]);
const CSCR_WRITABLE = 0xf3ff;
const CPCMD_WRITABLE = R.RxVlanOn | R.RxChkSum | R.PCIDAC | R.PCIMulRW | R.CpRxOn | R.CpTxOn;

/** Rtl8139.saveState(): the PCI function's state plus the chip's. */
export interface Rtl8139State extends PciDeviceState {
  regs: number[]; isr: number; missed: number; cscrLinkChange: boolean;
  rx: { writeOffset: number; readOffset: number }; tx: TxDescriptorsState;
  cpTx: CplusTxRingState; cpHiTx: CplusTxRingState; cpRxIndex: number;
  /** TxPoll's HPQ/NPQ bits of queues still being transmitted (absent: none). */
  txPolling?: number;
  eeprom: EepromState; phy: PhyState; timer: TimerState; stats: Rtl8139Stats;
}

/**
 * Registers whose writes need not exit (KVM queues them in its coalesced ring; a read of any
 * register exits and first applies every queued write, in order):
 * - IntrMask and IntrStatus (IMR, ISR): both Linux drivers write them in pairs with a read close
 *   behind (the acknowledge in the interrupt handler, the mask around NAPI polling, each mask
 *   write flushed by reading it back). That is 4 of the 9 exits each guest->host TSO frame cost
 *   with 8139cp. A queued acknowledge leaves INTx up until that read; at worst the guest takes
 *   one extra interrupt and finds nothing to do (both drivers check IntrStatus and return
 *   IRQ_NONE).
 * - CAPR (RxBufPtr): 8139too writes it once per received frame and then reads IntrStatus (its
 *   acknowledge) and ChipCmd (is the ring empty?) before it looks at the ring again, so the read
 *   sees the new CAPR and the room it makes. One exit less per received frame in normal mode.
 * - TSD0-3 (TxStatus0): 8139too starts each transmit with a write the driver flushes by reading
 *   the same TSD back (RTL_W32_F); that read applies the write, which transmits the frame, and
 *   reports OWN/TOK. One exit less per sent frame. A driver that never reads after a TSD write
 *   would see its frame go at the next exit, or at the run loop's next kick (DESIGN §4). In C+
 *   mode these bytes are StatsAddr, which 8139cp reads right after asking for a tally dump.
 */
const COALESCED_WRITES = [{ offset: R.TxStatus0, size: 16 }, { offset: R.RxBufPtr, size: 2 }, { offset: R.IntrMask, size: 4 }] as const;

export class Rtl8139 extends PciDevice {
  /** Register window for BAR0 (I/O) and BAR1 (MMIO): distinct objects over one register file. */
  readonly ioBar: BusDevice;
  readonly mmioBar: BusDevice;
  readonly eeprom: Eeprom93C46;
  readonly phy = new Rtl8139Phy();
  readonly stats: Rtl8139Stats = zeroStats();
  /** Byte-addressed storage for registers without their own model. */
  private readonly regs = new Uint8Array(R.REGS_SIZE);
  private readonly dv = new DataView(this.regs.buffer);
  private readonly mem: DmaMemory;
  private readonly rx = new RxRing();
  private readonly tx = new TxDescriptors();
  private readonly cpTx = new CplusTxRing();
  private readonly cpHiTx = new CplusTxRing();
  private readonly cpRx = new CplusRxRing();
  private readonly timer: Rtl8139Timer;
  private readonly hwVersion: number;
  private isr = 0;
  private missed = 0;
  private cscrLinkChange = false;
  private backend: NetBackend | undefined;
  private unsubscribe: Array<() => void> = [];
  private readonly queue: RxQueue;
  private readonly sink = { transmit: (f: Uint8Array): boolean => this.transmit(f) };
  /**
   * C+ transmit as the chip does it: a TxPoll write starts the engine, which works through the
   * queues it was told about while the CPU runs. Here one turn of the event loop does what its
   * WorkBudget allows and defers the rest; `txPolling` holds the HPQ/NPQ bits still being served
   * (TxPoll reads them back until their queue is empty, as the RTL8169 family documents), and
   * `cancelTx` the deferred turn.
   */
  private txPolling = 0;
  private cancelTx: (() => void) | undefined;
  private readonly txBudget: TurnBudget;
  /**
   * Receive is bounded per turn the same way: frames beyond the budget wait in the RX queue
   * (which pauses the backend) for a deferred flush, however many a TAP batch or a held-back
   * backlog would deliver at once.
   */
  private readonly rxBudget: TurnBudget;
  private cancelRx: (() => void) | undefined;
  private readonly defer: DeferWork;
  private closed = false;
  private readonly cplusSink: CplusTxOptions = {
    send: (f) => { this.transmit(f); },
    sendSegmented: (f, tso) => this.transmitSegmented(f, tso),
  };

  constructor(opts: Rtl8139Options) {
    const revision = opts.revision ?? 0x20;
    super({ vendorId: 0x10ec, deviceId: 0x8139, classCode: 0x020000, revision,
      subsystemVendorId: 0x10ec, subsystemId: 0x8139, interruptPin: 1 });
    this.mem = opts.mem;
    this.defer = opts.defer ?? deferImmediate;
    this.txBudget = new TurnBudget(opts.workLimits);
    this.rxBudget = new TurnBudget(opts.workLimits);
    this.hwVersion = revision >= 0x20 ? R.HWVER_RTL8139CP : R.HWVER_RTL8139C;
    this.queue = new RxQueue({ tryReceive: (f, flags) => this.tryReceive(f, flags), countMissed: () => this.countMissed(),
      countQueued: () => { this.stats.rxQueued++; },
      backpressure: (pause) => {
        if (!pause) {
          this.backend?.resumeReceive?.();
          return;
        }
        this.stats.rxPauses++;
        this.backend?.pauseReceive?.();
      } }, opts.rxQueueLimit ?? 64);
    const mac = parseMac(opts.mac ?? '52:54:00:12:34:56');
    this.eeprom = new Eeprom93C46(rtl8139EepromImage(mac, { vendorId: 0x10ec, deviceId: 0x8139, subsystemVendorId: 0x10ec, subsystemId: 0x8139 }));
    this.timer = new Rtl8139Timer(opts.clock, opts.timers, () => this.raise(R.PCSTimeout));
    this.ioBar = { read: (o, s) => this.readRegister(o, s), write: (o, s, v) => this.writeRegister(o, s, v) };
    this.mmioBar = { read: (o, s) => this.readRegister(o, s), write: (o, s, v) => this.writeRegister(o, s, v) };
    this.defineBar(0, { kind: 'io', size: 0x100, device: this.ioBar, coalescedWrites: COALESCED_WRITES });
    this.defineBar(1, { kind: 'mmio', size: 0x100, device: this.mmioBar, coalescedWrites: COALESCED_WRITES });
    this.reset();
  }

  /** Power-on reset: station address reloaded from the EEPROM, PHY and filters cleared. */
  reset(): void {
    this.regs.fill(0);
    this.loadMacFromEeprom();
    this.phy.reset();
    this.missed = 0;
    this.timer.reset();
    this.softReset();
  }

  /** ChipCmd.RST: what the datasheet resets (IDR/MAR and PCI config survive). */
  private softReset(): void {
    this.regs[R.ChipCmd] = 0;
    this.dv.setUint32(R.TxConfig, 0, true);
    this.dv.setUint32(R.RxConfig, 0, true);
    this.dv.setUint16(R.CpCmd, 0, true);
    this.dv.setUint16(R.IntrMask, 0, true);
    this.regs[R.Cfg9346] = 0;
    this.isr = 0;
    this.cscrLinkChange = false;
    this.rx.reset();
    this.tx.reset();
    this.stopCplusTx();
    this.cpTx.reset();
    this.cpHiTx.reset();
    this.cpRx.reset();
    this.updateIrq();
  }

  private loadMacFromEeprom(): void {
    for (let i = 0; i < 3; i++) {
      const w = this.eeprom.words[7 + i]!;
      this.regs[R.IDR0 + 2 * i] = w & 0xff;
      this.regs[R.IDR0 + 2 * i + 1] = w >>> 8;
    }
  }

  /** Current station address (IDR0-5). */
  get mac(): Uint8Array {
    return this.regs.slice(R.IDR0, R.IDR0 + 6);
  }

  get linkUp(): boolean {
    return this.phy.linkUp;
  }

  get interruptStatus(): number {
    return this.isr;
  }

  /** IntrMask (IMR) as the guest last wrote it. */
  get interruptMask(): number {
    return this.dv.getUint16(R.IntrMask, true);
  }

  /** Frames waiting in front of a full receive ring. */
  get rxWaiting(): number {
    return this.queue.length;
  }

  /**
   * For diagnosis: the C+ receive ring as guest RAM holds it, one letter per descriptor up to
   * the one with RingEnd (N: the NIC owns it, D: the driver does), and the NIC's next index.
   */
  cplusRxRing(): { index: number; owners: string } {
    return { index: this.cpRx.index, owners: this.cpRx.owners(this.mem, this.reg64(R.RxRingAddr)) };
  }

  /** RxMissed (MPC) as the guest would read it. */
  get missedPackets(): number {
    return this.missed & 0xffffff;
  }

  private get cpCmd(): number {
    return this.dv.getUint16(R.CpCmd, true);
  }

  private get rxConfig(): number {
    return this.dv.getUint32(R.RxConfig, true);
  }

  private get chipCmd(): number {
    return this.regs[R.ChipCmd]!;
  }

  private get unlocked(): boolean {
    return (this.regs[R.Cfg9346]! & R.Cfg9346_EEM_MASK) === R.Cfg9346_Unlock;
  }

  private reg64(o: number): number {
    return this.dv.getUint32(o, true) + this.dv.getUint32(o + 4, true) * 0x1_0000_0000;
  }

  // ---------------------------------------------------------------- interrupts

  private raise(bits: number): void {
    this.isr = (this.isr | bits) & R.IntrStatusBits;
    this.updateIrq();
  }

  private updateIrq(): void {
    this.setIrqLevel((this.isr & this.dv.getUint16(R.IntrMask, true)) !== 0);
  }

  // ---------------------------------------------------------------- register file

  readRegister(offset: number, size: number): number {
    this.timer.poll();
    // The interrupt handlers' reads, every interrupt: skip the byte-by-byte assembly.
    if (size === 2 && offset === R.IntrStatus) return this.isr;
    if (size === 2 && offset === R.IntrMask) return this.dv.getUint16(R.IntrMask, true);
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + this.readByte(offset + i, true);
    return v >>> 0;
  }

  /** One byte of the register file; `live` = a guest read (BMSR's latched link bit resets). */
  private readByte(o: number, live: boolean): number {
    if (o < 0 || o >= R.REGS_SIZE) return 0xff;
    const start = REGISTER_SPAN[o]!;
    const shift = 8 * (o - start);
    let reg: number;
    switch (start) {
      case R.TxStatus0: case R.TxStatus0 + 4: case R.TxStatus0 + 8: case R.TxStatus0 + 12:
        if (this.cplusMode) return this.regs[o]!;
        reg = this.tx.status[(start - R.TxStatus0) >>> 2]!;
        break;
      case R.ChipCmd:
        return (this.chipCmd & (R.CmdRxEnb | R.CmdTxEnb)) | (this.rx.empty ? R.RxBufEmpty : 0);
      case R.RxBufPtr: reg = this.rx.capr; break;
      case R.RxBufAddr: reg = this.rx.writeOffset; break;
      case R.IntrStatus: reg = this.isr; break;
      case R.TxConfig: reg = ((this.dv.getUint32(R.TxConfig, true) & ~R.TxHwVerMask) | this.hwVersion) >>> 0; break;
      case R.Timer: reg = this.timer.tctr; break;
      case R.RxMissed: reg = this.missed & 0xffffff; break;
      case R.Cfg9346: {
        const c = this.regs[R.Cfg9346]!;
        if ((c & R.Cfg9346_EEM_MASK) !== R.Cfg9346_EEM_PROGRAM) return c & R.Cfg9346_EEM_MASK;
        return (c & ~R.EE_DO) | (this.eeprom.dataOut ? R.EE_DO : 0);
      }
      case R.MediaStatus:
        return (this.phy.linkUp ? 0 : R.MSRLinkFail) | (this.phy.speed100 ? 0 : R.MSRSpeed10);
      case R.PCIRevisionID: return o === start ? this.revision : 0;
      case R.TxSummary: reg = this.tx.summary(); break;
      case R.BasicModeCtrl: reg = this.phy.bmcr; break;
      case R.BasicModeStatus: reg = live && o === start ? this.phy.readBmsr() : this.phy.peekBmsr(); break;
      case R.NWayAdvert: reg = this.phy.anar; break;
      case R.NWayLPAR: reg = this.phy.anlpar; break;
      case R.NWayExpansion: reg = this.phy.aner; break;
      case R.CSCR:
        reg = (this.dv.getUint16(R.CSCR, true) & CSCR_WRITABLE) | (this.phy.linkUp ? R.CSCR_LinkOKBit : 0) |
          (this.cscrLinkChange ? R.CSCR_LinkChangeBit : 0);
        break;
      case R.TxPoll: return this.txPolling;
      default:
        return this.regs[o]!;
    }
    return Math.floor(reg / 2 ** shift) & 0xff;
  }

  writeRegister(offset: number, size: number, value: number): void {
    this.timer.poll();
    if (offset >= 0 && offset < R.REGS_SIZE && REGISTER_SPAN[offset] === offset && REGISTER_WIDTH[offset] === size) {
      // A whole register at once (what drivers do): nothing of the old value survives.
      const v = size === 4 ? value >>> 0 : value & (size === 2 ? 0xffff : 0xff);
      this.writeReg(offset, v, v, size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff);
      return;
    }
    const end = Math.min(offset + size, R.REGS_SIZE);
    let o = Math.max(offset, 0);
    while (o < end) {
      const start = REGISTER_SPAN[o]!;
      const width = REGISTER_WIDTH[start]!;
      const stop = Math.min(end, start + width);
      let v = 0;
      let mask = 0;
      for (let b = o; b < stop; b++) {
        const byte = Math.floor(value / 2 ** (8 * (b - offset))) & 0xff;
        v += byte * 2 ** (8 * (b - start));
        mask += 0xff * 2 ** (8 * (b - start));
      }
      let current = 0;
      for (let i = width - 1; i >= 0; i--) current = current * 256 + this.readByte(start + i, false);
      const merged = ((current & ~mask) | (v & mask)) >>> 0;
      this.writeReg(start, merged, v >>> 0, mask >>> 0);
      o = stop;
    }
  }

  private get cplusMode(): boolean {
    return (this.cpCmd & (R.CpRxOn | R.CpTxOn)) !== 0;
  }

  private storeBytes(start: number, merged: number, mask: number): void {
    for (let i = 0; i < 4 && start + i < R.REGS_SIZE; i++) {
      if (((mask >>> (8 * i)) & 0xff) === 0) continue;
      this.regs[start + i] = (merged >>> (8 * i)) & 0xff;
    }
  }

  /** A write of `written` (bytes in `mask`) to the register starting at `start`. */
  private writeReg(start: number, merged: number, written: number, mask: number): void {
    switch (start) {
      case R.TxStatus0: case R.TxStatus0 + 4: case R.TxStatus0 + 8: case R.TxStatus0 + 12:
        if (this.cplusMode) {
          this.storeBytes(start, merged, mask);
          if (start === R.StatsAddr && (merged & R.DumpStats) !== 0) this.dumpStats();
          return;
        }
        if (this.tx.write((start - R.TxStatus0) >>> 2, merged)) this.runNormalTx();
        return;
      case R.ChipCmd: {
        if ((written & R.CmdReset) !== 0) {
          this.softReset();
          return;
        }
        this.regs[R.ChipCmd] = written & (R.CmdRxEnb | R.CmdTxEnb);
        if ((written & R.CmdTxEnb) !== 0) this.runNormalTx();
        else this.stopCplusTx();
        if ((written & R.CmdRxEnb) !== 0) this.queue.flush();
        return;
      }
      case R.RxBufPtr:
        this.rx.setCapr(merged, this.rxConfig);
        this.queue.flush();
        return;
      case R.RxBufAddr: case R.TxSummary: case R.BasicModeStatus: case R.NWayLPAR:
      case R.NWayExpansion: case R.PCIRevisionID: case R.Config0: case R.MediaStatus:
        return; // read-only
      case R.IntrMask:
        this.dv.setUint16(R.IntrMask, merged & R.IntrStatusBits, true);
        this.updateIrq();
        this.queue.flush();
        return;
      case R.IntrStatus:
        // Write-1-to-clear: only bytes actually written count.
        if ((written & mask & R.RxUnderrun) !== 0) this.cscrLinkChange = false;
        this.isr &= ~(written & mask);
        this.updateIrq();
        this.queue.flush();
        return;
      case R.TxConfig:
        // CLRABT would retransmit an aborted descriptor; ours were aborted for a bad address
        // or size, so a retry could only loop. The bit is accepted and ignored.
        this.dv.setUint32(R.TxConfig, (merged & ~(R.TxHwVerMask | R.TxClearAbt)) >>> 0, true);
        return;
      case R.Timer:
        this.timer.restart();
        return;
      case R.TimerInt:
        this.timer.setInterval(merged);
        return;
      case R.RxMissed:
        this.missed = 0;
        return;
      case R.Cfg9346:
        this.writeCfg9346(written & 0xff);
        return;
      case R.BasicModeCtrl:
        if (this.unlocked) this.phy.writeBmcr(merged);
        return;
      case R.NWayAdvert:
        this.phy.anar = merged & 0xffff;
        return;
      case R.CSCR:
        this.dv.setUint16(R.CSCR, merged & CSCR_WRITABLE, true);
        return;
      case R.TxPoll:
        if ((written & R.ForceSWInt) !== 0) this.raise(R.SWInt);
        this.pollCplusTx(written & (R.HighTxPoll | R.NormalTxPoll));
        this.queue.flush();
        return;
      case R.CpCmd: {
        const old = this.cpCmd;
        const next = merged & CPCMD_WRITABLE;
        this.dv.setUint16(R.CpCmd, next, true);
        if ((next & R.CpTxOn) === 0) this.stopCplusTx();
        if ((next & R.CpTxOn) !== 0 && (old & R.CpTxOn) === 0) { this.cpTx.reset(); this.cpHiTx.reset(); }
        if ((next & R.CpRxOn) !== 0 && (old & R.CpRxOn) === 0) this.cpRx.reset();
        return;
      }
      default:
        if (CONFIG_LOCKED.has(start) && !this.unlocked) return;
        this.storeBytes(start, merged, mask);
        // A new ring base restarts the ring at its first descriptor (and forgets the old one's poll).
        if (start === R.TxRingAddr && (mask & 0xff) !== 0 && this.cplusMode) { this.forgetPoll(R.NormalTxPoll); this.cpTx.reset(); }
        if (start === R.HiTxRingAddr && (mask & 0xff) !== 0 && this.cplusMode) { this.forgetPoll(R.HighTxPoll); this.cpHiTx.reset(); }
        if (start === R.RxRingAddr && (mask & 0xff) !== 0) this.cpRx.reset();
        return;
    }
  }

  private writeCfg9346(v: number): void {
    const mode = v & R.Cfg9346_EEM_MASK;
    if (mode === R.Cfg9346_EEM_AUTOLOAD) {
      // Auto-load finishes at once: reload the station address and return to normal mode.
      this.loadMacFromEeprom();
      this.eeprom.setPins(false, false, false);
      this.regs[R.Cfg9346] = 0;
      return;
    }
    this.regs[R.Cfg9346] = v & (R.Cfg9346_EEM_MASK | R.EE_CS | R.EE_SK | R.EE_DI);
    if (mode === R.Cfg9346_EEM_PROGRAM) this.eeprom.setPins((v & R.EE_CS) !== 0, (v & R.EE_SK) !== 0, (v & R.EE_DI) !== 0);
    else this.eeprom.setPins(false, false, false);
  }

  // ---------------------------------------------------------------- transmit

  private transmit(frame: Uint8Array): boolean {
    const loop = (this.dv.getUint32(R.TxConfig, true) & R.TxLoopBack) === R.TxLoopBack;
    if (loop) {
      this.receive(frame);
      return true;
    }
    if (!this.phy.linkUp || this.backend === undefined) {
      this.stats.txNoCarrier++;
      return false;
    }
    this.stats.txFrames++;
    this.stats.txBytes += frame.length;
    this.backend.send(frame);
    return true;
  }

  /**
   * A LargeSend frame handed to the backend whole (NetBackend.sendSegmented), counted as the
   * segments it makes on the wire. False (the ring then cuts it) when the backend cannot, or
   * the frame loops back or meets no carrier: transmit() handles and counts those per segment.
   */
  private transmitSegmented(frame: Uint8Array, tso: TcpSegmentation): boolean {
    const b = this.backend;
    if (b?.sendSegmented === undefined || !this.phy.linkUp) return false;
    if ((this.dv.getUint32(R.TxConfig, true) & R.TxLoopBack) === R.TxLoopBack) return false;
    if (!b.sendSegmented(frame, tso)) return false;
    this.stats.txFrames += tso.segments;
    this.stats.txBytes += frame.length + (tso.segments - 1) * tso.headerLength;
    return true;
  }

  /**
   * After a burst of transmits, take in what the backend already holds: a host stack answers
   * inside the send (ACKs, and the data they release), and seeing it now spares the guest an
   * entry, a kick and another exit before it does. Measured in the lab: see bench/net.ts.
   */
  private pollBackend(): void {
    this.backend?.pollReceive?.();
  }

  private runNormalTx(): void {
    if ((this.chipCmd & R.CmdTxEnb) === 0 || this.cplusMode) return;
    let sent = 0;
    for (const n of this.tx.takePending()) {
      sent++;
      const outcome = this.tx.send(n, this.dv.getUint32(R.TxAddr0 + 4 * n, true), this.mem, this.sink, undefined);
      if (outcome === 'sent' || outcome === 'no-carrier') this.raise(R.TxOK);
      else {
        this.stats.txErrors++;
        if (outcome === 'bad-size') this.stats.txBadSize++;
        else this.stats.txDmaErrors++;
        this.raise(R.TxErr);
      }
    }
    if (sent > 0) this.pollBackend();
  }

  /**
   * TxPoll: serve the queues in `bits` (HPQ before NPQ). With a turn already deferred the
   * engine is busy and picks the new descriptors up there: a burst of TxPoll writes (a rep
   * outsb, say) starts one turn's work, not one per write.
   */
  private pollCplusTx(bits: number): void {
    if (bits === 0 || (this.cpCmd & R.CpTxOn) === 0 || (this.chipCmd & R.CmdTxEnb) === 0) return;
    this.txPolling |= bits;
    if (this.cancelTx === undefined) this.cplusTxTurn();
  }

  /** One turn of the transmit engine: what the budget allows, the rest deferred. */
  private cplusTxTurn(fresh = false): void {
    this.txBudget.begin(fresh);
    let frames = 0;
    for (const [bit, ring, reg] of [[R.HighTxPoll, this.cpHiTx, R.HiTxRingAddr], [R.NormalTxPoll, this.cpTx, R.TxRingAddr]] as const) {
      if ((this.txPolling & bit) === 0) continue;
      if (this.txBudget.exhausted) break;
      const more = this.runCplusTx(ring, reg);
      frames += more.frames;
      if (!more.more) this.txPolling &= ~bit;
    }
    if (this.txPolling !== 0 && !this.closed) {
      this.stats.txDeferred++;
      this.cancelTx = this.defer(() => {
        this.cancelTx = undefined;
        if ((this.cpCmd & R.CpTxOn) === 0 || (this.chipCmd & R.CmdTxEnb) === 0) this.txPolling = 0;
        else this.cplusTxTurn(true);
      });
    }
    this.txBudget.leave();
    if (frames > 0) this.pollBackend();
  }

  /** One queue's ring moved: forget its poll (and the deferred turn if nothing else is polled). */
  private forgetPoll(bit: number): void {
    this.txPolling &= ~bit;
    if (this.txPolling === 0) this.stopCplusTx();
  }

  /** Transmitter off, reset or closed: forget the polls and any deferred turn. */
  private stopCplusTx(): void {
    this.txPolling = 0;
    this.cancelTx?.();
    this.cancelTx = undefined;
  }

  private runCplusTx(ring: CplusTxRing, reg: number): { frames: number; more: boolean } {
    const base = this.reg64(reg);
    if (base === 0) return { frames: 0, more: false };
    const r = ring.poll(this.mem, base, this.cplusSink, this.txBudget);
    let bits = 0;
    if (r.frames > 0) bits |= R.TxOK;
    if (r.errors > 0 || r.ringError) {
      this.stats.txErrors += r.errors + (r.ringError ? 1 : 0);
      this.stats.txBadMss += r.badMss;
      if (r.ringError) this.stats.txDmaErrors++;
      bits |= R.TxErr;
    }
    if (bits !== 0) this.raise(bits);
    return { frames: r.frames, more: r.more && !r.ringError };
  }

  /** C+ StatsAddr.DumpStats: write the 64-byte tally block, then clear the bit. */
  private dumpStats(): void {
    const addr = this.reg64(R.StatsAddr) - R.DumpStats;
    if (this.mem.contains(addr, 64)) this.mem.write(addr, tallyCounters(this.stats));
    this.regs[R.StatsAddr] = this.regs[R.StatsAddr]! & ~R.DumpStats;
  }

  // ---------------------------------------------------------------- receive

  /**
   * Offer a frame from the wire without counting a miss when there is no room ('full'), so a
   * caller can hold it back and retry. Frames are whole Ethernet frames without FCS; `flags`
   * are the backend's (RX_CHECKSUMS_VALID spares the C+ checksum report a sum over the frame).
   */
  tryReceive(frame: Uint8Array, flags = 0): RxOutcome {
    if ((this.chipCmd & R.CmdRxEnb) === 0 || !this.phy.linkUp) {
      this.stats.rxDisabled++;
      return 'disabled';
    }
    const rxConfig = this.rxConfig;
    const bits = frame.length < 14 ? -1 : filterFrame(frame, this.regs, rxConfig);
    if (bits < 0) {
      this.stats.rxFiltered++;
      return 'filtered';
    }
    const cplusRx = (this.cpCmd & R.CpRxOn) !== 0;
    if (!cplusRx && frame.length > RX_MAX_FRAME) {
      this.stats.rxTooLong++;
      return 'dropped';
    }
    this.rxBudget.begin();
    try {
      if (this.rxBudget.exhausted) {
        // This turn's share is used: the frame waits (the caller holds it back), a later turn
        // takes it. Not a full ring: no RxOverflow, nothing missed yet.
        this.deferRx();
        return 'full';
      }
      this.rxBudget.spend(1, frame.length);
      return this.store(frame, flags, bits, rxConfig, cplusRx);
    } finally {
      this.rxBudget.leave();
    }
  }

  /** tryReceive's second half: the frame passed the filter and this turn has room for it. */
  private store(frame: Uint8Array, flags: number, bits: number, rxConfig: number, cplusRx: boolean): RxOutcome {
    // Written to guest RAM straight from the backend's buffer, the FCS after it: no copy here.
    // The rings compute the FCS only once they have room: a frame held back for a full ring is
    // offered again at every register write until the driver refills it.
    const data = padFrame(frame);
    if (cplusRx) {
      const cmd = this.cpCmd;
      const r = this.cpRx.receive(this.mem, this.reg64(R.RxRingAddr), data, bits, (cmd & R.RxVlanOn) !== 0, (cmd & R.RxChkSum) !== 0,
        (flags & RX_CHECKSUMS_VALID) !== 0);
      if (r === 'no-descriptor') {
        // RxEmpty (RxOverflow's bit in C+ mode): no free descriptor, the driver's cue to refill.
        // The frame is not lost yet (the caller may hold it back); countMissed() says when it is.
        this.raise(R.RxOverflow);
        return 'full';
      }
      if (r === 'too-long') {
        this.stats.rxTooLong++;
        return 'dropped';
      }
      if (r === 'dma-error') {
        this.stats.rxDmaErrors++;
        this.raise(R.RxErr);
        return 'dropped';
      }
    } else {
      let r: string;
      try {
        r = this.rx.store(this.mem, this.dv.getUint32(R.RxBuf, true), rxConfig, data, R.RxStatusOK | bits);
      } catch {
        r = 'dma-error';
      }
      // A full ring with a frame held back: the chip would drop it and raise RxOverflow, which
      // 8139too counts in rx_errors; ours is not lost yet (countMissed() raises RxOverflow when
      // one is). RxOK instead: 8139too's poll reads the ring only while ISR has an Rx bit, so
      // without one it would leave the unread frames there and wait for an interrupt.
      if (r === 'full') {
        this.raise(R.RxOK);
        return 'full';
      }
      if (r === 'dma-error') {
        this.stats.rxDmaErrors++;
        this.raise(R.RxErr);
        return 'dropped';
      }
    }
    this.stats.rxFrames++;
    this.stats.rxBytes += frame.length;
    if (bits & R.RxBroadcast) this.stats.rxBroadcast++;
    else if (bits & R.RxMulticast) this.stats.rxMulticast++;
    else this.stats.rxPhysical++;
    this.raise(R.RxOK);
    return 'ok';
  }

  private deferRx(): void {
    if (this.cancelRx !== undefined || this.closed) return;
    this.stats.rxDeferred++;
    this.cancelRx = this.defer(() => {
      this.cancelRx = undefined;
      this.rxBudget.begin(true);
      this.queue.flush();
      this.rxBudget.leave();
    });
  }

  /** Deliver a frame; true if it reached guest RAM. A full ring drops it and counts MPC. */
  receive(frame: Uint8Array): boolean {
    const r = this.tryReceive(frame);
    if (r === 'full') this.countMissed();
    return r === 'ok';
  }

  /**
   * A frame the ring could not take is dropped: MPC counts it and ISR says so (RxOverflow and
   * RxFIFOOver; in C+ mode the same bits are RxEmpty and RxFIFOOvr).
   */
  private countMissed(): void {
    this.missed = (this.missed + 1) & 0xffffff;
    this.stats.rxMissed++;
    this.raise(R.RxOverflow | R.RxFIFOOver);
  }

  // ---------------------------------------------------------------- link and backend

  /** Carrier change from the backend: PHY/MediaStatus bits follow and LinkChg is raised. */
  setLink(up: boolean): void {
    if (!this.phy.setLink(up)) return;
    this.cscrLinkChange = true;
    this.raise(R.RxUnderrun);
  }

  /** Connect the NIC to a backend (replacing any previous one). */
  attachBackend(backend: NetBackend): void {
    this.detachBackend();
    this.backend = backend;
    this.unsubscribe.push(backend.onReceive((frame, flags) => this.queue.push(frame, flags)));
    this.unsubscribe.push(backend.onLinkChange((up) => this.setLink(up)));
    this.setLink(backend.linkUp);
  }

  detachBackend(): void {
    for (const u of this.unsubscribe) u();
    this.unsubscribe = [];
    // A backend we paused reads again for whoever else listens (and is not left stuck).
    if (this.queue.backendPaused) this.backend?.resumeReceive?.();
    this.backend = undefined;
    this.queue.clear();
  }

  /**
   * Registers, rings, EEPROM, PHY, timer, counters and PCI config as plain data. Frames held
   * back for a full RX ring belong to the backend side and are not part of it.
   */
  override saveState(): Rtl8139State {
    return {
      ...super.saveState(),
      regs: Array.from(this.regs), isr: this.isr, missed: this.missed, cscrLinkChange: this.cscrLinkChange,
      rx: { writeOffset: this.rx.writeOffset, readOffset: this.rx.readOffset }, tx: this.tx.saveState(),
      cpTx: this.cpTx.saveState(), cpHiTx: this.cpHiTx.saveState(), cpRxIndex: this.cpRx.index,
      ...(this.txPolling !== 0 ? { txPolling: this.txPolling } : {}),
      eeprom: this.eeprom.saveState(), phy: this.phy.saveState(), timer: this.timer.saveState(), stats: { ...this.stats },
    };
  }

  override loadState(s: Rtl8139State): void {
    this.regs.set(s.regs.slice(0, this.regs.length));
    this.isr = s.isr; this.missed = s.missed; this.cscrLinkChange = s.cscrLinkChange;
    this.rx.writeOffset = s.rx.writeOffset; this.rx.readOffset = s.rx.readOffset;
    this.tx.loadState(s.tx); this.cpTx.loadState(s.cpTx); this.cpHiTx.loadState(s.cpHiTx); this.cpRx.index = s.cpRxIndex;
    this.eeprom.loadState(s.eeprom); this.phy.loadState(s.phy); this.timer.loadState(s.timer);
    Object.assign(this.stats, s.stats);
    super.loadState(s);
    this.updateIrq();
    // A transmit part-way through when the state was saved goes on, on a later turn.
    this.stopCplusTx();
    const polling = (s.txPolling ?? 0) & (R.HighTxPoll | R.NormalTxPoll);
    if (polling !== 0 && !this.closed) {
      this.txPolling = polling;
      this.cancelTx = this.defer(() => {
        this.cancelTx = undefined;
        this.cplusTxTurn(true);
      });
    }
  }

  /** Stop the timer and any deferred transmit, and detach the backend. */
  close(): void {
    this.closed = true;
    this.stopCplusTx();
    this.cancelRx?.();
    this.cancelRx = undefined;
    this.timer.close();
    this.detachBackend();
  }
}

