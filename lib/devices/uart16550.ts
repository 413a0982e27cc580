// National Semiconductor PC16550D UART (the "16550A" Linux's 8250 driver detects), as a pure
// register model: the guest side is the BusDevice (8 registers at offsets 0-7), the host side is
// `onTransmit` for bytes the guest sends and `receive`/`enqueueInput` for bytes it reads.
//
// Transmission is instantaneous: a byte written to THR is handed to `onTransmit` at once, so
// THR/TSR are always empty (LSR.THRE and LSR.TEMT stay set) and the THRE interrupt re-arms on
// every write. There is no line timing either, so the RX character-timeout interrupt is
// reported as soon as the FIFO holds data below the trigger level: "four character times
// without a new byte" has always already passed for a virtual line that delivers in bursts.
import { InvalidArgumentError } from '../errors.js';
import type { BusDevice, IrqLine } from '../bus/device.js';
import type { Stateful } from './stateful.js';

// Register offsets (DLAB = LCR bit 7 switches offsets 0/1 to the divisor latch).
export const UART_RBR = 0; // receiver buffer (read, DLAB=0)
export const UART_THR = 0; // transmitter holding (write, DLAB=0)
export const UART_DLL = 0; // divisor latch LSB (DLAB=1)
export const UART_IER = 1; // interrupt enable (DLAB=0)
export const UART_DLM = 1; // divisor latch MSB (DLAB=1)
export const UART_IIR = 2; // interrupt identification (read)
export const UART_FCR = 2; // FIFO control (write)
export const UART_LCR = 3; // line control
export const UART_MCR = 4; // modem control
export const UART_LSR = 5; // line status
export const UART_MSR = 6; // modem status
export const UART_SCR = 7; // scratch
/** Number of I/O ports the UART decodes. */
export const UART_IO_SIZE = 8;

// IER
export const IER_ERBFI = 0x01; // received data available
export const IER_ETBEI = 0x02; // transmitter holding register empty
export const IER_ELSI = 0x04; // receiver line status
export const IER_EDSSI = 0x08; // modem status
const IER_MASK = 0x0f; // a 16550A has no bits 4-7 (Linux's XScale/UUE probe relies on that)

// IIR
export const IIR_NO_INT = 0x01;
export const IIR_MSI = 0x00; // modem status
export const IIR_THRI = 0x02; // THR empty
export const IIR_RDI = 0x04; // received data available
export const IIR_RLSI = 0x06; // receiver line status
export const IIR_CTI = 0x0c; // character timeout
export const IIR_FIFO_ENABLED = 0xc0;

// FCR
export const FCR_ENABLE_FIFO = 0x01;
export const FCR_CLEAR_RCVR = 0x02;
export const FCR_CLEAR_XMIT = 0x04;
export const FCR_DMA_SELECT = 0x08;
const FCR_TRIGGER_SHIFT = 6;
const RX_TRIGGER_LEVELS = [1, 4, 8, 14] as const;

// LCR
export const LCR_DLAB = 0x80;

// MCR
export const MCR_DTR = 0x01;
export const MCR_RTS = 0x02;
export const MCR_OUT1 = 0x04;
export const MCR_OUT2 = 0x08;
export const MCR_LOOP = 0x10;
const MCR_MASK = 0x1f;

// LSR
export const LSR_DR = 0x01; // data ready
export const LSR_OE = 0x02; // overrun error
export const LSR_PE = 0x04; // parity error
export const LSR_FE = 0x08; // framing error
export const LSR_BI = 0x10; // break interrupt
export const LSR_THRE = 0x20; // THR empty
export const LSR_TEMT = 0x40; // transmitter empty
export const LSR_FIFOE = 0x80; // error in RX FIFO
const LSR_ERRORS = LSR_OE | LSR_PE | LSR_FE | LSR_BI;

// MSR
export const MSR_DCTS = 0x01;
export const MSR_DDSR = 0x02;
export const MSR_TERI = 0x04;
export const MSR_DDCD = 0x08;
export const MSR_CTS = 0x10;
export const MSR_DSR = 0x20;
export const MSR_RI = 0x40;
export const MSR_DCD = 0x80;
const MSR_DELTAS = 0x0f;

export const UART_FIFO_SIZE = 16;
/** Default bound of the host-side input queue behind the RX FIFO. */
export const UART_DEFAULT_INPUT_QUEUE = 64 * 1024;

export interface Uart16550Options {
  /** The UART's interrupt line (COM1: IRQ 4). Driven as a level: raised while IIR shows a source. */
  irq: IrqLine;
  /** A byte the guest transmitted (not called in loopback mode). */
  onTransmit(byte: number): void;
  /**
   * Called when input that was refused earlier (by `receive` or `enqueueInput`) can now make
   * progress: the guest read from the FIFO and the host-side queue is empty.
   */
  onRxSpace?: () => void;
  /** Bound of the host-side input queue in bytes (default 64 KiB). */
  inputQueueSize?: number;
}

