// Ports a PC has but we do not model: the POST/diagnostic port 0x80 (Linux writes it as an I/O
// delay), DMA page registers and the like. A sink claims them so they are not counted as bus
// misses, reads back a fixed value, and remembers the last byte written (the POST code, handy
// when a test guest reports progress there).
import { InvalidArgumentError } from '../errors.js';
import type { BusDevice } from '../bus/device.js';

export interface SinkOptions {
  /** What reads return (masked to the access size). Default all-ones, like an empty ISA slot. */
  readValue?: number;
  /** Observe writes (e.g. POST codes). */
  onWrite?: (offset: number, size: number, value: number) => void;
}

export class Sink implements BusDevice {
  private readonly readValue: number;
  private readonly onWrite: ((offset: number, size: number, value: number) => void) | undefined;
  /** Writes seen since reset. */
  writes = 0;
  /** Last value written (-1 before any write). */
  lastValue = -1;

  constructor(opts: SinkOptions = {}) {
    const rv = opts.readValue ?? 0xffff_ffff;
    if (!Number.isInteger(rv) || rv < 0 || rv > 0xffff_ffff) throw new InvalidArgumentError(`readValue must be a 32-bit unsigned integer, got ${rv}`);
    this.readValue = rv;
    this.onWrite = opts.onWrite;
  }

  reset(): void {
    this.writes = 0;
    this.lastValue = -1;
  }

  read(_offset: number, size: number): number {
    return size >= 4 ? this.readValue : this.readValue & ((1 << (size * 8)) - 1);
  }

  write(offset: number, size: number, value: number): void {
    this.writes++;
    this.lastValue = value;
    if (this.onWrite !== undefined) this.onWrite(offset, size, value);
  }
}
