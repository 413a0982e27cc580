// Starting passt (https://passt.top, Debian package `passt`), the user-mode network stack that
// podman and libvirt use, as the far end of a `user` network backend. passt needs no privileges:
// it turns the guest's frames into ordinary sockets of this user, answers DHCP/ARP itself, and
// binds the host ports that forward into the guest.
import { accessSync, constants, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { NodeKvmError } from '../errors.js';
import { findCommand } from './netns.js';

/** One port forward from the host into the guest. */
export interface UserForward {
  /** Default 'tcp'. */
  proto?: 'tcp' | 'udp';
  /** Host port to listen on; 0 or omitted picks a free one (see UserNetBackend.forwards). */
  host?: number;
  /** Guest port the connections go to. */
  guest: number;
  /** Host address to listen on (default '127.0.0.1': only this host can connect). */
  address?: string;
}

/** A forward as it is in effect: its host port is known. */
export interface ActiveForward {
  /** Transport protocol. */
  proto: 'tcp' | 'udp';
  /** The host port passt listens on. */
  host: number;
  /** The guest port it forwards to. */
  guest: number;
  /** The host address passt listens on. */
  address: string;
}

/** The guest's side of the link, handed out by passt's DHCP server (QEMU's `-nic user` plan). */
export interface UserAddressing {
  /** The guest's address (default 10.0.2.15). */
  address: string;
  /** Prefix length (default 24). */
  prefix: number;
  /** Gateway; connections to it reach the host's loopback (default 10.0.2.2). */
  gateway: string;
  /** DNS server address the guest is told; queries to it go to the host's resolver (default 10.0.2.3). */
  dns: string;
}

export const DEFAULT_USER_ADDRESSING: UserAddressing = { address: '10.0.2.15', prefix: 24, gateway: '10.0.2.2', dns: '10.0.2.3' };

/** The passt binary, or a coded error that says how to install it. */
export function findPasst(explicit?: string): string {
  const p = explicit ?? findCommand('passt');
  let runnable = p !== undefined;
  try { if (p !== undefined) accessSync(p, constants.X_OK); } catch { runnable = false; }
  if (!runnable) {
    throw new NodeKvmError('ERR_NET_USER_UNAVAILABLE', `user networking needs passt, which is not installed${explicit !== undefined ? ` at ${explicit}` : ''}: apt-get install passt (Debian/Ubuntu package 'passt')`);
  }
  return p!;
}

/** A port forward spec as passt's -t/-u take it: ADDRESS/HOSTPORT:GUESTPORT. */
function forwardSpec(f: ActiveForward): string {
  return `${f.address}/${f.host}:${f.guest}`;
}

/**
 * passt's command line. It talks to us over the socket inherited as fd 3 (`--fd`), stays in the
 * foreground so that we own its lifetime, and quits when that socket closes (`--one-off`), so
 * that it cannot outlive this process even if we never get to kill it.
 */
export function passtArgv(addr: UserAddressing, forwards: readonly ActiveForward[]): string[] {
  const argv = ['--foreground', '--stderr', '--one-off', '--ipv4-only', '--fd', '3',
    '--address', addr.address, '--netmask', String(addr.prefix), '--gateway', addr.gateway,
    '--dns-forward', addr.dns, '--dns', addr.dns, '--no-dhcp-search',
    // The RTL8139 takes no jumbo frames: passt would otherwise offer an MTU of 65520.
    '--mtu', '1500'];
  for (const f of forwards) argv.push(f.proto === 'tcp' ? '--tcp-ports' : '--udp-ports', forwardSpec(f));
  return argv;
}

/** A host port that nobody listens on right now (the kernel's choice). */
export async function freePort(proto: 'tcp' | 'udp', address: string): Promise<number> {
  if (proto === 'udp') {
    const { createSocket } = await import('node:dgram');
    const s = createSocket('udp4');
    return new Promise((resolve, reject) => {
      s.once('error', reject);
      s.bind(0, address, () => { const { port } = s.address(); s.close(() => resolve(port)); });
    });
  }
  const srv = createServer();
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, address, () => {
      const a = srv.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Ports bound on this host, from /proc/net (listening TCP sockets, bound UDP sockets). */
export function boundPorts(proto: 'tcp' | 'udp'): Set<number> {
  const ports = new Set<number>();
  for (const file of proto === 'tcp' ? ['/proc/net/tcp', '/proc/net/tcp6'] : ['/proc/net/udp', '/proc/net/udp6']) {
    let text: string;
    try { text = readFileSync(file, 'latin1'); } catch { continue; }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 4) continue;
      // TCP: only sockets in LISTEN (state 0A); UDP has no such state, a bound socket is enough.
      if (proto === 'tcp' && cols[3] !== '0A') continue;
      const port = parseInt(cols[1]!.split(':')[1] ?? '', 16);
      if (Number.isInteger(port)) ports.add(port);
    }
  }
  return ports;
}
