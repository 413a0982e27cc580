// Intel 8042 keyboard controller, as much of it as Linux needs: its i8042 driver's probe
// (flush, self-test, CTR read/write, port tests), a keyboard that acknowledges atkbd's commands,
// no AUX (mouse) port, and the CPU reset line used by `reboot=k` (command 0xFE, or an output-port
// write with bit 0 low).
//
// The device decodes five ports from 0x60: offset 0 data (0x60), offset 4 status/command (0x64),
// and offset 1 is port 0x61, "system control port B" of the AT chipset: with KVM's in-kernel
// PIT that port never exits to us, but without it some Linux calibration loops wait on bit 4/5
// toggling, so we keep it here and make those bits toggle on each read.
import { InvalidArgumentError } from '../errors.js';
import type { BusDevice, IrqLine } from '../bus/device.js';
import type { Stateful } from './stateful.js';

export const I8042_DATA = 0; // 0x60
export const I8042_PORT_B = 1; // 0x61 system control port B
export const I8042_STATUS = 4; // 0x64 read
export const I8042_COMMAND = 4; // 0x64 write
/** Ports decoded from the base (0x60-0x64). */
export const I8042_IO_SIZE = 5;

// Status register
export const STR_OBF = 0x01; // output buffer full
export const STR_IBF = 0x02; // input buffer full (never: we consume writes at once)
export const STR_SYSFLAG = 0x04; // set after a passed self-test
export const STR_CMDDAT = 0x08; // last write went to the command port
export const STR_KEYLOCK = 0x10; // 1 = keyboard not inhibited
export const STR_AUXDATA = 0x20; // output byte comes from the AUX port
export const STR_TIMEOUT = 0x40;
export const STR_PARITY = 0x80;

// Controller command byte (CTR)
export const CTR_KBDINT = 0x01;
export const CTR_AUXINT = 0x02;
export const CTR_SYSFLAG = 0x04;
export const CTR_IGNKEYLOCK = 0x08;
export const CTR_KBDDIS = 0x10;
export const CTR_AUXDIS = 0x20;
export const CTR_XLATE = 0x40;

// Controller commands (port 0x64)
export const CMD_CTL_RCTR = 0x20; // 0x20-0x3f read internal RAM (0x20 = CTR)
export const CMD_CTL_WCTR = 0x60; // 0x60-0x7f write internal RAM (0x60 = CTR)
export const CMD_AUX_DISABLE = 0xa7;
export const CMD_AUX_ENABLE = 0xa8;
export const CMD_AUX_TEST = 0xa9;
export const CMD_CTL_TEST = 0xaa;
export const CMD_KBD_TEST = 0xab;
export const CMD_KBD_DISABLE = 0xad;
export const CMD_KBD_ENABLE = 0xae;
export const CMD_READ_INPUT = 0xc0;
export const CMD_READ_OUTPUT = 0xd0;
export const CMD_WRITE_OUTPUT = 0xd1;
export const CMD_KBD_LOOP = 0xd2;
export const CMD_AUX_LOOP = 0xd3;
export const CMD_AUX_SEND = 0xd4;
export const CMD_PULSE_FIRST = 0xf0; // 0xf0-0xff: pulse output-port bits whose mask bit is 0
export const CMD_RESET = 0xfe;

// Output port
export const OUTP_RESET = 0x01; // low = CPU reset asserted
export const OUTP_A20 = 0x02;

// Replies
export const CTL_TEST_OK = 0x55;
export const PORT_TEST_OK = 0x00;
/** AUX interface test reply meaning "clock line stuck low": Linux concludes there is no AUX port. */
export const AUX_TEST_NO_DEVICE = 0x01;

// PS/2 keyboard commands and replies (written to port 0x60 with no controller command pending)
const KBD_ACK = 0xfa;
const KBD_BAT_OK = 0xaa;
const KBD_CMD_SETLEDS = 0xed;
const KBD_CMD_ECHO = 0xee;
const KBD_CMD_SSCANSET = 0xf0;
const KBD_CMD_GETID = 0xf2;
const KBD_CMD_SETREP = 0xf3;
const KBD_CMD_RESET = 0xff;
const KBD_ID = [0xab, 0x83] as const; // MF2 keyboard

// Port B (0x61)
const PORTB_WRITABLE = 0x0f; // timer 2 gate, speaker data, parity/IO-check enables
const PORTB_REFRESH = 0x10; // toggles every ~15 µs on real hardware
const PORTB_OUT2 = 0x20; // PIT channel 2 output

const OUTPUT_QUEUE_SIZE = 16;

export interface I8042Options {
  /** Keyboard interrupt (IRQ 1). */
  irq?: IrqLine;
  /** The guest asked the controller to reset the CPU (reboot=k). */
  onReset(): void;
}

/** I8042.saveState(): `out` holds queued bytes oldest first, bit 8 = from the AUX port. */
export interface I8042State {
  ram: number[]; status: number; outputPort: number; pendingCommand: number; kbdPending: number;
  scanSet: number; portB: number; out: number[];
}