/** Uart16550.saveState(): registers, RX FIFO bytes (oldest first) and queued host input. */
export interface Uart16550State {
  ier: number; lcr: number; mcr: number; lsrErrors: number; msrDeltas: number; scr: number;
  dll: number; dlm: number; fcr: number; thrIpending: boolean; rx: number[]; queue: number[]; producerWaiting: boolean;
}

export class Uart16550 implements BusDevice, Stateful<Uart16550State> {
  /**
   * THR writes may be queued: the 8250 driver follows every burst with a read of LSR or IIR
   * (which exits and applies the queue first), so each console byte costs one exit, not two.
   */
  readonly coalescedWrites = [{ offset: UART_THR, size: 1 }] as const;
  private readonly irq: IrqLine;
  private readonly onTransmit: (byte: number) => void;
  private readonly onRxSpace: (() => void) | undefined;

  // Register state (all of it; reset() sets every field).
  private ier = 0;
  private lcr = 0;
  private mcr = 0;
  private lsrErrors = 0; // OE/PE/FE/BI, cleared by reading LSR
  private msrDeltas = 0; // DCTS/DDSR/TERI/DDCD, cleared by reading MSR
  private scr = 0;
  private dll = 0;
  private dlm = 0;
  private fcr = 0; // write-only; kept for FIFO enable and trigger level
  /** THRE interrupt pending: set when THR empties or ETBEI is enabled, cleared by IIR read / THR write. */
  private thrIpending = false;

  // RX FIFO: a ring of UART_FIFO_SIZE; capacity 1 when FIFOs are off (16450 holding register).
  private readonly rx = new Uint8Array(UART_FIFO_SIZE);
  private rxHead = 0;
  private rxCount = 0;

  // Host-side input waiting for FIFO space (bounded ring).
  private readonly queue: Uint8Array;
  private qHead = 0;
  private qCount = 0;
  private producerWaiting = false;

  constructor(opts: Uart16550Options) {
    if (opts === null || typeof opts !== 'object' || opts.irq === undefined || typeof opts.onTransmit !== 'function') {
      throw new InvalidArgumentError('Uart16550 needs { irq, onTransmit }');
    }
    const qsize = opts.inputQueueSize ?? UART_DEFAULT_INPUT_QUEUE;
    if (!Number.isSafeInteger(qsize) || qsize < 0) throw new InvalidArgumentError(`inputQueueSize must be a non-negative integer, got ${qsize}`);
    this.irq = opts.irq;
    this.onTransmit = opts.onTransmit;
    this.onRxSpace = opts.onRxSpace;
    this.queue = new Uint8Array(qsize);
    this.reset();
  }

  /** Power-on state (PC16550D datasheet, table "UART reset configuration"). Input queue is dropped. */
  reset(): void {
    this.ier = 0;
    this.lcr = 0;
    this.mcr = 0;
    this.lsrErrors = 0;
    this.msrDeltas = 0;
    this.scr = 0;
    this.dll = 0x0c; // 9600 baud from a 1.8432 MHz clock, what firmware would leave
    this.dlm = 0;
    this.fcr = 0;
    this.thrIpending = false;
    this.rxHead = 0;
    this.rxCount = 0;
    this.qHead = 0;
    this.qCount = 0;
    this.producerWaiting = false;
    this.updateIrq();
  }

  // ---- host side ----

  /**
   * Put bytes straight into the RX FIFO. Returns how many were accepted: only what fits, and
   * nothing while earlier `enqueueInput` bytes are still waiting (order is kept).
   */
  receive(bytes: Uint8Array): number {
    let n = 0;
    if (this.qCount === 0) {
      const cap = this.rxCapacity();
      while (n < bytes.length && this.rxCount < cap) this.rxPush(bytes[n++]!);
    }
    if (n < bytes.length) this.producerWaiting = true;
    if (n > 0) this.updateIrq();
    return n;
  }

  /**
   * Queue bytes for the guest; they drain into the FIFO as the guest reads. Returns how many
   * were accepted (the queue is bounded).
   */
  enqueueInput(bytes: Uint8Array): number {
    const size = this.queue.length;
    let n = 0;
    while (n < bytes.length && this.qCount < size) {
      this.queue[(this.qHead + this.qCount) % size] = bytes[n++]!;
      this.qCount++;
    }
    if (n < bytes.length) this.producerWaiting = true;
    if (this.drainQueue()) this.updateIrq();
    return n;
  }

  /** Bytes in the RX FIFO plus the host-side queue, not yet read by the guest. */
  get pendingInput(): number {
    return this.rxCount + this.qCount;
  }

