// Works around a QEMU 7.2 TCG (nested SVM) lost wakeup seen in the lab: L1 halts with no timer
// armed (QEMU's main loop sleeps with a timeout of hours, its vCPU thread waits on a futex),
// and the whole lab freezes while a test waits for its guest. Any interrupt brings L1 back, so
// when QEMU has (nearly) stopped using CPU for a while we send a carriage return to L1's serial console: the
// UART's receive interrupt wakes the vCPU. L1's /init never reads the console, so the byte
// has no other effect.
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';

/** QEMU's user+system CPU ticks, or undefined once the process is gone. */
function cpuTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
  } catch {
    return undefined;
  }
}

export interface FreezeWatch {
  /** How many times the console was poked. */
  readonly pokes: number;
  stop(): void;
}

/** Clock ticks per second for /proc/PID/stat (USER_HZ is 100 on every Linux we target). */
const USER_HZ = 100;

/**
 * Poke L1's console when QEMU used less than `busyShare` of one CPU over the last `idleMs`.
 * A frozen L1 is not always at exactly zero: QEMU's I/O thread still serves the console and
 * 9p sockets now and then, so "no CPU at all" missed a freeze in CI. A running TCG guest keeps
 * its vCPU thread near 100%, and a stray carriage return costs L1 one interrupt.
 *
 * Also poke every `periodMs` whatever the CPU: once (a 5-round net bench) L1 stalled for 834 s
 * ("soft lockup", in the idle task) while QEMU stayed busy, and the lab's budget ran out. The
 * run's only poke may be what ended it (its time was not logged). A poke a minute costs
 * nothing and bounds such a stall if an interrupt is what ends it.
 */
export function watchForFreeze(pid: number, console: () => Socket | undefined, log?: (line: string) => void,
  idleMs = 6000, everyMs = 2000, busyShare = 0.2, periodMs = 60_000): FreezeWatch {
  const samples: { at: number; ticks: number }[] = [];
  const started = Date.now();
  let lastPoke = started;
  let pokes = 0;
  // `why` is logged for the low-CPU pokes only: a periodic one says nothing about L1.
  const poke = (at: number, why?: string): boolean => {
    const s = console();
    if (s === undefined || s.destroyed) return false;
    s.write('\r');
    pokes++;
    lastPoke = at;
    if (why !== undefined) log?.(`${why} at ${((at - started) / 1000).toFixed(0)} s: poked L1's console to wake it (QEMU TCG lost wakeup)`);
    return true;
  };
  const timer = setInterval(() => {
    const ticks = cpuTicks(pid);
    if (ticks === undefined) return;
    const at = Date.now();
    if (at - lastPoke >= periodMs && poke(at)) return;
    samples.push({ at, ticks });
    while (samples.length > 1 && at - samples[1]!.at >= idleMs) samples.shift();
    const first = samples[0]!;
    if (at - first.at < idleMs || at - lastPoke < idleMs) return;
    const used = (ticks - first.ticks) / USER_HZ; // CPU seconds over the window
    if (used >= busyShare * (at - first.at) / 1000) return;
    poke(at, `L1 used ${used.toFixed(2)} CPU s in ${((at - first.at) / 1000).toFixed(0)} s`);
  }, everyMs);
  timer.unref();
  return {
    get pokes() { return pokes; },
    stop: () => clearInterval(timer),
  };
}
