// ACPI PM block: every byte of the PM1/PM_TMR/GPE0 window at every width, the reset register,
// host events (power button, GPEs), a clock that jumps, resets and snapshot round trips. The
// SCI must be up exactly while an enabled status bit is set (ACPI 6.5 §4.8.3.1, §5.6.4), as read
// back through the registers, and PM_TMR must count 3.579545 MHz ticks of the clock (modulo
// its width, PM_TIMER_MASK).
import { RecordingIrqLine } from '../../../lib/bus/irq.js';
import {
  AcpiPm, ACPI_PM_IO_LENGTH, GBL_STS, PM_TIMER_HZ, PM_TIMER_MASK, PWRBTN_STS, RTC_STS, SLPBTN_STS, TMR_STS, type AcpiPmState,
} from '../../../lib/devices/acpi-pm.js';
import { PORT_ACPI_GPE0, PORT_ACPI_GPE0_LEN, PORT_ACPI_PM1A_CNT, PORT_ACPI_PM1A_EVT, PORT_ACPI_PM_TMR } from '../../../lib/platform/layout.js';
import { FakeClock } from '../clock.js';
import { checkReadValue, type FuzzInstance, type FuzzTarget } from '../harness.js';
import type { Rng } from '../rng.js';

const OFF_CNT = PORT_ACPI_PM1A_CNT - PORT_ACPI_PM1A_EVT;
const OFF_TMR = PORT_ACPI_PM_TMR - PORT_ACPI_PM1A_EVT;
const OFF_GPE = PORT_ACPI_GPE0 - PORT_ACPI_PM1A_EVT;
const GPE_HALF = PORT_ACPI_GPE0_LEN / 2;
/** PM1 status bits that have an enable bit, so can raise the SCI. */
const PM1_SCI_BITS = TMR_STS | GBL_STS | PWRBTN_STS | SLPBTN_STS | RTC_STS;

class AcpiPmFuzz implements FuzzInstance {
  op = 'none';
  private readonly clock = new FakeClock();
  private readonly sci = new RecordingIrqLine();
  private readonly pm: AcpiPm;
  private epoch = 0n;
  private sleeps = 0;
  private resets = 0;

  constructor(private readonly rng: Rng) {
    this.clock.advance(rng.u32() * 1000);
    this.pm = new AcpiPm({
      clock: this.clock, sci: this.sci,
      onSleep: (state, typ) => {
        if (!/^S[1-5]$|^unknown$/.test(state) || !Number.isInteger(typ) || typ < 0 || typ > 7) throw new Error(`onSleep(${state}, ${typ})`);
        this.sleeps++;
      },
      onReset: () => { this.resets++; },
    });
    this.epoch = this.clock.ns;
  }

  private reg(off: number, size: number): number {
    return this.pm.read(off, size);
  }

  step(): void {
    const r = this.rng;
    const k = r.int(100);
    if (k < 35) {
      const size = r.size();
      const off = r.chance(0.7) ? r.pick([0, 2, OFF_CNT, OFF_GPE, OFF_GPE + GPE_HALF]) : r.int(ACPI_PM_IO_LENGTH - size + 1);
      // SLP_EN with SLP_TYP 5 is the guest's poweroff: keep it, but not every other write.
      const v = off === OFF_CNT && r.chance(0.3) ? (r.int(8) << 10) | (r.chance(0.5) ? 1 << 13 : 0) : r.value(size);
      this.op = `write(0x${off.toString(16)}, ${size}, 0x${v.toString(16)})`;
      this.pm.write(off, size, v);
    } else if (k < 70) {
      const size = r.size();
      const off = r.chance(0.3) ? OFF_TMR : r.int(ACPI_PM_IO_LENGTH - size + 1);
      this.op = `read(0x${off.toString(16)}, ${size})`;
      const v = this.pm.read(off, size);
      checkReadValue(v, size, this.op);
      if (off === OFF_TMR && size === 4) {
        const want = Number(((this.clock.ns - this.epoch) * BigInt(PM_TIMER_HZ) / 1_000_000_000n) & BigInt(PM_TIMER_MASK));
        if (v !== want) throw new Error(`PM_TMR ${v}, the clock says ${want}`);
      }
    } else if (k < 78) {
      const size = r.size();
      const off = r.int(2);
      const v = r.chance(0.5) ? r.pick([0x02, 0x06, 0x0e, 0x04]) : r.value(size);
      this.op = `reset register write(${off}, ${size}, 0x${v.toString(16)})`;
      this.pm.resetRegister.write(off, size, v);
    } else if (k < 82) {
      const off = r.int(2);
      this.op = `reset register read(${off})`;
      checkReadValue(this.pm.resetRegister.read(off, 1), 1, this.op);
    } else if (k < 87) {
      this.op = 'power button';
      this.pm.pressPowerButton();
    } else if (k < 92) {
      const bit = r.int(PORT_ACPI_GPE0_LEN * 4);
      this.op = `raiseGpe(${bit})`;
      this.pm.raiseGpe(bit);
    } else if (k < 97) {
      const ns = r.chance(0.9) ? r.int(10_000_000) : r.u32() * 1000;
      this.op = `clock +${ns} ns`;
      this.clock.advance(ns);
    } else if (k < 99) {
      this.op = 'reset()';
      this.pm.reset();
      this.epoch = this.clock.ns;
    } else {
      this.op = 'saveState/loadState round trip';
      const s = JSON.stringify(this.pm.saveState());
      this.pm.loadState(JSON.parse(s) as AcpiPmState);
      const again = JSON.stringify(this.pm.saveState());
      if (again !== s) throw new Error(`state changed by a round trip:\n${s}\n${again}`);
    }
  }

  check(): void {
    // Read the way OSPM does: status and enable registers (reads have no side effects here).
    const sts = this.reg(0, 2);
    const en = this.reg(2, 2);
    const gsts = this.reg(OFF_GPE, GPE_HALF);
    const gen = this.reg(OFF_GPE + GPE_HALF, GPE_HALF);
    const want = (sts & en & PM1_SCI_BITS) !== 0 || (gsts & gen) !== 0;
    if (this.sci.level !== want) {
      throw new Error(`SCI ${this.sci.level ? 'up' : 'down'} with PM1_STS 0x${sts.toString(16)} PM1_EN 0x${en.toString(16)} GPE0_STS 0x${gsts.toString(16)} GPE0_EN 0x${gen.toString(16)}`);
    }
    if ((this.reg(OFF_CNT, 2) & 1) !== 1) throw new Error('SCI_EN reads 0');
  }

  stats(): Record<string, number> {
    return { sleeps: this.sleeps, resets: this.resets };
  }

  close(): void {}
}

export const acpiPmTarget: FuzzTarget = { name: 'acpi-pm', file: 'acpi-pm', create: (rng) => new AcpiPmFuzz(rng) };