  /** True while the guest has the port in loopback mode (its output does not leave the UART). */
  get loopback(): boolean {
    return (this.mcr & MCR_LOOP) !== 0;
  }

  /** Baud-rate divisor the guest programmed (DLM:DLL). */
  get divisor(): number {
    return (this.dlm << 8) | this.dll;
  }

  // ---- guest side ----

  read(offset: number, _size: number): number {
    switch (offset) {
      case UART_RBR:
        if (this.lcr & LCR_DLAB) return this.dll;
        return this.readRbr();
      case UART_IER:
        if (this.lcr & LCR_DLAB) return this.dlm;
        return this.ier;
      case UART_IIR: {
        const iir = this.iir();
        // Reading IIR acknowledges a THRE interrupt when that is what it reported.
        if ((iir & 0x0f) === IIR_THRI) {
          this.thrIpending = false;
          this.updateIrq();
        }
        return iir;
      }
      case UART_LCR:
        return this.lcr;
      case UART_MCR:
        return this.mcr;
      case UART_LSR: {
        const lsr = this.lsr();
        if (this.lsrErrors !== 0) {
          this.lsrErrors = 0;
          this.updateIrq();
        }
        return lsr;
      }
      case UART_MSR: {
        const msr = this.modemLines() | this.msrDeltas;
        if (this.msrDeltas !== 0) {
          this.msrDeltas = 0;
          this.updateIrq();
        }
        return msr;
      }
      case UART_SCR:
        return this.scr;
      default:
        return 0xff;
    }
  }

  write(offset: number, _size: number, value: number): void {
    const v = value & 0xff;
    switch (offset) {
      case UART_THR:
        if (this.lcr & LCR_DLAB) {
          this.dll = v;
          return;
        }
        this.transmit(v);
        return;
      case UART_IER: {
        if (this.lcr & LCR_DLAB) {
          this.dlm = v;
          return;
        }
        const changed = (this.ier ^ v) & IER_MASK;
        this.ier = v & IER_MASK;
        // Enabling ETBEI with THR empty raises THRE at once; Linux's 8250 startup tests for this
        // (UART_BUG_TXEN / UART_BUG_THRE) by toggling IER and reading IIR.
        if (changed & IER_ETBEI) this.thrIpending = (this.ier & IER_ETBEI) !== 0;
        this.updateIrq();
        return;
      }
      case UART_FCR:
        this.writeFcr(v);
        return;
      case UART_LCR:
        this.lcr = v;
        return;
      case UART_MCR: {
        const before = this.modemLines();
        this.mcr = v & MCR_MASK;
        this.noteModemChange(before, this.modemLines());
        this.updateIrq();
        return;
      }
      case UART_LSR:
      case UART_MSR:
        return; // read-only (factory test writes are not modelled)
      case UART_SCR:
        this.scr = v;
        return;
      default:
        return;
    }
  }

  // ---- internals ----

  private fifoEnabled(): boolean {
    return (this.fcr & FCR_ENABLE_FIFO) !== 0;
  }

  private rxCapacity(): number {
    return this.fifoEnabled() ? UART_FIFO_SIZE : 1;
  }

  private rxTrigger(): number {
    return this.fifoEnabled() ? RX_TRIGGER_LEVELS[(this.fcr >> FCR_TRIGGER_SHIFT) & 3]! : 1;
  }

  private rxPush(byte: number): boolean {
    if (this.rxCount >= this.rxCapacity()) {
      this.lsrErrors |= LSR_OE; // the new byte is lost, as on the chip
      return false;
    }
    this.rx[(this.rxHead + this.rxCount) % UART_FIFO_SIZE] = byte;
    this.rxCount++;
    return true;
  }

  private readRbr(): number {
    if (this.rxCount === 0) return 0;
    const byte = this.rx[this.rxHead]!;
    this.rxHead = (this.rxHead + 1) % UART_FIFO_SIZE;
    this.rxCount--;
    this.drainQueue();
    this.updateIrq();
    if (this.producerWaiting && this.qCount === 0) {
      this.producerWaiting = false;
      if (this.onRxSpace !== undefined) this.onRxSpace();
    }
    return byte;
  }

  /** Move queued host input into the FIFO. Returns true when something moved. */
  private drainQueue(): boolean {
    const cap = this.rxCapacity();
    const size = this.queue.length;
    let moved = false;
    while (this.qCount > 0 && this.rxCount < cap) {
      this.rxPush(this.queue[this.qHead]!);
      this.qHead = (this.qHead + 1) % size;
      this.qCount--;
      moved = true;
    }
    return moved;
  }

  private transmit(byte: number): void {
    if (this.mcr & MCR_LOOP) {
      // Loopback: the serial output is wired internally to the serial input.
      this.rxPush(byte);
    } else {
      this.onTransmit(byte);
    }
    // THR emptied again at once: writing THR acknowledges the old THRE interrupt and the
    // now-empty THR raises a new one.
    this.thrIpending = true;
    this.updateIrq();
  }