export class I8042 implements BusDevice, Stateful<I8042State> {
  private readonly irq: IrqLine | undefined;
  private readonly onReset: () => void;

  // State.
  private readonly ram = new Uint8Array(32); // ram[0] is the CTR
  private status = 0;
  private outputPort = 0;
  /** Controller command waiting for its data byte on port 0x60 (0 = none). */
  private pendingCommand = 0;
  /** Keyboard command waiting for its argument byte (0 = none). */
  private kbdPending = 0;
  private scanSet = 2;
  private portB = 0;
  // Output buffer queue: byte values; the AUX flag rides in bit 8.
  private readonly out = new Uint16Array(OUTPUT_QUEUE_SIZE);
  private outHead = 0;
  private outCount = 0;

  constructor(opts: I8042Options) {
    if (opts === null || typeof opts !== 'object' || typeof opts.onReset !== 'function') {
      throw new InvalidArgumentError('I8042 needs { onReset, irq? }');
    }
    this.irq = opts.irq;
    this.onReset = opts.onReset;
    this.reset();
  }

  reset(): void {
    this.ram.fill(0);
    this.ram[0] = CTR_KBDINT | CTR_SYSFLAG | CTR_XLATE; // what a BIOS leaves behind
    this.status = STR_KEYLOCK | STR_SYSFLAG;
    this.outputPort = OUTP_RESET | OUTP_A20;
    this.pendingCommand = 0;
    this.kbdPending = 0;
    this.scanSet = 2;
    this.portB = 0;
    this.outHead = 0;
    this.outCount = 0;
    this.updateIrq();
  }

  /** The controller command byte. */
  get ctr(): number {
    return this.ram[0]!;
  }

  /** Host-side key input: raw scancode bytes as the keyboard would send them. */
  sendScancodes(bytes: Uint8Array): void {
    if (this.ctr & CTR_KBDDIS) return; // the controller inhibits the keyboard clock
    for (const b of bytes) this.push(b, false);
    this.updateIrq();
  }

  read(offset: number, _size: number): number {
    switch (offset) {
      case I8042_DATA:
        return this.readData();
      case I8042_PORT_B:
        // Refresh and PIT OUT2 toggle on each read so polling loops make progress.
        this.portB ^= PORTB_REFRESH | PORTB_OUT2;
        return this.portB;
      case I8042_STATUS: {
        let s = this.status;
        if (this.outCount > 0) {
          s |= STR_OBF;
          if (this.out[this.outHead]! & 0x100) s |= STR_AUXDATA;
        }
        return s;
      }
      default:
        return 0xff;
    }
  }

  write(offset: number, _size: number, value: number): void {
    const v = value & 0xff;
    switch (offset) {
      case I8042_DATA:
        this.status &= ~STR_CMDDAT;
        this.writeData(v);
        return;
      case I8042_PORT_B:
        this.portB = (this.portB & ~PORTB_WRITABLE) | (v & PORTB_WRITABLE);
        return;
      case I8042_COMMAND:
        this.status |= STR_CMDDAT;
        this.command(v);
        return;
      default:
        return;
    }
  }

  private readData(): number {
    if (this.outCount === 0) return 0; // real controllers return the stale latch; 0 is as good
    const v = this.out[this.outHead]! & 0xff;
    this.outHead = (this.outHead + 1) % OUTPUT_QUEUE_SIZE;
    this.outCount--;
    // One byte per interrupt, as the chip presents them: drop the line so that the next byte
    // (if any) makes a fresh edge on the ISA PIC.
    if (this.irq !== undefined) this.irq.lower();
    this.updateIrq();
    return v;
  }

  private command(cmd: number): void {
    // A command's reply supersedes unread bytes, so a probe that gave up on one reply reads the
    // next one, not a leftover.
    this.outCount = 0;
    this.pendingCommand = 0;
    if (cmd >= 0x20 && cmd <= 0x3f) {
      this.push(this.ram[cmd - 0x20]!, false);
    } else if (cmd >= 0x60 && cmd <= 0x7f) {
      this.pendingCommand = cmd;
    } else if (cmd >= CMD_PULSE_FIRST) {
      // Pulse the output-port lines whose mask bit is 0; line 0 is the CPU reset.
      if ((cmd & OUTP_RESET) === 0) this.onReset();
    } else {
      switch (cmd) {
        case CMD_AUX_DISABLE: this.ram[0]! |= CTR_AUXDIS; break;
        case CMD_AUX_ENABLE: this.ram[0]! &= ~CTR_AUXDIS; break;
        case CMD_AUX_TEST: this.push(AUX_TEST_NO_DEVICE, false); break;
        case CMD_CTL_TEST:
          this.status |= STR_SYSFLAG;
          this.push(CTL_TEST_OK, false);
          break;
        case CMD_KBD_TEST: this.push(PORT_TEST_OK, false); break;
        case CMD_KBD_DISABLE: this.ram[0]! |= CTR_KBDDIS; break;
        case CMD_KBD_ENABLE: this.ram[0]! &= ~CTR_KBDDIS; break;
        case CMD_READ_INPUT: this.push(0x00, false); break;
        case CMD_READ_OUTPUT: this.push(this.outputPort, false); break;
        case CMD_WRITE_OUTPUT:
        case CMD_KBD_LOOP:
        case CMD_AUX_LOOP:
        case CMD_AUX_SEND:
          this.pendingCommand = cmd;
          break;
        default:
          break; // unknown commands are ignored, as by most chipsets
      }
    }
    this.updateIrq();
  }

