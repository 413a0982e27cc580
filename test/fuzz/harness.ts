// The fuzz loop shared by every device: seeded operations, the device's invariants after each
// one, a time bound per operation and for the run, and failures that say how to replay them.
//
// Environment:
//   NODE_KVM_FUZZ_SEED=N    the run's seed (default: a random one, printed with the results)
//   NODE_KVM_FUZZ_OPS=N     operations per device (default 100000)
//   NODE_KVM_FUZZ_OP_MS=N   bound of one operation in ms (default 50). An operation over it in
//                           wall time is replayed from the seed twice and fails only if it takes
//                           more CPU time than that both times (a loaded host deschedules us).
import { randomInt } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Rng } from './rng.js';

export interface FuzzInstance {
  /** One random operation; sets `op` to what it did. */
  step(): void;
  /** The device's invariants after an operation: throws an Error naming the one that broke. */
  check(): void;
  /** The last operation, for failure messages. */
  op: string;
  /**
   * True when the last operation was the host's, not the guest's (a snapshot round trip with
   * its JSON): the per-operation bound is about work a guest can make the host do.
   */
  untimed?: boolean;
  /** Counters worth reporting (frames, interrupts, DMA bytes…). */
  stats?(): Record<string, number>;
  /** Release timers and backends. */
  close(): void;
}

export interface FuzzTarget {
  /** Short name; the test file is test/unit/fuzz-<file>.test.ts. */
  name: string;
  file: string;
  create(rng: Rng): FuzzInstance;
}

export interface FuzzConfig {
  seed: number;
  ops: number;
  opBudgetMs: number;
  /** Bound of the whole run in ms. */
  totalBudgetMs: number;
}

export interface FuzzReport {
  name: string;
  seed: number;
  ops: number;
  ms: number;
  slowestOpMs: number;
  slowestOp: number;
  stats: Record<string, number>;
}

function envInt(name: string, dflt: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const v = Number(raw);
  if (!Number.isSafeInteger(v) || v < min || v > max) throw new Error(`${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(raw)}`);
  return v;
}

/** Average time an operation may take over a whole run (ms): ~20x what this host measures. */
const TOTAL_MS_PER_OP = 0.5;

export function fuzzConfig(): FuzzConfig {
  const seed = envInt('NODE_KVM_FUZZ_SEED', randomInt(0, 0xffff_ffff), 0, 0xffff_ffff);
  const ops = envInt('NODE_KVM_FUZZ_OPS', 100_000, 1, 1e10);
  const opBudgetMs = envInt('NODE_KVM_FUZZ_OP_MS', 50, 1, 1e6);
  return { seed, ops, opBudgetMs, totalBudgetMs: Math.max(30_000, ops * TOTAL_MS_PER_OP) };
}

export class FuzzFailure extends Error {
  constructor(readonly target: string, readonly seed: number, readonly opIndex: number, what: string, op: string, file: string) {
    super(`fuzz ${target}: seed ${seed}, operation ${opIndex}: ${what}\n` +
      `  operation ${opIndex}: ${op}\n` +
      `  replay: NODE_KVM_FUZZ_SEED=${seed} NODE_KVM_FUZZ_OPS=${opIndex + 1} node scripts/test.mjs --tier=unit fuzz-${file}`);
    this.name = 'FuzzFailure';
  }
}

function cpuMs(c: NodeJS.CpuUsage): number {
  return (c.user + c.system) / 1000;
}

/**
 * Run operations 0..n-1 of `seed` (checks included, as they may touch the device), then
 * measure op n in CPU time (ms): unlike wall time, it does not grow when a loaded host
 * deschedules the process, so only work the operation really does counts.
 */
function cpuReplayed(target: FuzzTarget, seed: number, n: number): number {
  const inst = target.create(Rng.forDevice(seed, target.name));
  try {
    for (let i = 0; i < n; i++) {
      inst.step();
      inst.check();
    }
    const c0 = process.cpuUsage();
    inst.step();
    return cpuMs(process.cpuUsage(c0));
  } finally {
    inst.close();
  }
}

export function runFuzz(target: FuzzTarget, cfg: FuzzConfig = fuzzConfig()): FuzzReport {
  const { seed, ops, opBudgetMs } = cfg;
  const inst = target.create(Rng.forDevice(seed, target.name));
  const start = performance.now();
  let slowestOpMs = 0;
  let slowestOp = -1;
  let i = 0;
  // The process's CPU time at the start of each window of 256 operations: a slow operation
  // used at most what the whole window used, which settles most stalls without a replay.
  let windowCpu = process.cpuUsage();
  try {
    for (; i < ops; i++) {
      if ((i & 255) === 0) windowCpu = process.cpuUsage();
      const t0 = performance.now();
      inst.step();
      const dt = performance.now() - t0;
      inst.check();
      if (inst.untimed === true) continue;
      if (dt > slowestOpMs) {
        slowestOpMs = dt;
        slowestOp = i;
      }
      if (dt > opBudgetMs && cpuMs(process.cpuUsage(windowCpu)) > opBudgetMs) {
        // A stall of the host (another process, a loaded CI machine) or real work? Replay the
        // seed up to this operation and measure its CPU time: only one that uses more CPU than
        // the bound every time fails.
        const again = [cpuReplayed(target, seed, i), cpuReplayed(target, seed, i)];
        if (Math.min(...again) > opBudgetMs) {
          throw new FuzzFailure(target.name, seed, i,
            `took ${dt.toFixed(1)} ms, then ${again.map((x) => x.toFixed(1)).join(' ms and ')} ms of CPU replayed (bound ${opBudgetMs} ms)`, inst.op, target.file);
        }
      }
    }
  } catch (e) {
    if (e instanceof FuzzFailure) throw e;
    const what = e instanceof Error ? (e.stack ?? e.message) : String(e);
    throw new FuzzFailure(target.name, seed, i, what, inst.op, target.file);
  } finally {
    inst.close();
  }
  const ms = performance.now() - start;
  if (ms > cfg.totalBudgetMs) {
    throw new FuzzFailure(target.name, seed, ops - 1, `the run took ${ms.toFixed(0)} ms, over its bound of ${cfg.totalBudgetMs} ms`, inst.op, target.file);
  }
  return { name: target.name, seed, ops, ms, slowestOpMs, slowestOp, stats: inst.stats?.() ?? {} };
}

/** One line for the test's diagnostics. */
export function formatReport(r: FuzzReport): string {
  const stats = Object.entries(r.stats).map(([k, v]) => `${k}=${v}`).join(' ');
  return `${r.name}: ${r.ops} ops in ${(r.ms / 1000).toFixed(2)} s (seed ${r.seed}; slowest op #${r.slowestOp} ${r.slowestOpMs.toFixed(2)} ms wall)${stats ? ` ${stats}` : ''}`;
}

/** Assert a read value is an integer that fits the access. */
export function checkReadValue(v: number, size: number, where: string): void {
  const max = size >= 4 ? 0xffff_ffff : 2 ** (size * 8) - 1;
  if (!Number.isInteger(v) || v < 0 || v > max) throw new Error(`${where}: read of ${size} byte(s) returned ${v}`);
}
