// What a fork's guest runs right after the restore, before the fork is handed out: it wakes up
// as an exact copy of the template, so its wall clock is the template's (minutes or days
// behind) and its NICs carry the template's MAC and address. One shell script, sent as one
// exec, fixes both; built here as a pure function so it is tested without a guest.
import { NodeKvmError } from '../errors.js';
import { shellQuote } from './protocol.js';

/** How a fork's NIC gets its address after the restore. */
export type ForkAddress =
  /** Ask the link's DHCP server (a user network). */
  | 'dhcp'
  /** No address: the template's is removed, so two forks never answer for the same one. */
  | 'none'
  /** This address with its prefix length, e.g. 10.0.0.5/24. */
  | string;

/** One NIC of a fork, as the guest script needs it. */
export interface ForkNic {
  /** Guest interface (eth0, eth1… in PCI order). */
  iface: string;
  /** The fork's own station address. */
  mac: string;
  /** How it gets its address. */
  address: ForkAddress;
}

const CIDR = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;

/** Throw ERR_INVALID_ARG unless `a` is 'dhcp', 'none' or an IPv4 address with a prefix length. */
export function checkForkAddress(a: unknown, where: string): asserts a is ForkAddress {
  if (a === 'dhcp' || a === 'none') return;
  const m = typeof a === 'string' ? CIDR.exec(a) : null;
  if (m === null || m.slice(1, 5).some((o) => Number(o) > 255) || Number(m[5]) > 32) {
    throw new NodeKvmError('ERR_INVALID_ARG', `${where}: ip must be 'dhcp', 'none' or an IPv4 address with a prefix length like 10.0.0.5/24, got ${JSON.stringify(a)}`);
  }
}

/**
 * How far a fork's guest clock is behind the host's, in ms. kvmclock resumes at the captured
 * value when the restore sets it, so from then on the guest's wall clock runs at the host's rate
 * but lags by a constant: the time between capture and restore, plus whatever the template's
 * own clock was off (measured at capture). `guestAtCaptureMs` is the template guest's wall
 * clock at the capture; `restoredAtMs` the host's wall clock when the restore set kvmclock.
 */
export function clockLagMs(guestAtCaptureMs: number, restoredAtMs: number): number {
  return restoredAtMs - guestAtCaptureMs;
}

/**
 * The script a fork runs after the restore: the clock first (unless `lagMs` is left out: the
 * agent stepped it, see TestVm.advanceClockByAgent), then each NIC's MAC and address.
 * The guest adds the lag to its own clock (read to the microsecond with adjtimex), so however
 * long the line takes to arrive and run, the result does not move; busybox `date -s` takes
 * whole seconds, so the guest ends within half a second of the host. Runs under `sh`; any
 * failing step fails the script (set -e), and the fork is refused with its output.
 */
export function forkScript(opts: { lagMs?: number; nics: readonly ForkNic[] }): string {
  const lines = ['set -e'];
  if (opts.lagMs !== undefined) {
    if (!Number.isFinite(opts.lagMs)) throw new NodeKvmError('ERR_INVALID_ARG', `forkScript: lagMs must be a finite number, got ${opts.lagMs}`);
    const lag = Math.round(opts.lagMs);
    // Shell builtins only, besides adjtimex and date: in a fresh fork every process started
    // faults in pages from the template, which is the slow part of a fork's first command.
    lines.push(
      "nl='\n'",
      'clk=$(adjtimex)',
      's=${clk#*time.tv_sec:}; s=${s%%"$nl"*}; u=${clk#*time.tv_usec:}; u=${u%%"$nl"*}',
      `now=$(( (s * 1000 + u / 1000 + ${lag} + 500) / 1000 ))`,
      'date -u -s "@$now" >/dev/null',
    );
  }
  for (const n of opts.nics) {
    const i = shellQuote(n.iface);
    // The driver writes the new address into the NIC (IDR0-5); the L2 switch then learns it.
    lines.push(`ip link set dev ${i} address ${n.mac}`, `ip addr flush dev ${i}`, `ip neigh flush dev ${i} 2>/dev/null || true`);
    if (n.address === 'dhcp') {
      lines.push(`udhcpc -i ${i} -s /etc/nkvm/udhcpc.sh -q -f -n -t 10 -T 1 >/dev/null 2>&1`);
    } else if (n.address !== 'none') {
      lines.push(`ip addr add ${n.address} dev ${i}`);
    }
  }
  return `${lines.join('\n')}\n`;
}
