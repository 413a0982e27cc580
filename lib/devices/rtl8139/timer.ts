// TCTR (Timer) and TimerInt: a 32-bit counter running at the PCI clock (33 MHz) from the
// injected Clock; when it reaches a non-zero TimerInt the chip sets ISR.TimeOut. Any write to
// TCTR restarts the count from zero.
import type { Clock } from '../../bus/device.js';

/** Schedules a callback after `delayNs`; returns a cancel function. */
export interface DeviceTimers {
  schedule(delayNs: number, callback: () => void): () => void;
}

/** Host timers: unref'd so an idle NIC never keeps Node alive. */
export const hostTimers: DeviceTimers = {
  schedule(delayNs, callback) {
    const t = setTimeout(callback, Math.max(0, Math.ceil(delayNs / 1e6)));
    t.unref();
    return () => clearTimeout(t);
  },
};

const PCI_HZ = 33_000_000n;
const NS_PER_S = 1_000_000_000n;
const WRAP = 0x1_0000_0000n;

/** Rtl8139Timer.saveState(). */
export interface TimerState {
  interval: number;
  elapsedNs: string;
}

export class Rtl8139Timer {
  private base = 0n;
  private interval = 0;
  /** Absolute clock time (ns) of the next TimeOut, or undefined when TimerInt is 0. */
  private deadline: bigint | undefined;
  private cancel: (() => void) | undefined;
  private closed = false;

  constructor(private readonly clock: Clock, private readonly timers: DeviceTimers = hostTimers,
    private readonly onTimeout: () => void) {}

  reset(): void {
    this.interval = 0;
    this.restart();
  }

  /** TimerInt and the counter's age in ns (decimal), so TCTR continues from it on any clock. */
  saveState(): TimerState {
    return { interval: this.interval, elapsedNs: (this.clock.nowNs() - this.base).toString() };
  }

  loadState(s: TimerState): void {
    this.base = this.clock.nowNs() - BigInt(s.elapsedNs);
    this.interval = s.interval >>> 0;
    this.arm();
  }

  /** Ticks since the last restart, modulo 2^32. */
  get tctr(): number {
    return Number(((this.clock.nowNs() - this.base) * PCI_HZ / NS_PER_S) % WRAP);
  }

  restart(): void {
    this.base = this.clock.nowNs();
    this.arm();
  }

  setInterval(ticks: number): void {
    this.interval = ticks >>> 0;
    this.arm();
  }

  /** Fire a TimeOut that is due (called on register access and from the host timer). */
  poll(): void {
    if (this.deadline === undefined) return;
    const now = this.clock.nowNs();
    if (now < this.deadline) return;
    // The counter passes TimerInt once per 2^32 ticks; catch up without firing repeatedly.
    const period = WRAP * NS_PER_S / PCI_HZ;
    while (this.deadline <= now) this.deadline += period;
    this.onTimeout();
    this.schedule();
  }

  close(): void {
    this.closed = true;
    this.cancel?.();
    this.cancel = undefined;
  }

  private arm(): void {
    if (this.interval === 0) {
      this.deadline = undefined;
      this.cancel?.();
      this.cancel = undefined;
      return;
    }
    const elapsed = (this.clock.nowNs() - this.base) * PCI_HZ / NS_PER_S;
    const target = BigInt(this.interval);
    let ticks = target - (elapsed % WRAP);
    if (ticks <= 0n) ticks += WRAP;
    // Round up so the deadline never precedes the tick that matches.
    this.deadline = this.clock.nowNs() + (ticks * NS_PER_S + PCI_HZ - 1n) / PCI_HZ;
    this.schedule();
  }

  private schedule(): void {
    this.cancel?.();
    this.cancel = undefined;
    if (this.closed || this.deadline === undefined) return;
    const delay = Number(this.deadline - this.clock.nowNs());
    this.cancel = this.timers.schedule(Math.max(0, delay), () => {
      this.cancel = undefined;
      if (this.deadline !== undefined && this.clock.nowNs() < this.deadline) this.schedule(); // woke early
      else this.poll();
    });
  }
}
