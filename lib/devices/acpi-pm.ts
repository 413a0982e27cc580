// The ACPI fixed-hardware PM register block (ACPI 6.5 §4.8), the registers the FADT points at:
//   PM1a_EVT_BLK  PM1_STS (2 bytes, write-1-to-clear) + PM1_EN (2 bytes)
//   PM1a_CNT_BLK  PM1_CNT (2 bytes): SCI_EN, SLP_TYPx, SLP_EN
//   PM_TMR_BLK    PM_TMR (4 bytes, read-only): 3.579545 MHz free-running 32-bit counter
//   GPE0_BLK      GPE0_STS (2 bytes, W1C) + GPE0_EN (2 bytes)
// plus the FADT RESET_REG (one byte at PORT_ACPI_RESET) as a separate BusDevice.
//
// Registration: `AcpiPm` covers [its base, +ACPI_PM_IO_LENGTH) on the PIO bus, with the blocks
// at the offsets below (the gaps between blocks read 0xFF); the platform puts its base at
// PORT_ACPI_PM1A_EVT and tells the FADT the same addresses. `pm.resetRegister` is one byte at
// PORT_ACPI_RESET (0xCF9), which sits inside the PCI CONFIG_ADDRESS dword 0xCF8-0xCFB: the PCI host bridge owns that
// range and must forward 1-byte accesses at 0xCF9 to `pm.resetRegister` (a dword at 0xCF8 is
// still CONFIG_ADDRESS, as on Intel chipsets where 0xCF9 is the Reset Control Register).
import type { BusDevice, Clock, IrqLine } from '../bus/device.js';
import { InvalidArgumentError } from '../errors.js';
import type { Stateful } from './stateful.js';

// PM1_STS / PM1_EN bits (Tables 4.16-4.19).
export const TMR_STS = 1 << 0;
export const BM_STS = 1 << 4;
export const GBL_STS = 1 << 5;
export const PWRBTN_STS = 1 << 8;
export const SLPBTN_STS = 1 << 9;
export const RTC_STS = 1 << 10;
export const WAK_STS = 1 << 15;
export const TMR_EN = 1 << 0;
export const GBL_EN = 1 << 5;
export const PWRBTN_EN = 1 << 8;
export const SLPBTN_EN = 1 << 9;
export const RTC_EN = 1 << 10;
// PM1_CNT bits (Table 4.20).
export const SCI_EN = 1 << 0;
export const BM_RLD = 1 << 1;
export const GBL_RLS = 1 << 2;
export const SLP_TYP_SHIFT = 10;
export const SLP_TYP_MASK = 0x7 << SLP_TYP_SHIFT;
export const SLP_EN = 1 << 13;

// Reset Control Register bits (Intel ICH/PIIX 0xCF9); RESET_VALUE 0x06 = SYS_RST | RST_CPU.
export const SYS_RST = 1 << 1;
export const RST_CPU = 1 << 2;
export const FULL_RST = 1 << 3;

/** The PM timer frequency every ACPI platform uses (ACPI 6.5 §4.8.2.1). */
export const PM_TIMER_HZ = 3_579_545;
/**
 * 32 bits (FADT TMR_VAL_EXT set), as ICH-family chipsets have it. A 24-bit counter wraps every
 * 4.7 s, and a guest that waits for "counter > start + N" without handling the wrap (memtest86+
 * 6.10's TSC calibration) then reads it a million times: a million exits, minutes inside the
 * nested lab, and our counter starts at 0 with the VM, so such a guest's early start-up met the
 * first wrap every time. 32 bits wrap after 20 minutes.
 */
export const PM_TIMER_MASK = 0xffff_ffff;

