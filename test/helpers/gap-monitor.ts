// Watches how long the main thread keeps the event loop away: a setInterval(…, 10) notes the
// time between its ticks. On a loaded machine (two cores shared by many jobs, the nested lab)
// a gap also holds time that is nobody's doing here, and the report separates it:
// - time the kernel left this thread runnable but waiting for a CPU (schedstat:
//   /proc/self/task/<tid>/schedstat gives ns on CPU and ns waiting, cumulative);
// - garbage-collection pauses (PerformanceObserver 'gc'): a scavenge takes a millisecond on a
//   quiet machine, but V8's parallel collector waits for its helper threads, and on an
//   overloaded one those may not run for a hundred milliseconds or more.
// - time the whole process was stalled: a worker thread runs the same interval and notes its
//   own gaps. The main thread being busy does not stop the worker (the kernel schedules it on
//   another CPU, or in turns on one), so a stretch where both miss their ticks is the process
//   descheduled from outside: in the nested lab, the L1 vCPU preempted by its host, which L1's
//   schedstat cannot see.
// A gap's "own" time is its length less the largest of the three (they may overlap).
import { readFileSync } from 'node:fs';
import { PerformanceObserver } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';

export interface GapInfo {
  /** When the gap ended, ms after the monitor started. */
  atMs: number;
  rawMs: number;
  /** Of it: waiting for a CPU, and in GC pauses. */
  cpuWaitMs: number;
  gcMs: number;
  /** Of it: time the sentinel thread was stalled too (the whole process descheduled). */
  stalledMs: number;
  ownMs: number;
  /** What the probe said when it ended. */
  probe: string;
}

export interface GapReport {
  ticks: number;
  /** Largest time between two ticks (ms). */
  largestMs: number;
  /** Largest own time of a gap (ms), and that gap. */
  largestOwnMs: number;
  largestOwn: GapInfo | undefined;
  /** The five gaps with the largest own time, longest first. */
  worst: GapInfo[];
  /** Whether schedstat was readable (without it, no CPU wait is subtracted). */
  schedstat: boolean;
  /** GC pauses seen, and their total (ms). */
  gcPauses: number;
  gcMs: number;
  /** Stretches where the sentinel thread missed its ticks too, and their total (ms). */
  stalls: number;
  stalledMs: number;
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

interface Tick { start: number; end: number; cpuWaitMs: number; probe: string }

/** Most sentinel gaps kept (pairs of start/end after the count). */
const SENTINEL_CAPACITY = 4096;

// The sentinel: a setInterval in a worker thread writing its gaps (absolute ms: timeOrigin +
// now, comparable across threads) into shared memory. Index 0 holds the count.
const SENTINEL_SOURCE = `
const { workerData } = require('node:worker_threads');
const out = new Float64Array(workerData.sab);
const abs = () => performance.timeOrigin + performance.now();
let last = abs();
setInterval(() => {
  const now = abs();
  const n = out[0];
  if (now - last > 2 * workerData.intervalMs && n < workerData.capacity) {
    out[1 + 2 * n] = last;
    out[2 + 2 * n] = now;
    out[0] = n + 1;
  }
  last = now;
}, workerData.intervalMs);
`;

export class GapMonitor {
  private readonly timer: NodeJS.Timeout;
  private readonly observer: PerformanceObserver;
  private readonly start = performance.now();
  private last = this.start;
  private lastWait = runqueueWaitMs();
  private readonly schedstat = this.lastWait !== undefined;
  /** Gaps longer than twice the interval (the others cannot matter). */
  private readonly long: Tick[] = [];
  private readonly gcs: Array<{ start: number; end: number }> = [];
  private ticks = 0;
  private largest = 0;
  private readonly sentinelGaps = new Float64Array(new SharedArrayBuffer(8 * (1 + 2 * SENTINEL_CAPACITY)));
  private readonly sentinel: Worker;

  /** `probe`: a word on what was going on, kept with the longest gaps (for diagnostics). */
  constructor(readonly intervalMs = 10, private readonly probe: () => string = () => '') {
    this.observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) this.gcs.push({ start: e.startTime, end: e.startTime + e.duration });
    });
    this.observer.observe({ entryTypes: ['gc'] });
    this.sentinel = new Worker(SENTINEL_SOURCE, { eval: true, workerData: { sab: this.sentinelGaps.buffer, intervalMs, capacity: SENTINEL_CAPACITY } });
    this.timer = setInterval(() => this.tick(), intervalMs);
  }

  private tick(): void {
    const now = performance.now();
    const wait = runqueueWaitMs();
    const gap = now - this.last;
    this.ticks++;
    if (gap > this.largest) this.largest = gap;
    if (gap > 2 * this.intervalMs) {
      const cpuWaitMs = wait !== undefined && this.lastWait !== undefined ? Math.max(0, wait - this.lastWait) : 0;
      this.long.push({ start: this.last, end: now, cpuWaitMs, probe: this.probe() });
    }
    this.last = now;
    this.lastWait = wait;
  }

  /** Stop watching; GC entries still queued are taken in first. */
  async stop(): Promise<GapReport> {
    clearInterval(this.timer);
    await new Promise((r) => setTimeout(r, 20));
    await this.sentinel.terminate();
    // The sentinel's gaps in this thread's performance.now() time.
    const stalls: Array<{ start: number; end: number }> = [];
    for (let i = 0; i < this.sentinelGaps[0]!; i++) {
      stalls.push({ start: this.sentinelGaps[1 + 2 * i]! - performance.timeOrigin, end: this.sentinelGaps[2 + 2 * i]! - performance.timeOrigin });
    }
    for (const e of this.observer.takeRecords()) this.gcs.push({ start: e.startTime, end: e.startTime + e.duration });
    this.observer.disconnect();
    const r = (x: number): number => Math.round(x * 10) / 10;
    const infos: GapInfo[] = this.long.map((t) => {
      let gcMs = 0;
      for (const g of this.gcs) gcMs += Math.max(0, Math.min(g.end, t.end) - Math.max(g.start, t.start));
      let stalledMs = 0;
      for (const g of stalls) stalledMs += Math.max(0, Math.min(g.end, t.end) - Math.max(g.start, t.start));
      const rawMs = t.end - t.start;
      return { atMs: r(t.end - this.start), rawMs: r(rawMs), cpuWaitMs: r(t.cpuWaitMs), gcMs: r(gcMs), stalledMs: r(stalledMs),
        ownMs: r(Math.max(0, rawMs - Math.max(t.cpuWaitMs, gcMs, stalledMs))), probe: t.probe };
    }).sort((a, z) => z.ownMs - a.ownMs);
    return {
      ticks: this.ticks, largestMs: r(this.largest), largestOwnMs: infos[0]?.ownMs ?? r(Math.min(this.largest, 2 * this.intervalMs)),
      largestOwn: infos[0], worst: infos.slice(0, 5), schedstat: this.schedstat,
      gcPauses: this.gcs.length, gcMs: r(this.gcs.reduce((a, g) => a + g.end - g.start, 0)),
      stalls: stalls.length, stalledMs: r(stalls.reduce((a, g) => a + g.end - g.start, 0)),
    };
  }
}
