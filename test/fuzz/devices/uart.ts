// UART 16550: guest register accesses, host input (straight into the FIFO and through the
// bounded queue), resets and snapshot round trips. The IRQ line must be up exactly while one
// of the enabled interrupt sources (PC16550D datasheet, IIR priorities) is pending.
import { RecordingIrqLine } from '../../../lib/bus/irq.js';
import {
  IER_EDSSI, IER_ELSI, IER_ERBFI, IER_ETBEI, Uart16550, UART_FIFO_SIZE, UART_IIR, UART_IO_SIZE, UART_LCR, UART_LSR,
  type Uart16550State,
} from '../../../lib/devices/uart16550.js';
import { checkReadValue, type FuzzInstance, type FuzzTarget } from '../harness.js';
import type { Rng } from '../rng.js';

const LSR_ERRORS = 0x1e;
const MSR_DELTAS = 0x0f;

/** Whether the registers in `s` have an interrupt to report (what IIR bit 0 = 0 means). */
export function uartInterruptPending(s: Uart16550State): boolean {
  return ((s.ier & IER_ELSI) !== 0 && (s.lsrErrors & LSR_ERRORS) !== 0) ||
    ((s.ier & IER_ERBFI) !== 0 && s.rx.length > 0) ||
    ((s.ier & IER_ETBEI) !== 0 && s.thrIpending) ||
    ((s.ier & IER_EDSSI) !== 0 && (s.msrDeltas & MSR_DELTAS) !== 0);
}

class UartFuzz implements FuzzInstance {
  op = 'none';
  private readonly irq = new RecordingIrqLine();
  private readonly uart: Uart16550;
  private readonly queueSize: number;
  private transmitted = 0;
  private rxSpace = 0;
  private iirReads = 0;

  constructor(private readonly rng: Rng) {
    this.queueSize = rng.pick([0, 1, 16, 256, 4096]);
    this.uart = new Uart16550({
      irq: this.irq, inputQueueSize: this.queueSize,
      onTransmit: (b) => {
        if (!Number.isInteger(b) || b < 0 || b > 0xff) throw new Error(`onTransmit got ${b}`);
        this.transmitted++;
      },
      onRxSpace: () => { this.rxSpace++; },
    });
  }

  step(): void {
    const r = this.rng;
    const k = r.int(100);
    if (k < 40) {
      const off = r.int(UART_IO_SIZE);
      const size = r.size();
      // LCR gets DLAB on and off often, so both register banks see traffic.
      const v = off === UART_LCR && r.chance(0.5) ? (r.chance(0.5) ? 0x80 : 0x03) : r.value(size);
      this.op = `write(${off}, ${size}, 0x${v.toString(16)})`;
      this.uart.write(off, size, v);
    } else if (k < 80) {
      const off = r.int(UART_IO_SIZE);
      const size = r.size();
      this.op = `read(${off}, ${size})`;
      const before = this.irq.level;
      const v = this.uart.read(off, size);
      checkReadValue(v, 1, this.op);
      if (off === UART_IIR) {
        this.iirReads++;
        // IIR bit 0 is "no interrupt pending": it must agree with the line as it was.
        if (((v & 1) === 0) !== before) throw new Error(`IIR read 0x${v.toString(16)} while the IRQ line was ${before ? 'up' : 'down'}`);
      }
      if (off === UART_LSR && (v & 0x60) !== 0x60) throw new Error(`LSR 0x${v.toString(16)}: THRE/TEMT must stay set (transmission is instantaneous)`);
    } else if (k < 88) {
      const n = r.int(r.chance(0.1) ? 64 : 20);
      this.op = `receive(${n} bytes)`;
      const took = this.uart.receive(r.bytes(n));
      if (!Number.isInteger(took) || took < 0 || took > n) throw new Error(`receive took ${took} of ${n}`);
    } else if (k < 96) {
      const n = r.int(r.chance(0.1) ? 5000 : 40);
      this.op = `enqueueInput(${n} bytes)`;
      const took = this.uart.enqueueInput(r.bytes(n));
      if (!Number.isInteger(took) || took < 0 || took > n) throw new Error(`enqueueInput took ${took} of ${n}`);
    } else if (k < 98) {
      this.op = 'reset()';
      this.uart.reset();
    } else {
      this.op = 'saveState/loadState round trip';
      const s = this.uart.saveState();
      this.uart.loadState(JSON.parse(JSON.stringify(s)) as Uart16550State);
      const again = JSON.stringify(this.uart.saveState());
      if (again !== JSON.stringify(s)) throw new Error(`state changed by a round trip:\n${JSON.stringify(s)}\n${again}`);
    }
  }

  check(): void {
    const s = this.uart.saveState();
    const want = uartInterruptPending(s);
    if (this.irq.level !== want) throw new Error(`IRQ line ${this.irq.level ? 'up' : 'down'} but the registers say ${want ? '' : 'no '}interrupt pending: ${JSON.stringify({ ...s, queue: s.queue.length })}`);
    if (s.rx.length > UART_FIFO_SIZE) throw new Error(`RX FIFO holds ${s.rx.length} bytes`);
    if ((s.fcr & 1) === 0 && s.rx.length > 1) throw new Error(`FIFOs off but ${s.rx.length} bytes held`);
    if (s.queue.length > this.queueSize) throw new Error(`input queue holds ${s.queue.length} > ${this.queueSize}`);
  }

  stats(): Record<string, number> {
    return { transmitted: this.transmitted, rxSpace: this.rxSpace, iirReads: this.iirReads };
  }

  close(): void {}
}

export const uartTarget: FuzzTarget = { name: 'uart16550', file: 'uart', create: (rng) => new UartFuzz(rng) };