/** Offset of PM1a_CNT_BLK from the window's base (PM1a_EVT_BLK). */
export const ACPI_PM1_CNT_OFFSET = 0x04;
/** Offset of PM_TMR_BLK from the window's base. */
export const ACPI_PM_TMR_OFFSET = 0x08;
/** Offset of GPE0_BLK from the window's base. */
export const ACPI_GPE0_OFFSET = 0x20;
/** Bytes of GPE0_BLK: GPE0_STS and GPE0_EN, half each. */
export const ACPI_GPE0_LENGTH = 4;
/** Bytes from PM1a_EVT_BLK to the end of GPE0_BLK: one window for the whole block. */
export const ACPI_PM_IO_LENGTH = ACPI_GPE0_OFFSET + ACPI_GPE0_LENGTH;

// Register offsets inside the window.
const OFF_PM1_STS = 0;
const OFF_PM1_EN = 2;
const OFF_PM1_CNT = ACPI_PM1_CNT_OFFSET;
const OFF_PM_TMR = ACPI_PM_TMR_OFFSET;
const OFF_GPE0_STS = ACPI_GPE0_OFFSET;
const OFF_GPE0_EN = OFF_GPE0_STS + ACPI_GPE0_LENGTH / 2;

/** PM1 status bits we can ever set; only these (when enabled) assert the SCI. */
const PM1_EVENT_BITS = PWRBTN_STS | SLPBTN_STS | RTC_STS;
/** PM1_EN bits that exist (the rest read 0). */
const PM1_EN_BITS = TMR_EN | GBL_EN | PWRBTN_EN | SLPBTN_EN | RTC_EN;
/** PM1_CNT bits that hold a value (SLP_EN and GBL_RLS are write-only; SCI_EN is forced to 1). */
const PM1_CNT_STORED = BM_RLD | SLP_TYP_MASK;

/** What the guest asked for when it set SLP_EN: `S${SLP_TYP}` for SLP_TYP 1-5, else 'unknown'. */
export type AcpiSleepState = 'S1' | 'S2' | 'S3' | 'S4' | 'S5' | 'unknown';

export interface AcpiPmOptions {
  clock: Clock;
  /** The SCI (GSI IRQ_SCI), level-triggered active-high, as the MADT override declares. */
  sci: IrqLine;
  /**
   * Called when the guest writes SLP_EN. Our DSDT's \_S5_ makes SLP_TYP 5 mean soft-off, so
   * the machine powers off on 'S5'; the other states are never advertised and are only reported.
   */
  onSleep(state: AcpiSleepState, slpTyp: number): void;
  /** Called when the guest writes the FADT RESET_VALUE (or any value with RST_CPU) to the reset register. */
  onReset(): void;
}

type Reg = 'pm1Sts' | 'pm1En' | 'pm1Cnt' | 'pmTmr' | 'gpe0Sts' | 'gpe0En';
const REGS: ReadonlyArray<{ reg: Reg; off: number; size: number }> = [
  { reg: 'pm1Sts', off: OFF_PM1_STS, size: 2 },
  { reg: 'pm1En', off: OFF_PM1_EN, size: 2 },
  { reg: 'pm1Cnt', off: OFF_PM1_CNT, size: 2 },
  { reg: 'pmTmr', off: OFF_PM_TMR, size: 4 },
  { reg: 'gpe0Sts', off: OFF_GPE0_STS, size: ACPI_GPE0_LENGTH / 2 },
  { reg: 'gpe0En', off: OFF_GPE0_EN, size: ACPI_GPE0_LENGTH / 2 },
];

/** Which register holds byte `off` of the window, or undefined for a gap. */
function regAt(off: number): { reg: Reg; off: number; size: number } | undefined {
  for (const r of REGS) if (off >= r.off && off < r.off + r.size) return r;
  return undefined;
}

/** AcpiPm.saveState(): `timerElapsedNs` is a decimal bigint (time since the timer's epoch). */
export interface AcpiPmState {
  pm1Sts: number; pm1En: number; pm1Cnt: number; gpe0Sts: number; gpe0En: number; resetControl: number;
  timerElapsedNs: string;
}

