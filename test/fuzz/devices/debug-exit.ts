// debug-exit and the sinks (POST port 0x80, io-delay 0xed): writes of every width and value
// must report (value << 1) | 1 of the written width, reads all-ones.
import { DebugExit, DEBUG_EXIT_IO_SIZE } from '../../../lib/devices/debug-exit.js';
import { Sink } from '../../../lib/devices/sink.js';
import { checkReadValue, type FuzzInstance, type FuzzTarget } from '../harness.js';
import type { Rng } from '../rng.js';

class DebugExitFuzz implements FuzzInstance {
  op = 'none';
  private readonly dev: DebugExit;
  private readonly sink = new Sink();
  private codes: number[] = [];
  private exits = 0;

  constructor(private readonly rng: Rng) {
    this.dev = new DebugExit({ onExit: (code) => { this.codes.push(code); } });
  }

  step(): void {
    const r = this.rng;
    const size = r.size();
    const k = r.int(100);
    if (k < 50) {
      const off = r.int(DEBUG_EXIT_IO_SIZE - size + 1);
      const v = r.value(size);
      this.op = `write(${off}, ${size}, 0x${v.toString(16)})`;
      this.codes = [];
      this.dev.write(off, size, v);
      const want = (v % 2 ** (8 * size)) * 2 + 1;
      if (this.codes.length !== 1 || this.codes[0] !== want) throw new Error(`onExit got [${this.codes.join(', ')}], expected ${want}`);
      this.exits++;
    } else if (k < 75) {
      const off = r.int(DEBUG_EXIT_IO_SIZE);
      this.op = `read(${off}, ${size})`;
      const v = this.dev.read(off, size);
      checkReadValue(v, size, this.op);
      if (v !== 2 ** (8 * size) - 1) throw new Error(`read 0x${v.toString(16)}, expected all-ones`);
    } else if (k < 90) {
      const v = r.value(size);
      this.op = `sink write(${size}, 0x${v.toString(16)})`;
      this.sink.write(0, size, v);
      if (this.sink.lastValue !== v) throw new Error(`sink kept ${this.sink.lastValue}`);
    } else {
      this.op = `sink read(${size})`;
      checkReadValue(this.sink.read(0, size), size, this.op);
    }
  }

  check(): void {}

  stats(): Record<string, number> {
    return { exits: this.exits, sinkWrites: this.sink.writes };
  }

  close(): void {}
}

export const debugExitTarget: FuzzTarget = { name: 'debug-exit', file: 'debug-exit', create: (rng) => new DebugExitFuzz(rng) };
