// MC146818 real-time clock and the PC's CMOS NVRAM behind ports 0x70 (index) / 0x71 (data).
// The clock reads an injected time source (default: the host's UTC clock) every time a time
// register is read, so it needs no timer. If the guest sets the clock (hwclock --systohc) we
// keep the difference as an offset. Alarms, periodic and update interrupts are not generated.
//
// The memory-size bytes follow the IBM AT layout plus QEMU's extensions, which is what firmware
// and Linux's early code read: base memory (0x15/0x16), extended memory 1-64 MiB (0x17/0x18,
// 0x30/0x31), memory above 16 MiB (0x34/0x35) and above 4 GiB (0x5b-0x5d).
import { InvalidArgumentError } from '../errors.js';
import type { BusDevice } from '../bus/device.js';
import type { Stateful } from './stateful.js';

export const CMOS_INDEX = 0; // port 0x70
export const CMOS_DATA = 1; // port 0x71
export const CMOS_IO_SIZE = 2;

// RTC registers (MC146818 datasheet names)
export const RTC_SECONDS = 0x00;
export const RTC_SECONDS_ALARM = 0x01;
export const RTC_MINUTES = 0x02;
export const RTC_MINUTES_ALARM = 0x03;
export const RTC_HOURS = 0x04;
export const RTC_HOURS_ALARM = 0x05;
export const RTC_DAY_OF_WEEK = 0x06;
export const RTC_DAY_OF_MONTH = 0x07;
export const RTC_MONTH = 0x08;
export const RTC_YEAR = 0x09;
export const RTC_REG_A = 0x0a;
export const RTC_REG_B = 0x0b;
export const RTC_REG_C = 0x0c;
export const RTC_REG_D = 0x0d;
export const RTC_CENTURY = 0x32; // IBM PS/2 and ACPI FADT "century" default

// Register A
export const REG_A_UIP = 0x80; // update in progress: always 0, our clock never ticks mid-read
const REG_A_DEFAULT = 0x26; // 32.768 kHz time base, 1024 Hz rate
// Register B
export const REG_B_SET = 0x80; // freeze the clock while the guest sets it
export const REG_B_PIE = 0x40;
export const REG_B_AIE = 0x20;
export const REG_B_UIE = 0x10;
export const REG_B_SQWE = 0x08;
export const REG_B_DM = 0x04; // 1 = binary, 0 = BCD
export const REG_B_24H = 0x02;
export const REG_B_DSE = 0x01;
const REG_B_DEFAULT = REG_B_24H; // BCD, 24-hour: what a PC BIOS leaves
// Register D
export const REG_D_VRT = 0x80; // valid RAM and time (battery good)
// Hours register, 12-hour mode
const HOURS_PM = 0x80;

// Memory size bytes
export const CMOS_BASE_MEM_LO = 0x15;
export const CMOS_BASE_MEM_HI = 0x16;
export const CMOS_EXT_MEM_LO = 0x17;
export const CMOS_EXT_MEM_HI = 0x18;
export const CMOS_EXT_MEM2_LO = 0x30;
export const CMOS_EXT_MEM2_HI = 0x31;
export const CMOS_MEM_ABOVE_16M_LO = 0x34;
export const CMOS_MEM_ABOVE_16M_HI = 0x35;
export const CMOS_MEM_ABOVE_4G_LO = 0x5b; // 0x5b-0x5d, 64 KiB units (QEMU convention)

const CMOS_SIZE = 128;
const KiB = 1024;
const MiB = 1024 * KiB;
const FOUR_GIB = 4 * 1024 * MiB;
const BASE_MEMORY_KIB = 640;

export interface CmosOptions {
  /** Bytes of RAM below 4 GiB (from 0, including the low 1 MiB). */
  memoryBelow4g: number;
  /** Bytes of RAM at and above 4 GiB. */
  memoryAbove4g: number;
  /** Time source for the RTC (default: the host clock). */
  now?: () => Date;
}

/** Cmos.saveState(). */
export interface CmosState {
  ram: number[];
  index: number;
  offsetMs: number;
}

export class Cmos implements BusDevice, Stateful<CmosState> {
  private readonly now: () => Date;
  private readonly memoryBelow4g: number;
  private readonly memoryAbove4g: number;