export class AcpiPm implements BusDevice, Stateful<AcpiPmState> {
  private readonly clock: Clock;
  private readonly sci: IrqLine;
  private readonly onSleep: AcpiPmOptions['onSleep'];
  private readonly onReset: () => void;

  // Register state.
  private pm1Sts = 0;
  private pm1En = 0;
  private pm1Cnt = 0;
  private gpe0Sts = 0;
  private gpe0En = 0;
  private resetControl = 0;
  /** Clock reading at which PM_TMR was 0. */
  private timerEpochNs = 0n;

  /** The FADT RESET_REG: register it (or have the PCI host bridge forward to it) at PORT_ACPI_RESET. */
  readonly resetRegister: BusDevice;

  constructor(o: AcpiPmOptions) {
    if (typeof o?.onSleep !== 'function' || typeof o.onReset !== 'function' || o.clock === undefined || o.sci === undefined) {
      throw new InvalidArgumentError('AcpiPm needs { clock, sci, onSleep, onReset }');
    }
    this.clock = o.clock;
    this.sci = o.sci;
    this.onSleep = o.onSleep;
    this.onReset = o.onReset;
    // Modelled on the Intel chipset Reset Control Register: SYS_RST and FULL_RST are kept and
    // read back, and any write with RST_CPU set resets. That covers the FADT's RESET_VALUE
    // (0x06) and Linux's reboot=pci sequence (0x02 then 0x06 or 0x0E); a write without RST_CPU,
    // such as the 0x02 staging write, only updates the kept bits.
    this.resetRegister = {
      read: (offset) => (offset === 0 ? this.resetControl : 0xff),
      write: (offset, _size, value) => {
        if (offset !== 0) return;
        this.resetControl = value & (SYS_RST | FULL_RST);
        if ((value & RST_CPU) !== 0) this.onReset();
      },
    };
    this.reset();
  }

  /** Power-on state: no events pending or enabled, timer restarts at 0, SCI low. */
  reset(): void {
    this.pm1Sts = 0;
    this.pm1En = 0;
    this.pm1Cnt = 0;
    this.gpe0Sts = 0;
    this.gpe0En = 0;
    this.resetControl = 0;
    this.timerEpochNs = this.clock.nowNs();
    this.updateIrq();
  }

  /** Host-side power button press: sets PWRBTN_STS, so a guest with the ACPI button driver shuts down. */
  pressPowerButton(): void {
    this.pm1Sts |= PWRBTN_STS;
    this.updateIrq();
  }

  /** Host-side general-purpose event `bit` (0-15) of GPE0, e.g. for hotplug notifications. */
  raiseGpe(bit: number): void {
    if (!Number.isInteger(bit) || bit < 0 || bit >= ACPI_GPE0_LENGTH * 4) {
      throw new InvalidArgumentError(`GPE0 bit ${bit} is outside 0..${ACPI_GPE0_LENGTH * 4 - 1}`);
    }
    this.gpe0Sts |= 1 << bit;
    this.updateIrq();
  }

  /** Current PM_TMR value: ticks of the 3.579545 MHz clock since reset, modulo 2^32. */
  timerValue(): number {
    const elapsed = this.clock.nowNs() - this.timerEpochNs;
    const ticks = (elapsed * BigInt(PM_TIMER_HZ)) / 1_000_000_000n;
    return Number(ticks & BigInt(PM_TIMER_MASK));
  }

  /** Registers and the PM timer's count (as ticks, so the timer continues from it on any clock). */
  saveState(): AcpiPmState {
    return {
      pm1Sts: this.pm1Sts, pm1En: this.pm1En, pm1Cnt: this.pm1Cnt, gpe0Sts: this.gpe0Sts, gpe0En: this.gpe0En,
      resetControl: this.resetControl, timerElapsedNs: (this.clock.nowNs() - this.timerEpochNs).toString(),
    };
  }

