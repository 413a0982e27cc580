// Watches how long the main thread keeps the event loop away: a setInterval(…, 10) notes the
// time between its ticks. On a loaded machine (two cores shared by many jobs, the nested lab)
// the kernel may also leave the thread waiting for a CPU; that wait is read from schedstat
// (/proc/self/task/<tid>/schedstat: time on CPU, time runnable but waiting, in ns) and reported
// apart, so that a test can bound what the process itself did with the time.
import { readFileSync } from 'node:fs';

export interface GapReport {
  ticks: number;
  /** Largest time between two ticks (ms). */
  largestMs: number;
  /** Largest time between two ticks less the time the thread waited for a CPU in it (ms). */
  largestOwnMs: number;
  /** That gap's raw length and CPU wait (ms). */
  largestOwnRawMs: number;
  largestOwnWaitMs: number;
  /** Whether schedstat was readable (without it, own = raw). */
  schedstat: boolean;
}

const SCHEDSTAT = `/proc/self/task/${process.pid}/schedstat`;

function runqueueWaitMs(): number | undefined {
  try {
    const f = readFileSync(SCHEDSTAT, 'latin1').trim().split(/\s+/);
    const ns = Number(f[1]);
    return Number.isFinite(ns) ? ns / 1e6 : undefined;
  } catch {
    return undefined;
  }
}

export class GapMonitor {
  private readonly timer: NodeJS.Timeout;
  private last = performance.now();
  private lastWait = runqueueWaitMs();
  private readonly r: GapReport = { ticks: 0, largestMs: 0, largestOwnMs: 0, largestOwnRawMs: 0, largestOwnWaitMs: 0, schedstat: this.lastWait !== undefined };

  constructor(readonly intervalMs = 10) {
    this.timer = setInterval(() => this.tick(), intervalMs);
  }

  private tick(): void {
    const now = performance.now();
    const wait = runqueueWaitMs();
    const gap = now - this.last;
    const waited = wait !== undefined && this.lastWait !== undefined ? Math.max(0, wait - this.lastWait) : 0;
    const own = Math.max(0, gap - waited);
    const r = this.r;
    r.ticks++;
    if (gap > r.largestMs) r.largestMs = gap;
    if (own > r.largestOwnMs) {
      r.largestOwnMs = own;
      r.largestOwnRawMs = gap;
      r.largestOwnWaitMs = waited;
    }
    this.last = now;
    this.lastWait = wait;
  }

  stop(): GapReport {
    clearInterval(this.timer);
    return { ...this.r };
  }
}