  private writeData(v: number): void {
    const cmd = this.pendingCommand;
    this.pendingCommand = 0;
    if (cmd >= 0x60 && cmd <= 0x7f) {
      this.ram[cmd - 0x60] = v;
      if (cmd === CMD_CTL_WCTR) {
        // The CTR's system flag is reflected in the status register.
        this.status = (this.status & ~STR_SYSFLAG) | (v & CTR_SYSFLAG ? STR_SYSFLAG : 0);
      }
    } else if (cmd === CMD_WRITE_OUTPUT) {
      const wasHigh = (this.outputPort & OUTP_RESET) !== 0;
      this.outputPort = v;
      if (wasHigh && (v & OUTP_RESET) === 0) this.onReset();
    } else if (cmd === CMD_KBD_LOOP) {
      this.push(v, false);
    } else if (cmd === CMD_AUX_LOOP) {
      // There is no AUX port wired: the echo comes back without STR_AUXDATA, which Linux's
      // i8042_check_aux() reads as "no AUX loopback" at once instead of timing out.
      this.push(v, false);
    } else if (cmd === CMD_AUX_SEND) {
      // Nothing on the AUX port to receive it.
    } else {
      this.keyboardCommand(v);
    }
    this.updateIrq();
  }

  /** The keyboard itself (atkbd's probe): acknowledge, answer GETID, take arguments. */
  private keyboardCommand(v: number): void {
    // Writing to the keyboard re-enables its clock.
    this.ram[0]! &= ~CTR_KBDDIS;
    const pending = this.kbdPending;
    if (pending !== 0) {
      this.kbdPending = 0;
      if (pending === KBD_CMD_SSCANSET) {
        this.push(KBD_ACK, false);
        if (v === 0) this.push(this.scanSet, false);
        else if (v >= 1 && v <= 3) this.scanSet = v;
        return;
      }
      this.push(KBD_ACK, false);
      return;
    }
    switch (v) {
      case KBD_CMD_RESET:
        this.scanSet = 2;
        this.push(KBD_ACK, false);
        this.push(KBD_BAT_OK, false);
        break;
      case KBD_CMD_GETID:
        this.push(KBD_ACK, false);
        this.push(KBD_ID[0], false);
        this.push(KBD_ID[1], false);
        break;
      case KBD_CMD_ECHO:
        this.push(KBD_CMD_ECHO, false);
        break;
      case KBD_CMD_SETLEDS:
      case KBD_CMD_SETREP:
      case KBD_CMD_SSCANSET:
        this.kbdPending = v;
        this.push(KBD_ACK, false);
        break;
      default:
        this.push(KBD_ACK, false); // enable, disable, defaults, set-all-keys…
        break;
    }
  }

  private push(byte: number, aux: boolean): void {
    if (this.outCount >= OUTPUT_QUEUE_SIZE) return; // the guest is not reading: drop
    this.out[(this.outHead + this.outCount) % OUTPUT_QUEUE_SIZE] = byte | (aux ? 0x100 : 0);
    this.outCount++;
  }

  /** Controller RAM, status, ports, pending commands and the output queue as plain data. */
  saveState(): I8042State {
    const out: number[] = [];
    for (let i = 0; i < this.outCount; i++) out.push(this.out[(this.outHead + i) % OUTPUT_QUEUE_SIZE]!);
    return {
      ram: Array.from(this.ram), status: this.status, outputPort: this.outputPort, pendingCommand: this.pendingCommand,
      kbdPending: this.kbdPending, scanSet: this.scanSet, portB: this.portB, out,
    };
  }

  loadState(s: I8042State): void {
    this.ram.set(s.ram.slice(0, this.ram.length));
    this.status = s.status; this.outputPort = s.outputPort; this.pendingCommand = s.pendingCommand;
    this.kbdPending = s.kbdPending; this.scanSet = s.scanSet; this.portB = s.portB;
    const out = s.out.slice(0, OUTPUT_QUEUE_SIZE);
    this.out.set(out);
    this.outHead = 0;
    this.outCount = out.length;
    this.updateIrq();
  }

  private updateIrq(): void {
    if (this.irq === undefined) return;
    const kbdByte = this.outCount > 0 && (this.out[this.outHead]! & 0x100) === 0;
    if (kbdByte && this.ctr & CTR_KBDINT) this.irq.raise();
    else this.irq.lower();
  }
}
