// Realtek RTL8139C / RTL8139C+ on PCI (10ec:8139): one 256-byte register file behind I/O BAR0
// and MMIO BAR1. Revision 0x10 is the plain 8139C Linux drives with 8139too (normal-mode RX
// ring, four TX descriptors); revision 0x20 is the C+ chip 8139cp drives (descriptor rings,
// checksum/TSO/VLAN offload). Both modes live in the same chip, as in the hardware.
//
// Everything the guest hands us (ring and buffer addresses, sizes, descriptor chains) is
// checked where it is read; errors become ISR bits and counters, never exceptions. This file
// holds the register file, resets, snapshots and the backend; frames move in transmitter.ts and
// receiver.ts, which read their configuration from the same registers (chip.ts).
import type { BusDevice, Clock, DmaMemory } from '../../bus/device.js';
import type { NetBackend } from '../../net/backend.js';
import { PciDevice, type PciDeviceState } from '../pci/device.js';
import { cplusMode, reg64, type Chip } from './chip.js';
import type { CplusTxRingState } from './cplus.js';
import { Eeprom93C46, rtl8139EepromImage, type EepromState } from './eeprom.js';
import { Rtl8139Phy, type PhyState } from './mii.js';
import * as R from './regs.js';
import type { TxDescriptorsState } from './tx.js';
import { parseMac } from './mac.js';
import { tallyCounters, zeroStats, type Rtl8139Stats } from './stats.js';
import { Receiver, type RxOutcome } from './receiver.js';
import { Transmitter } from './transmitter.js';

