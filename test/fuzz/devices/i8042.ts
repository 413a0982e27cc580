// i8042: controller commands, keyboard commands and their arguments, port B, host scancodes,
// resets and snapshot round trips. IRQ 1 must be up exactly while a keyboard byte waits in the
// output buffer and the command byte enables the keyboard interrupt.
import { RecordingIrqLine } from '../../../lib/bus/irq.js';
import {
  CTR_KBDINT, I8042, I8042_COMMAND, I8042_DATA, I8042_IO_SIZE, I8042_PORT_B, I8042_STATUS, STR_OBF, type I8042State,
} from '../../../lib/devices/i8042.js';
import { checkReadValue, type FuzzInstance, type FuzzTarget } from '../harness.js';
import type { Rng } from '../rng.js';

/** Commands the controller and the keyboard know, so the generator reaches their paths often. */
const CONTROLLER_COMMANDS = [0x20, 0x21, 0x3f, 0x60, 0x61, 0x7f, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xad, 0xae, 0xc0, 0xd0, 0xd1, 0xd2, 0xd3, 0xd4, 0xf0, 0xfe, 0xff];
const KEYBOARD_COMMANDS = [0xed, 0xee, 0xf0, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xff, 0x00, 0x01, 0x02, 0x03];

class I8042Fuzz implements FuzzInstance {
  op = 'none';
  private readonly irq = new RecordingIrqLine();
  private readonly kbc: I8042;
  private resets = 0;

  constructor(private readonly rng: Rng) {
    this.kbc = new I8042({ irq: this.irq, onReset: () => { this.resets++; } });
  }

  step(): void {
    const r = this.rng;
    const k = r.int(100);
    if (k < 20) {
      const v = r.chance(0.8) ? r.pick(CONTROLLER_COMMANDS) : r.u8();
      this.op = `command 0x${v.toString(16)}`;
      this.kbc.write(I8042_COMMAND, 1, v);
    } else if (k < 40) {
      const v = r.chance(0.5) ? r.pick(KEYBOARD_COMMANDS) : r.u8();
      this.op = `data 0x${v.toString(16)}`;
      this.kbc.write(I8042_DATA, 1, v);
    } else if (k < 48) {
      const off = r.int(I8042_IO_SIZE);
      const size = r.size();
      const v = r.value(size);
      this.op = `write(${off}, ${size}, 0x${v.toString(16)})`;
      this.kbc.write(off, size, v);
    } else if (k < 88) {
      const off = r.chance(0.8) ? r.pick([I8042_DATA, I8042_STATUS, I8042_PORT_B]) : r.int(I8042_IO_SIZE);
      const size = r.size();
      this.op = `read(${off}, ${size})`;
      const queued = this.kbc.saveState().out.length;
      const v = this.kbc.read(off, size);
      checkReadValue(v, 1, this.op);
      if (off === I8042_STATUS && ((v & STR_OBF) !== 0) !== queued > 0) throw new Error(`status 0x${v.toString(16)} with ${queued} byte(s) queued`);
    } else if (k < 96) {
      const n = r.int(24);
      this.op = `sendScancodes(${n} bytes)`;
      this.kbc.sendScancodes(r.bytes(n));
    } else if (k < 98) {
      this.op = 'reset()';
      this.kbc.reset();
    } else {
      this.op = 'saveState/loadState round trip';
      const s = JSON.stringify(this.kbc.saveState());
      this.kbc.loadState(JSON.parse(s) as I8042State);
      const again = JSON.stringify(this.kbc.saveState());
      if (again !== s) throw new Error(`state changed by a round trip:\n${s}\n${again}`);
    }
  }

  check(): void {
    const s = this.kbc.saveState();
    const want = s.out.length > 0 && (s.out[0]! & 0x100) === 0 && (s.ram[0]! & CTR_KBDINT) !== 0;
    if (this.irq.level !== want) throw new Error(`IRQ 1 ${this.irq.level ? 'up' : 'down'} but the controller says ${want ? '' : 'no '}keyboard byte to deliver: ${JSON.stringify(s)}`);
    if (s.out.length > 16) throw new Error(`output queue holds ${s.out.length} bytes`);
  }

  stats(): Record<string, number> {
    return { cpuResets: this.resets };
  }

  close(): void {}
}

export const i8042Target: FuzzTarget = { name: 'i8042', file: 'i8042', create: (rng) => new I8042Fuzz(rng) };
