// Works around a QEMU 7.2 TCG (nested SVM) lost wakeup seen in the lab: L1 halts with no timer
// armed (QEMU's main loop sleeps with a timeout of hours, its vCPU thread waits on a futex),
// and the whole lab freezes while a test waits for its guest. Any interrupt brings L1 back, so
// when QEMU has used no CPU for a while we send a carriage return to L1's serial console: the
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

export function watchForFreeze(pid: number, console: () => Socket | undefined, log?: (line: string) => void,
  idleMs = 6000, everyMs = 2000): FreezeWatch {
  let last = cpuTicks(pid);
  let idleSince = Date.now();
  let pokes = 0;
  const timer = setInterval(() => {
    const now = cpuTicks(pid);
    if (now === undefined) return;
    if (now !== last) {
      last = now;
      idleSince = Date.now();
      return;
    }
    const s = console();
    if (Date.now() - idleSince >= idleMs && s !== undefined && !s.destroyed) {
      s.write('\r');
      pokes++;
      idleSince = Date.now();
      log?.(`L1 used no CPU for ${idleMs / 1000} s: poked its console to wake it (QEMU TCG lost wakeup)`);
    }
  }, everyMs);
  timer.unref();
  return {
    get pokes() { return pokes; },
    stop: () => clearInterval(timer),
  };
}