  // State.
  private readonly ram = new Uint8Array(CMOS_SIZE);
  private index = 0;
  /** Guest-set time minus host time, in ms (survives reset(), like a battery-backed clock). */
  private offsetMs = 0;

  constructor(opts: CmosOptions) {
    if (opts === null || typeof opts !== 'object') throw new InvalidArgumentError('Cmos needs { memoryBelow4g, memoryAbove4g }');
    const { memoryBelow4g, memoryAbove4g } = opts;
    if (!Number.isSafeInteger(memoryBelow4g) || memoryBelow4g < 0 || memoryBelow4g > FOUR_GIB) {
      throw new InvalidArgumentError(`memoryBelow4g must be an integer in [0, 4 GiB], got ${memoryBelow4g}`);
    }
    if (!Number.isSafeInteger(memoryAbove4g) || memoryAbove4g < 0) {
      throw new InvalidArgumentError(`memoryAbove4g must be a non-negative integer, got ${memoryAbove4g}`);
    }
    if (opts.now !== undefined && typeof opts.now !== 'function') throw new InvalidArgumentError('now must be a function returning a Date');
    this.memoryBelow4g = memoryBelow4g;
    this.memoryAbove4g = memoryAbove4g;
    this.now = opts.now ?? (() => new Date());
    this.reset();
  }

  /** Power-on register state. The clock keeps its time (and any offset the guest set). */
  reset(): void {
    this.ram.fill(0);
    this.index = 0;
    this.ram[RTC_REG_A] = REG_A_DEFAULT;
    this.ram[RTC_REG_B] = REG_B_DEFAULT;
    this.ram[RTC_REG_D] = REG_D_VRT;
    this.writeMemorySizes();
  }

  /** The time the guest's RTC shows now. */
  get time(): Date {
    return new Date(this.now().getTime() + this.offsetMs);
  }

  read(offset: number, _size: number): number {
    if (offset !== CMOS_DATA) return 0xff; // the index port is write-only
    const idx = this.index;
    switch (idx) {
      case RTC_SECONDS:
      case RTC_MINUTES:
      case RTC_HOURS:
      case RTC_DAY_OF_WEEK:
      case RTC_DAY_OF_MONTH:
      case RTC_MONTH:
      case RTC_YEAR:
      case RTC_CENTURY:
        // While SET is on the guest sees what it wrote; otherwise the running clock.
        if (!(this.ram[RTC_REG_B]! & REG_B_SET)) this.latchTime();
        return this.ram[idx]!;
      case RTC_REG_A:
        return this.ram[idx]! & ~REG_A_UIP;
      case RTC_REG_C: {
        const v = this.ram[idx]!;
        this.ram[idx] = 0; // reading C acknowledges its flags
        return v;
      }
      case RTC_REG_D:
        return REG_D_VRT;
      default:
        return this.ram[idx]!;
    }
  }

  write(offset: number, _size: number, value: number): void {
    const v = value & 0xff;
    if (offset === CMOS_INDEX) {
      this.index = v & 0x7f; // bit 7 masks NMI on a real board: nothing to mask here
      return;
    }
    if (offset !== CMOS_DATA) return;
    const idx = this.index;
    switch (idx) {
      case RTC_SECONDS:
      case RTC_MINUTES:
      case RTC_HOURS:
      case RTC_DAY_OF_WEEK:
      case RTC_DAY_OF_MONTH:
      case RTC_MONTH:
      case RTC_YEAR:
      case RTC_CENTURY:
        if (this.ram[RTC_REG_B]! & REG_B_SET) {
          this.ram[idx] = v;
        } else {
          // Setting one field of a running clock: change just that field.
          this.latchTime();
          this.ram[idx] = v;
          this.applyTime();
        }
        return;
      case RTC_REG_A:
        this.ram[idx] = v & ~REG_A_UIP;
        return;
      case RTC_REG_B: {
        const old = this.ram[idx]!;
        if (!(old & REG_B_SET) && v & REG_B_SET) this.latchTime();
        const wasSet = (old & REG_B_SET) !== 0;
        this.ram[idx] = v;
        if (wasSet && !(v & REG_B_SET)) this.applyTime(old);
        return;
      }
      case RTC_REG_C:
      case RTC_REG_D:
        return; // read-only
      default:
        this.ram[idx] = v; // NVRAM
        return;
    }
  }

