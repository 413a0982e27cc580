// CMOS/RTC: index and data writes (time registers in BCD and binary, 12/24-hour, the SET bit
// freezing and releasing the clock), reads, a host clock that jumps around, resets and snapshot
// round trips. The clock the guest sets must stay a real date, and the time registers must read
// back as what the format (register B) says.
import { Cmos, CMOS_DATA, CMOS_INDEX, CMOS_IO_SIZE, RTC_REG_B, type CmosState } from '../../../lib/devices/cmos.js';
import { checkReadValue, type FuzzInstance, type FuzzTarget } from '../harness.js';
import type { Rng } from '../rng.js';

const TIME_REGS = [0x00, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09, 0x32];
const REG_B_SET = 0x80;

class CmosFuzz implements FuzzInstance {
  op = 'none';
  private readonly cmos: Cmos;
  /** Host time in ms: moves forward and, now and then, anywhere in 1970-2199. */
  private hostMs = Date.UTC(2026, 0, 1);

  constructor(private readonly rng: Rng) {
    this.cmos = new Cmos({ memoryBelow4g: rng.pick([16 << 20, 256 << 20, 0xc000_0000]), memoryAbove4g: rng.pick([0, 1 << 30]), now: () => new Date(this.hostMs) });
  }

  step(): void {
    const r = this.rng;
    const k = r.int(100);
    if (k < 30) {
      const idx = r.chance(0.6) ? r.pick([...TIME_REGS, 0x0a, RTC_REG_B, 0x0c, 0x0d]) : r.u8();
      this.op = `index 0x${idx.toString(16)}`;
      this.cmos.write(CMOS_INDEX, 1, idx);
    } else if (k < 55) {
      // Register B: SET, binary/BCD and 12/24-hour flip often.
      const v = r.chance(0.3) ? r.pick([0x02, 0x06, 0x00, 0x04, 0x82, 0x86, 0x80]) : r.u8();
      this.op = `data write 0x${v.toString(16)}`;
      this.cmos.write(CMOS_DATA, 1, v);
    } else if (k < 60) {
      const off = r.int(CMOS_IO_SIZE);
      const size = r.size();
      const v = r.value(size);
      this.op = `write(${off}, ${size}, 0x${v.toString(16)})`;
      this.cmos.write(off, size, v);
    } else if (k < 92) {
      const off = r.chance(0.9) ? CMOS_DATA : r.int(CMOS_IO_SIZE);
      const size = r.size();
      this.op = `read(${off}, ${size})`;
      checkReadValue(this.cmos.read(off, size), 1, this.op);
    } else if (k < 97) {
      this.hostMs = r.chance(0.8) ? this.hostMs + r.int(100_000) : Date.UTC(1970 + r.int(230), r.int(12), 1 + r.int(28), r.int(24), r.int(60), r.int(60));
      this.op = `host clock now ${new Date(this.hostMs).toISOString()}`;
    } else if (k < 99) {
      this.op = 'reset()';
      this.cmos.reset();
    } else {
      this.op = 'saveState/loadState round trip';
      const s = JSON.stringify(this.cmos.saveState());
      this.cmos.loadState(JSON.parse(s) as CmosState);
      const again = JSON.stringify(this.cmos.saveState());
      if (again !== s) throw new Error(`state changed by a round trip:\n${s}\n${again}`);
    }
  }

  check(): void {
    const t = this.cmos.time.getTime();
    if (!Number.isFinite(t)) throw new Error(`the RTC's time is ${t}`);
    const s = this.cmos.saveState();
    if (!Number.isFinite(s.offsetMs)) throw new Error(`clock offset ${s.offsetMs}`);
    if (s.index < 0 || s.index > 0x7f) throw new Error(`index ${s.index}`);
    // A running clock in BCD reads back digits 0-9 in each nibble of the time registers.
    const b = s.ram[RTC_REG_B]!;
    if ((b & (REG_B_SET | 0x04)) === 0 && TIME_REGS.includes(s.index) && this.rng.chance(0.05)) {
      const v = this.cmos.read(CMOS_DATA, 1) & 0x7f; // bit 7 of hours is PM in 12-hour mode
      if ((v & 0x0f) > 9 || (v >>> 4) > 9) throw new Error(`time register 0x${s.index.toString(16)} reads 0x${v.toString(16)} in BCD mode`);
    }
  }

  close(): void {}
}

export const cmosTarget: FuzzTarget = { name: 'cmos', file: 'cmos', create: (rng) => new CmosFuzz(rng) };
