import type { IrqLine } from './device.js';

/** The one operation an IrqLine needs from the VM (Vm.irqLine satisfies it). */
export interface IrqSink {
  /** Set GSI `irq` to `level`. */
  irqLine(irq: number, level: boolean): void;
}

/** An IrqLine on GSI `irq` of the in-kernel irqchip. Tracks level to skip redundant ioctls. */
export class KvmIrqLine implements IrqLine {
  private level = false;
  /**
   * @param sink what drives the line (a Vm)
   * @param irq the GSI
   */
  constructor(private readonly sink: IrqSink, readonly irq: number) {}
  raise(): void {
    if (this.level) return;
    this.level = true;
    this.sink.irqLine(this.irq, true);
  }
  lower(): void {
    if (!this.level) return;
    this.level = false;
    this.sink.irqLine(this.irq, false);
  }
  pulse(): void {
    this.sink.irqLine(this.irq, true);
    this.sink.irqLine(this.irq, false);
    this.level = false;
  }
  /** True while the line is raised. */
  get asserted(): boolean {
    return this.level;
  }
}

/** An IrqLine that only records, for unit tests and unwired devices. */
export class RecordingIrqLine implements IrqLine {
  level = false;
  pulses = 0;
  raise(): void { this.level = true; }
  lower(): void { this.level = false; }
  pulse(): void { this.pulses++; }
}

/**
 * A level-triggered line several devices share, as PCI INTx# is wired-OR (open drain): it is
 * asserted while any of its sources asserts it. Each device gets its own source(); without
 * this, one device deasserting would drop the line under another that still asserts it.
 */
export class WiredOrIrqLine {
  private asserted = 0;
  constructor(private readonly line: IrqLine) {}

  /** A new input of the line, for one device. */
  source(): IrqLine {
    let up = false;
    return {
      raise: () => {
        if (up) return;
        up = true;
        if (this.asserted++ === 0) this.line.raise();
      },
      lower: () => {
        if (!up) return;
        up = false;
        if (--this.asserted === 0) this.line.lower();
      },
      pulse: () => {
        // An edge on a shared level line: only seen while nobody holds the line up.
        if (this.asserted === 0) this.line.pulse();
      },
    };
  }
}
