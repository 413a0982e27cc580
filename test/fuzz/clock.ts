// Time for the fuzzers: a clock that only moves when the generator says so, and device timers
// that fire when the generator runs them, so a seed replays the same interrupts.
import type { Clock } from '../../lib/bus/device.js';
import type { DeviceTimers } from '../../lib/devices/rtl8139/timer.js';

export class FakeClock implements Clock {
  ns = 0n;
  nowNs(): bigint {
    return this.ns;
  }
  advance(ns: number): void {
    this.ns += BigInt(Math.max(0, Math.floor(ns)));
  }
}

interface Pending {
  at: bigint;
  callback: () => void;
  live: boolean;
}

export class FakeTimers implements DeviceTimers {
  private pending: Pending[] = [];
  /** Most timers ever pending at once (a device that schedules without cancelling leaks). */
  maxPending = 0;

  constructor(private readonly clock: FakeClock) {}

  schedule(delayNs: number, callback: () => void): () => void {
    const p: Pending = { at: this.clock.ns + BigInt(Math.max(0, Math.ceil(delayNs))), callback, live: true };
    this.pending.push(p);
    this.pending = this.pending.filter((x) => x.live);
    this.maxPending = Math.max(this.maxPending, this.pending.length);
    return () => { p.live = false; };
  }

  get live(): number {
    return this.pending.filter((x) => x.live).length;
  }

  /**
   * Run due timers until none is left (work a device deferred to a later turn, and what that
   * turn deferred again). A device that keeps deferring forever is a bug.
   */
  drain(maxRounds = 100_000): void {
    for (let i = 0; i < maxRounds; i++) if (this.runDue() === 0) return;
    throw new Error(`a device still defers work after ${maxRounds} turns`);
  }

  /** Fire every live timer that is due, in deadline order. Returns how many fired. */
  runDue(): number {
    const due = this.pending.filter((p) => p.live && p.at <= this.clock.ns).sort((a, z) => (a.at < z.at ? -1 : a.at > z.at ? 1 : 0));
    this.pending = this.pending.filter((p) => p.live && p.at > this.clock.ns);
    for (const p of due) {
      if (!p.live) continue; // cancelled by an earlier callback
      p.live = false;
      p.callback();
    }
    return due.length;
  }
}

/**
 * Options of the NIC's bounded work per turn (issue 17 item 1, branch hard-net: `defer` and
 * `workLimits`): deferred turns go through the fake timers, which the fuzzers run between
 * operations, and the wall-clock limit is off so that a seed replays the same turns. A NIC
 * without these options ignores them.
 */
export function boundedWorkOptions(timers: FakeTimers): Record<string, unknown> {
  return {
    defer: (callback: () => void): (() => void) => timers.schedule(0, callback),
    workLimits: { segments: 512, bytes: 1024 * 1024, ms: Number.POSITIVE_INFINITY },
  };
}