export { parseMac } from './mac.js';
export type { Rtl8139Stats } from './stats.js';
export type { RxOutcome } from './receiver.js';
import { REGISTER_SPAN, REGISTER_WIDTH } from './register-span.js';
import { deferImmediate, type DeferWork, type WorkLimits } from '../work-budget.js';
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
  /** The receive side: normal-mode ring, C+ RX ring, the queue in front of them, MPC. */
  private readonly rx: Receiver;
  /** The transmit side: normal-mode descriptors and the C+ TX rings with their engine. */
  private readonly tx: Transmitter;
  private readonly timer: Rtl8139Timer;
  private readonly hwVersion: number;
  private isr = 0;
  private cscrLinkChange = false;
  private backend: NetBackend | undefined;
  private unsubscribe: Array<() => void> = [];

  constructor(opts: Rtl8139Options) {
    const revision = opts.revision ?? 0x20;
    super({ vendorId: 0x10ec, deviceId: 0x8139, classCode: 0x020000, revision,
      subsystemVendorId: 0x10ec, subsystemId: 0x8139, interruptPin: 1 });
    this.mem = opts.mem;
    this.hwVersion = revision >= 0x20 ? R.HWVER_RTL8139CP : R.HWVER_RTL8139C;
    const chip: Chip = { regs: this.regs, dv: this.dv, mem: this.mem, phy: this.phy, stats: this.stats,
      raise: (bits) => this.raise(bits), backend: () => this.backend };
    const defer = opts.defer ?? deferImmediate;
    this.rx = new Receiver(chip, defer, opts.workLimits, opts.rxQueueLimit ?? 64);
    this.tx = new Transmitter(chip, defer, opts.workLimits, (f) => { this.rx.receive(f); });
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
    this.rx.missed = 0;
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
    return this.rx.queue.length;
  }

  /**
   * For diagnosis: the C+ receive ring as guest RAM holds it, one letter per descriptor up to
   * the one with RingEnd (N: the NIC owns it, D: the driver does), and the NIC's next index.
   */
  cplusRxRing(): { index: number; owners: string } {
    return { index: this.rx.cplusRing.index, owners: this.rx.cplusRing.owners(this.mem, reg64(this.dv, R.RxRingAddr)) };
  }

  /** RxMissed (MPC) as the guest would read it. */
  get missedPackets(): number {
    return this.rx.missed & 0xffffff;
  }

  private get unlocked(): boolean {
    return (this.regs[R.Cfg9346]! & R.Cfg9346_EEM_MASK) === R.Cfg9346_Unlock;
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
        if (cplusMode(this.dv)) return this.regs[o]!;
        reg = this.tx.descriptors.status[(start - R.TxStatus0) >>> 2]!;
        break;
      case R.ChipCmd:
        return (this.regs[R.ChipCmd]! & (R.CmdRxEnb | R.CmdTxEnb)) | (this.rx.ring.empty ? R.RxBufEmpty : 0);
      case R.RxBufPtr: reg = this.rx.ring.capr; break;
      case R.RxBufAddr: reg = this.rx.ring.writeOffset; break;
      case R.IntrStatus: reg = this.isr; break;
      case R.TxConfig: reg = ((this.dv.getUint32(R.TxConfig, true) & ~R.TxHwVerMask) | this.hwVersion) >>> 0; break;
      case R.Timer: reg = this.timer.tctr; break;
      case R.RxMissed: reg = this.rx.missed & 0xffffff; break;
      case R.Cfg9346: {
        const c = this.regs[R.Cfg9346]!;
        if ((c & R.Cfg9346_EEM_MASK) !== R.Cfg9346_EEM_PROGRAM) return c & R.Cfg9346_EEM_MASK;
        return (c & ~R.EE_DO) | (this.eeprom.dataOut ? R.EE_DO : 0);
      }
      case R.MediaStatus:
        return (this.phy.linkUp ? 0 : R.MSRLinkFail) | (this.phy.speed100 ? 0 : R.MSRSpeed10);
      case R.PCIRevisionID: return o === start ? this.revision : 0;
      case R.TxSummary: reg = this.tx.descriptors.summary(); break;
      case R.BasicModeCtrl: reg = this.phy.bmcr; break;
      case R.BasicModeStatus: reg = live && o === start ? this.phy.readBmsr() : this.phy.peekBmsr(); break;
      case R.NWayAdvert: reg = this.phy.anar; break;
      case R.NWayLPAR: reg = this.phy.anlpar; break;
      case R.NWayExpansion: reg = this.phy.aner; break;
      case R.CSCR:
        reg = (this.dv.getUint16(R.CSCR, true) & CSCR_WRITABLE) | (this.phy.linkUp ? R.CSCR_LinkOKBit : 0) |
          (this.cscrLinkChange ? R.CSCR_LinkChangeBit : 0);
        break;
      case R.TxPoll: return this.tx.polling;
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
        if (cplusMode(this.dv)) {
          this.storeBytes(start, merged, mask);
          if (start === R.StatsAddr && (merged & R.DumpStats) !== 0) this.dumpStats();
          return;
        }
        if (this.tx.descriptors.write((start - R.TxStatus0) >>> 2, merged)) this.tx.runNormal();
        return;
      case R.ChipCmd: {
        if ((written & R.CmdReset) !== 0) {
          this.softReset();
          return;
        }
        this.regs[R.ChipCmd] = written & (R.CmdRxEnb | R.CmdTxEnb);
        if ((written & R.CmdTxEnb) !== 0) this.tx.runNormal();
        else this.tx.stop();
        if ((written & R.CmdRxEnb) !== 0) this.rx.queue.flush();
        return;
      }
      case R.RxBufPtr:
        this.rx.ring.setCapr(merged, this.dv.getUint32(R.RxConfig, true));
        this.rx.queue.flush();
        return;
      case R.RxBufAddr: case R.TxSummary: case R.BasicModeStatus: case R.NWayLPAR:
      case R.NWayExpansion: case R.PCIRevisionID: case R.Config0: case R.MediaStatus:
        return; // read-only
      case R.IntrMask:
        this.dv.setUint16(R.IntrMask, merged & R.IntrStatusBits, true);
        this.updateIrq();
        this.rx.queue.flush();
        return;
      case R.IntrStatus:
        // Write-1-to-clear: only bytes actually written count.
        if ((written & mask & R.RxUnderrun) !== 0) this.cscrLinkChange = false;
        this.isr &= ~(written & mask);
        this.updateIrq();
        this.rx.queue.flush();
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
        this.rx.missed = 0;
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
        this.tx.poll(written & (R.HighTxPoll | R.NormalTxPoll));
        this.rx.queue.flush();
        return;
      case R.CpCmd: {
        const old = this.dv.getUint16(R.CpCmd, true);
        const next = merged & CPCMD_WRITABLE;
        this.dv.setUint16(R.CpCmd, next, true);
        if ((next & R.CpTxOn) === 0) this.tx.stop();
        if ((next & R.CpTxOn) !== 0 && (old & R.CpTxOn) === 0) { this.tx.ring.reset(); this.tx.hiRing.reset(); }
        if ((next & R.CpRxOn) !== 0 && (old & R.CpRxOn) === 0) this.rx.cplusRing.reset();
        return;
      }
      default:
        if (CONFIG_LOCKED.has(start) && !this.unlocked) return;
        this.storeBytes(start, merged, mask);
        // A new ring base restarts the ring at its first descriptor (and forgets the old one's poll).
        if (start === R.TxRingAddr && (mask & 0xff) !== 0 && cplusMode(this.dv)) this.tx.ringMoved(R.NormalTxPoll);
        if (start === R.HiTxRingAddr && (mask & 0xff) !== 0 && cplusMode(this.dv)) this.tx.ringMoved(R.HighTxPoll);
        if (start === R.RxRingAddr && (mask & 0xff) !== 0) this.rx.cplusRing.reset();
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

  /** C+ StatsAddr.DumpStats: write the 64-byte tally block, then clear the bit. */
  private dumpStats(): void {
    const addr = reg64(this.dv, R.StatsAddr) - R.DumpStats;
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
    return this.rx.tryReceive(frame, flags);
  }

  /** Deliver a frame; true if it reached guest RAM. A full ring drops it and counts MPC. */
  receive(frame: Uint8Array): boolean {
    return this.rx.receive(frame);
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
    this.unsubscribe.push(backend.onReceive((frame, flags) => this.rx.queue.push(frame, flags)));
    this.unsubscribe.push(backend.onLinkChange((up) => this.setLink(up)));
    this.setLink(backend.linkUp);
  }

  detachBackend(): void {
    for (const u of this.unsubscribe) u();
    this.unsubscribe = [];
    // A backend we paused reads again for whoever else listens (and is not left stuck).
    if (this.rx.queue.backendPaused) this.backend?.resumeReceive?.();
    this.backend = undefined;
    this.rx.queue.clear();
  }

  /**
   * Registers, rings, EEPROM, PHY, timer, counters and PCI config as plain data. Frames held
   * back for a full RX ring belong to the backend side and are not part of it.
   */
  override saveState(): Rtl8139State {
    return {
      ...super.saveState(),
      regs: Array.from(this.regs), isr: this.isr, missed: this.rx.missed, cscrLinkChange: this.cscrLinkChange,
      rx: { writeOffset: this.rx.ring.writeOffset, readOffset: this.rx.ring.readOffset }, tx: this.tx.descriptors.saveState(),
      cpTx: this.tx.ring.saveState(), cpHiTx: this.tx.hiRing.saveState(), cpRxIndex: this.rx.cplusRing.index,
      ...(this.tx.polling !== 0 ? { txPolling: this.tx.polling } : {}),
      eeprom: this.eeprom.saveState(), phy: this.phy.saveState(), timer: this.timer.saveState(), stats: { ...this.stats },
    };
  }

  override loadState(s: Rtl8139State): void {
    this.regs.set(s.regs.slice(0, this.regs.length));
    this.isr = s.isr; this.rx.missed = s.missed; this.cscrLinkChange = s.cscrLinkChange;
    this.rx.ring.writeOffset = s.rx.writeOffset; this.rx.ring.readOffset = s.rx.readOffset;
    this.tx.descriptors.loadState(s.tx); this.tx.ring.loadState(s.cpTx); this.tx.hiRing.loadState(s.cpHiTx);
    this.rx.cplusRing.index = s.cpRxIndex;
    this.eeprom.loadState(s.eeprom); this.phy.loadState(s.phy); this.timer.loadState(s.timer);
    Object.assign(this.stats, s.stats);
    super.loadState(s);
    this.updateIrq();
    // A transmit part-way through when the state was saved goes on, on a later turn.
    this.tx.resume(s.txPolling ?? 0);
  }

  /** Stop the timer and any deferred transmit, and detach the backend. */
  close(): void {
    this.tx.close();
    this.rx.close();
    this.timer.close();
    this.detachBackend();
  }
}