  loadState(s: AcpiPmState): void {
    this.pm1Sts = s.pm1Sts; this.pm1En = s.pm1En; this.pm1Cnt = s.pm1Cnt; this.gpe0Sts = s.gpe0Sts; this.gpe0En = s.gpe0En;
    this.resetControl = s.resetControl;
    this.timerEpochNs = this.clock.nowNs() - BigInt(s.timerElapsedNs);
    this.updateIrq();
  }

  /** The SCI is a level: asserted while any enabled status bit is set (SCI_EN is always 1). */
  private updateIrq(): void {
    const pending = (this.pm1Sts & this.pm1En & PM1_EVENT_BITS) !== 0 || (this.gpe0Sts & this.gpe0En) !== 0;
    if (pending) this.sci.raise();
    else this.sci.lower();
  }

  private regValue(reg: Reg, timer: number): number {
    switch (reg) {
      case 'pm1Sts': return this.pm1Sts;
      case 'pm1En': return this.pm1En;
      // SCI_EN reads 1: with SMI_CMD = 0 the OS finds the machine already in ACPI mode.
      case 'pm1Cnt': return this.pm1Cnt | SCI_EN;
      case 'pmTmr': return timer;
      case 'gpe0Sts': return this.gpe0Sts;
      case 'gpe0En': return this.gpe0En;
    }
  }

  read(offset: number, size: number): number {
    // One timer sample per access, so a dword read (or a byte-wise one) is self-consistent.
    let timer = 0;
    if (offset < OFF_PM_TMR + 4 && offset + size > OFF_PM_TMR) timer = this.timerValue();
    let v = 0;
    for (let i = 0; i < size; i++) {
      const r = regAt(offset + i);
      const byte = r === undefined ? 0xff : (this.regValue(r.reg, timer) >>> (8 * (offset + i - r.off))) & 0xff;
      v |= byte << (8 * i);
    }
    return v >>> 0;
  }

  write(offset: number, size: number, value: number): void {
    // Split the access into per-register (value, byte mask) pairs, then apply each once, so
    // a 16-bit PM1_CNT write is seen as one write however the guest sized it.
    let i = 0;
    while (i < size) {
      const r = regAt(offset + i);
      if (r === undefined) {
        i++;
        continue;
      }
      let v = 0;
      let mask = 0;
      while (i < size && offset + i < r.off + r.size) {
        const shift = 8 * (offset + i - r.off);
        v |= ((value >>> (8 * i)) & 0xff) << shift;
        mask |= 0xff << shift;
        i++;
      }
      this.writeReg(r.reg, v >>> 0, mask >>> 0);
    }
    this.updateIrq();
  }

  private writeReg(reg: Reg, v: number, mask: number): void {
    switch (reg) {
      case 'pm1Sts':
        this.pm1Sts &= ~(v & mask); // write-1-to-clear
        break;
      case 'pm1En':
        this.pm1En = ((this.pm1En & ~mask) | (v & mask)) & PM1_EN_BITS;
        break;
      case 'pm1Cnt': {
        this.pm1Cnt = ((this.pm1Cnt & ~mask) | (v & mask)) & PM1_CNT_STORED;
        if ((v & mask & SLP_EN) !== 0) {
          // Waking happens at once from the guest's point of view: there is no sleep to
          // resume from, so WAK_STS is set for OSPM's leave-sleep path.
          const slpTyp = (this.pm1Cnt & SLP_TYP_MASK) >>> SLP_TYP_SHIFT;
          this.pm1Sts |= WAK_STS;
          this.onSleep(slpTyp >= 1 && slpTyp <= 5 ? (`S${slpTyp}` as AcpiSleepState) : 'unknown', slpTyp);
        }
        break;
      }
      case 'pmTmr':
        break; // read-only
      case 'gpe0Sts':
        this.gpe0Sts &= ~(v & mask);
        break;
      case 'gpe0En':
        this.gpe0En = (this.gpe0En & ~mask) | (v & mask);
        break;
    }
  }
}
