// Admission of forks against host memory. A fork shares the template's RAM copy-on-write and
// starts small, but the guest may dirty every page it has: so each live fork is counted at its
// full guest RAM, and a fork is refused up front (ERR_FORK_MEMORY) when that worst case would
// not fit in what the kernel says is available — instead of the OOM killer ending a test
// suite half-way.
import { readFileSync } from 'node:fs';
import { NodeKvmError } from '../errors.js';

/** Kept free for the host itself (Node, passt, the page cache a test needs). */
export const HOST_RESERVE = 128 * 2 ** 20;

/** MemAvailable from /proc/meminfo in bytes (undefined where it cannot be read). */
export function memAvailable(meminfo?: string): number | undefined {
  let text = meminfo;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/meminfo', 'latin1');
    } catch {
      return undefined;
    }
  }
  const m = /^MemAvailable:\s+(\d+) kB$/m.exec(text);
  return m === null ? undefined : Number(m[1]) * 1024;
}

/**
 * Throw ERR_FORK_MEMORY unless a fork of `ram` bytes fits beside the live forks' `liveRam`
 * bytes (each may still grow to its full RAM) in `available` bytes minus HOST_RESERVE.
 * `available` undefined (no /proc/meminfo): nothing to judge by, admitted.
 */
export function checkForkMemory(o: { ram: number; liveRam: number; liveForks: number; available: number | undefined; template: string }): void {
  if (o.available === undefined) return;
  const need = o.ram + o.liveRam;
  const budget = o.available - HOST_RESERVE;
  if (need > budget) {
    const mib = (n: number): string => `${Math.round(n / 2 ** 20)} MiB`;
    const fits = Math.max(0, Math.floor((budget - o.liveRam) / o.ram));
    throw new NodeKvmError('ERR_FORK_MEMORY',
      `cannot fork template ${o.template}: ${o.liveForks} live fork(s) may grow to ${mib(o.liveRam)} and this one to ${mib(o.ram)}, `
      + `but the host has ${mib(o.available)} available (${mib(HOST_RESERVE)} kept free); `
      + `${fits === 0 ? 'no more forks fit' : `${fits} more fit`}: close forks first, or give the template less memory`);
  }
}
