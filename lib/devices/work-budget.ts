// How much work one guest action may start on the main thread before the rest waits for a
// later turn of the event loop (DESIGN §4: the main thread runs vCPU 0, the event loop and
// every other VM of the process). A device that can be told to do a lot at once (a TX ring of
// LargeSend descriptors, a flood of received frames) spends a WorkBudget per turn and, when it
// runs out, defers the rest with a DeferWork, as real hardware keeps working while the CPU
// runs. The limits count frames (or TCP segments) and bytes, which is what the work costs, and
// a wall-clock bound backs them up on a slow host (a cold JIT, the nested lab's TCG).
import { InvalidArgumentError } from '../errors.js';

/** Limits of one turn. */
export interface WorkLimits {
  /** Frames or segments produced, descriptors walked. */
  segments: number;
  /** Bytes copied, checksummed or written. */
  bytes: number;
  /** Wall-clock milliseconds. */
  ms: number;
}

/**
 * Per-turn limits for the NIC: about a millisecond of warm JIT code here (a small segment costs
 * ~1 µs warm, a byte of copy and checksum a few ns; 1 MiB is sixteen 64 KiB TSO frames, far
 * more than 8139cp queues per TxPoll), so one turn never holds the thread for long, and the
 * clock stops it at 2 ms where the code runs slower (cold JIT, the ~10x slower nested lab).
 */
export const DEFAULT_WORK_LIMITS: Readonly<WorkLimits> = { segments: 512, bytes: 1024 * 1024, ms: 2 };

/** Run `callback` on a later turn of the event loop; returns a function that cancels it. */
export type DeferWork = (callback: () => void) => () => void;

/** setImmediate: the turn after the current exit's. */
export const deferImmediate: DeferWork = (callback) => {
  const h = setImmediate(callback);
  return () => clearImmediate(h);
};

export class WorkBudget {
  private segmentsLeft = 0;
  private bytesLeft = 0;
  /** Time spent inside enter()/leave() this turn, and when the current stretch began. */
  private usedMs = 0;
  private since: number | undefined;
  /** Work done since the last refill (for counters and tests). */
  spentSegments = 0;
  spentBytes = 0;

  constructor(readonly limits: Readonly<WorkLimits> = DEFAULT_WORK_LIMITS, private readonly now: () => number = () => performance.now()) {
    for (const k of ['segments', 'bytes', 'ms'] as const) {
      const v = limits[k];
      if (typeof v !== 'number' || !(v > 0)) throw new InvalidArgumentError(`work limit ${k} must be a positive number, got ${v}`);
    }
  }

  /** Start a turn. */
  refill(): void {
    this.segmentsLeft = this.limits.segments;
    this.bytesLeft = this.limits.bytes;
    this.spentSegments = 0;
    this.spentBytes = 0;
    this.usedMs = 0;
    if (this.since !== undefined) this.since = this.now();
  }

  /**
   * The device starts working (its clock runs until leave()). Only this time counts against
   * `limits.ms`: the guest runs between two exits of a turn, and that is not ours to bound.
   */
  enter(): void {
    if (this.since === undefined) this.since = this.now();
  }

  leave(): void {
    if (this.since === undefined) return;
    this.usedMs += this.now() - this.since;
    this.since = undefined;
  }

  spend(segments: number, bytes: number): void {
    this.segmentsLeft -= segments;
    this.bytesLeft -= bytes;
    this.spentSegments += segments;
    this.spentBytes += bytes;
  }

  /** Segments that may still be produced this turn (at least 0). */
  get segments(): number {
    return Math.max(0, this.segmentsLeft);
  }

  /**
   * True once any limit is reached: defer the rest. The clock counts only after a quarter of
   * the segments, so that a little work (a few frames through cold code) always completes in
   * the turn that started it, as drivers and tests expect of a short transmit.
   */
  get exhausted(): boolean {
    if (this.segmentsLeft <= 0 || this.bytesLeft <= 0) return true;
    if (this.spentSegments * 4 < this.limits.segments) return false;
    return this.usedMs + (this.since !== undefined ? this.now() - this.since : 0) >= this.limits.ms;
  }

  /** How many more items of `bytesEach` fit in this turn (at least 0). */
  fits(bytesEach: number): number {
    if (this.exhausted) return 0;
    return Math.max(0, Math.min(this.segmentsLeft, Math.ceil(this.bytesLeft / Math.max(1, bytesEach))));
  }
}

/**
 * A WorkBudget per turn of the event loop. Work started from a guest exit and work a backend
 * delivers in one callback share the budget until the turn ends (a queued microtask marks the
 * end: the run loop runs them only when it yields to the event loop, so every exit of one pump
 * slice counts against the same budget). A deferred turn is a new turn by construction.
 */
export class TurnBudget extends WorkBudget {
  private armed = false;

  /**
   * Call before any work (and leave() after it): refills at the first work of a turn, or
   * always when `fresh`, and starts the work clock.
   */
  begin(fresh = false): void {
    this.enter();
    if (this.armed && !fresh) return;
    this.refill();
    if (this.armed) return;
    this.armed = true;
    queueMicrotask(() => { this.armed = false; });
  }
}