  private writeFcr(v: number): void {
    const wasEnabled = this.fifoEnabled();
    const enable = (v & FCR_ENABLE_FIFO) !== 0;
    if (enable !== wasEnabled) {
      // Switching FIFO mode clears both FIFOs.
      this.rxHead = 0;
      this.rxCount = 0;
    }
    // With FIFOs off the other FCR bits cannot be programmed.
    this.fcr = enable ? v & (FCR_ENABLE_FIFO | FCR_DMA_SELECT | (3 << FCR_TRIGGER_SHIFT)) : 0;
    if (enable && v & FCR_CLEAR_RCVR) {
      this.rxHead = 0;
      this.rxCount = 0;
    }
    this.drainQueue();
    this.updateIrq();
  }

  private lsr(): number {
    let lsr = LSR_THRE | LSR_TEMT | this.lsrErrors;
    if (this.rxCount > 0) lsr |= LSR_DR;
    return lsr;
  }

  /** MSR bits 4-7: the modem inputs, or in loopback the MCR outputs wired back to them. */
  private modemLines(): number {
    if (this.mcr & MCR_LOOP) {
      let m = 0;
      if (this.mcr & MCR_RTS) m |= MSR_CTS;
      if (this.mcr & MCR_DTR) m |= MSR_DSR;
      if (this.mcr & MCR_OUT1) m |= MSR_RI;
      if (this.mcr & MCR_OUT2) m |= MSR_DCD;
      return m;
    }
    // A host that is always there: carrier, data set ready and clear to send.
    return MSR_DCD | MSR_DSR | MSR_CTS;
  }

  private noteModemChange(before: number, after: number): void {
    const changed = before ^ after;
    if (changed & MSR_CTS) this.msrDeltas |= MSR_DCTS;
    if (changed & MSR_DSR) this.msrDeltas |= MSR_DDSR;
    if (changed & MSR_DCD) this.msrDeltas |= MSR_DDCD;
    if (before & MSR_RI && !(after & MSR_RI)) this.msrDeltas |= MSR_TERI; // trailing edge only
  }

  /** IIR value, highest-priority source first. */
  private iir(): number {
    const fifo = this.fifoEnabled() ? IIR_FIFO_ENABLED : 0;
    if (this.ier & IER_ELSI && this.lsrErrors !== 0) return fifo | IIR_RLSI;
    if (this.ier & IER_ERBFI && this.rxCount > 0) {
      return fifo | (this.rxCount >= this.rxTrigger() ? IIR_RDI : IIR_CTI);
    }
    if (this.ier & IER_ETBEI && this.thrIpending) return fifo | IIR_THRI;
    if (this.ier & IER_EDSSI && this.msrDeltas & MSR_DELTAS) return fifo | IIR_MSI;
    return fifo | IIR_NO_INT;
  }

  /** Registers, RX FIFO and host input queue as plain data (snapshots). */
  saveState(): Uart16550State {
    const q: number[] = [];
    for (let i = 0; i < this.qCount; i++) q.push(this.queue[(this.qHead + i) % this.queue.length]!);
    const rx: number[] = [];
    for (let i = 0; i < this.rxCount; i++) rx.push(this.rx[(this.rxHead + i) % UART_FIFO_SIZE]!);
    return {
      ier: this.ier, lcr: this.lcr, mcr: this.mcr, lsrErrors: this.lsrErrors, msrDeltas: this.msrDeltas, scr: this.scr,
      dll: this.dll, dlm: this.dlm, fcr: this.fcr, thrIpending: this.thrIpending, rx, queue: q, producerWaiting: this.producerWaiting,
    };
  }

  /** Put back what saveState() returned; the IRQ line follows the restored registers. */
  loadState(s: Uart16550State): void {
    this.ier = s.ier; this.lcr = s.lcr; this.mcr = s.mcr; this.lsrErrors = s.lsrErrors; this.msrDeltas = s.msrDeltas;
    this.scr = s.scr; this.dll = s.dll; this.dlm = s.dlm; this.fcr = s.fcr; this.thrIpending = s.thrIpending;
    const rx = s.rx.slice(0, UART_FIFO_SIZE);
    this.rx.set(rx);
    this.rxHead = 0;
    this.rxCount = rx.length;
    const q = s.queue.slice(0, this.queue.length);
    this.queue.set(q);
    this.qHead = 0;
    this.qCount = q.length;
    this.producerWaiting = s.producerWaiting;
    this.updateIrq();
  }

  private updateIrq(): void {
    if (this.iir() & IIR_NO_INT) this.irq.lower();
    else this.irq.raise();
  }
}