  /** CMOS RAM, index and the guest's clock offset as plain data. */
  saveState(): CmosState {
    return { ram: Array.from(this.ram), index: this.index, offsetMs: this.offsetMs };
  }

  loadState(s: CmosState): void {
    this.ram.set(s.ram.slice(0, this.ram.length));
    this.index = s.index;
    this.offsetMs = s.offsetMs;
  }

  // ---- internals ----

  private binary(): boolean {
    return (this.ram[RTC_REG_B]! & REG_B_DM) !== 0;
  }

  private encode(n: number, binary = this.binary()): number {
    return binary ? n : ((Math.floor(n / 10) % 10) << 4) | (n % 10);
  }

  private decode(v: number, binary: boolean): number {
    return binary ? v : (v >> 4) * 10 + (v & 0x0f);
  }

  /** Copy the running clock into the time registers, in the guest's chosen format. */
  private latchTime(): void {
    const t = this.time;
    const r = this.ram;
    const b = r[RTC_REG_B]!;
    r[RTC_SECONDS] = this.encode(t.getUTCSeconds());
    r[RTC_MINUTES] = this.encode(t.getUTCMinutes());
    const h = t.getUTCHours();
    r[RTC_HOURS] = b & REG_B_24H ? this.encode(h) : this.encode(h % 12 || 12) | (h >= 12 ? HOURS_PM : 0);
    r[RTC_DAY_OF_WEEK] = this.encode(t.getUTCDay() + 1); // Sunday = 1
    r[RTC_DAY_OF_MONTH] = this.encode(t.getUTCDate());
    r[RTC_MONTH] = this.encode(t.getUTCMonth() + 1);
    const year = t.getUTCFullYear();
    r[RTC_YEAR] = this.encode(year % 100);
    r[RTC_CENTURY] = this.encode(Math.floor(year / 100) % 100);
  }

  /** Take the time registers as the new clock value (format per register B `fmt`). */
  private applyTime(fmt = this.ram[RTC_REG_B]!): void {
    const r = this.ram;
    const bin = (fmt & REG_B_DM) !== 0;
    const d = (i: number) => this.decode(r[i]!, bin);
    let hours: number;
    if (fmt & REG_B_24H) {
      hours = d(RTC_HOURS);
    } else {
      const raw = r[RTC_HOURS]!;
      const h12 = this.decode(raw & ~HOURS_PM, bin) % 12;
      hours = raw & HOURS_PM ? h12 + 12 : h12;
    }
    const year = d(RTC_CENTURY) * 100 + d(RTC_YEAR);
    const ms = Date.UTC(year, d(RTC_MONTH) - 1, d(RTC_DAY_OF_MONTH), hours, d(RTC_MINUTES), d(RTC_SECONDS));
    // Garbage from the guest (e.g. invalid BCD) still gives a finite date; refuse anything else.
    if (Number.isFinite(ms)) this.offsetMs = ms - this.now().getTime();
  }

  private writeMemorySizes(): void {
    const r = this.ram;
    const put16 = (lo: number, v: number) => {
      r[lo] = v & 0xff;
      r[lo + 1] = (v >> 8) & 0xff;
    };
    put16(CMOS_BASE_MEM_LO, BASE_MEMORY_KIB);
    const extKib = Math.min(Math.max(0, Math.floor((this.memoryBelow4g - MiB) / KiB)), 0xffff);
    put16(CMOS_EXT_MEM_LO, extKib);
    put16(CMOS_EXT_MEM2_LO, extKib);
    const above16 = Math.min(Math.max(0, Math.floor((this.memoryBelow4g - 16 * MiB) / (64 * KiB))), 0xffff);
    put16(CMOS_MEM_ABOVE_16M_LO, above16);
    const above4g = Math.min(Math.floor(this.memoryAbove4g / (64 * KiB)), 0xff_ffff);
    r[CMOS_MEM_ABOVE_4G_LO] = above4g & 0xff;
    r[CMOS_MEM_ABOVE_4G_LO + 1] = (above4g >> 8) & 0xff;
    r[CMOS_MEM_ABOVE_4G_LO + 2] = (above4g >> 16) & 0xff;
  }
}
