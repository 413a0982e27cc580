// Network namespaces for tests and the lab: a throw-away host on the far side of a TAP, so real
// frames cross a real kernel stack without touching the machine's own interfaces. Uses iproute2
// (`ip netns add/exec/del`); needs root (CAP_SYS_ADMIN + CAP_NET_ADMIN).
//
// The usual trick: open the TAP in our namespace (TapBackend.open), then move the interface
// into the test namespace with `ip link set NAME netns NS`; our fd stays attached, so frames the
// namespace sends to that interface still reach us.
//
//   const ns = await NetNs.create();
//   const tap = TapBackend.open();
//   await ns.adoptLink(tap.name, '10.0.2.2/24');
//   await ns.exec(pingArgv('10.0.2.15'));
//   tap.close();
//   await ns.close();
import { execFile, execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { NodeKvmError } from '../errors.js';

export interface ExecResult {
  /** Exit status, or null when killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Kill the command after this long (default 30 s). */
  timeoutMs?: number;
  /** Throw ERR_NETNS_COMMAND on a non-zero exit (default true). */
  check?: boolean;
}

// Where each command was found, per $PATH. Every `ip` a NetNs runs looks it up, on the main
// thread, while guests may be running; in the nested lab the root is 9p, whose server then
// waits behind QEMU's busy vCPU, and one lookup was measured at 3.3 s of blocked event loop.
const found = new Map<string, string>();

/** The absolute path of `command` in $PATH (plus the sbin directories), or undefined. */
export function findCommand(command: string): string | undefined {
  const path = process.env.PATH ?? '';
  const key = `${path}\0${command}`;
  const hit = found.get(key);
  if (hit !== undefined) return hit;
  const dirs = path.split(delimiter).concat(['/usr/sbin', '/sbin', '/usr/bin', '/bin']);
  for (const d of dirs) {
    if (d === '') continue;
    const p = join(d, command);
    try {
      accessSync(p, constants.X_OK);
      found.set(key, p);
      return p;
    } catch {
      // not in this directory
    }
  }
  return undefined; // not remembered: it may be installed later
}

function ipCommand(): string {
  return findCommand('ip') ?? 'ip';
}

/** argv for one ICMP echo with a deadline, via iputils `ping` or, failing that, busybox's. */
export function pingArgv(host: string, options: { count?: number; timeoutS?: number } = {}): string[] {
  const args = ['-c', String(options.count ?? 1), '-W', String(options.timeoutS ?? 2), host];
  if (findCommand('ping') !== undefined) return ['ping', ...args];
  if (findCommand('busybox') !== undefined) return ['busybox', 'ping', ...args];
  throw new NodeKvmError('ERR_NETNS_UNAVAILABLE', "no ping: install iputils-ping (or busybox)");
}

/** Why namespaces cannot be used here (not root, no iproute2), or undefined when they can. */
export function netnsUnavailableReason(): string | undefined {
  if (findCommand('ip') === undefined) return "the 'ip' command (iproute2) is not installed";
  // CAP_SYS_ADMIN (21) to mount /run/netns/NAME, CAP_NET_ADMIN (12) to configure links.
  const status = readFileSync('/proc/self/status', 'utf8');
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  const eff = m === null ? 0n : BigInt(`0x${m[1]}`);
  const need = (1n << 21n) | (1n << 12n);
  if ((eff & need) !== need) return 'network namespaces need root (CAP_SYS_ADMIN and CAP_NET_ADMIN)';
  return undefined;
}

function run(argv: string[], options: ExecOptions = {}): Promise<ExecResult> {
  const [first, ...args] = argv;
  const cmd = first === 'ip' ? ipCommand() : first;
  if (cmd === undefined) return Promise.reject(new NodeKvmError('ERR_INVALID_ARG', 'empty command'));
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: options.timeoutMs ?? 30_000, maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        let code: number | null = 0;
        let signal: NodeJS.Signals | null = null;
        if (err !== null) {
          const e = err as NodeJS.ErrnoException & { code?: string | number; signal?: NodeJS.Signals | null };
          if (typeof e.code === 'string') {
            reject(new NodeKvmError('ERR_NETNS_COMMAND', `cannot run ${cmd}: ${e.message}`, { cause: err }));
            return;
          }
          code = typeof e.code === 'number' ? e.code : null;
          signal = e.signal ?? null;
        }
        const result: ExecResult = { code, signal, stdout, stderr };
        if (options.check !== false && code !== 0) {
          const how = code === null ? `killed by ${signal ?? 'a signal'}` : `exit ${code}`;
          reject(new NodeKvmError('ERR_NETNS_COMMAND', `'${argv.join(' ')}' failed (${how}): ${stderr.trim()}`));
          return;
        }
        resolve(result);
      });
  });
}

let sequence = 0;
const live = new Set<NetNs>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A test that throws before close() must not leave namespaces behind.
  process.on('exit', () => {
    for (const ns of live) ns.closeSync();
  });
}

const PID_NAME = /^([a-z0-9]+)-(\d+)-\d+-[0-9a-f]+$/;

export class NetNs {
  /** The namespace name (`/run/netns/NAME`), unique per process and call. */
  readonly name: string;
  private closed = false;
  private readonly children = new Set<ChildProcess>();

  private constructor(name: string) {
    this.name = name;
  }

  /** Create a fresh namespace named `PREFIX-PID-SEQ-RANDOM` with its loopback up. */
  static async create(options: { prefix?: string } = {}): Promise<NetNs> {
    const prefix = options.prefix ?? 'nkvm';
    if (!/^[a-z0-9]+$/.test(prefix)) throw new NodeKvmError('ERR_INVALID_ARG', `bad namespace prefix '${prefix}'`);
    const name = `${prefix}-${process.pid}-${++sequence}-${randomBytes(3).toString('hex')}`;
    await run(['ip', 'netns', 'add', name]);
    const ns = new NetNs(name);
    live.add(ns);
    installExitHook();
    try {
      await ns.ip(['link', 'set', 'dev', 'lo', 'up']);
    } catch (e) {
      await ns.close();
      throw e;
    }
    return ns;
  }

  /**
   * Delete namespaces named `PREFIX-PID-…` whose process is gone (left by a crashed run).
   * Returns the names deleted.
   */
  static async sweepStale(prefix = 'nkvm'): Promise<string[]> {
    const listed = await run(['ip', 'netns', 'list']);
    const gone: string[] = [];
    for (const line of listed.stdout.split('\n')) {
      const name = line.split(' ')[0] ?? '';
      const m = PID_NAME.exec(name);
      if (m === null || m[1] !== prefix) continue;
      const pid = Number(m[2]);
      if (pid === process.pid) continue;
      try {
        process.kill(pid, 0);
        continue; // still running
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ESRCH') continue;
      }
      await run(['ip', 'netns', 'del', name], { check: false });
      gone.push(name);
    }
    return gone;
  }

  private assertOpen(): void {
    if (this.closed) throw new NodeKvmError('ERR_KVM_CLOSED', `network namespace ${this.name} is closed`);
  }

  /** `ip -n NAME ARGS…` */
  ip(args: string[], options?: ExecOptions): Promise<ExecResult> {
    this.assertOpen();
    return run(['ip', '-n', this.name, ...args], options);
  }

  /**
   * Move a host interface (typically a TAP we hold open) into this namespace, add addresses
   * (CIDR, e.g. '10.0.2.2/24') and bring it up (unless `up: false`).
   */
  async adoptLink(ifname: string, addresses: string | string[] = [], options: { up?: boolean } = {}): Promise<void> {
    this.assertOpen();
    await run(['ip', 'link', 'set', 'dev', ifname, 'netns', this.name]);
    for (const a of typeof addresses === 'string' ? [addresses] : addresses) await this.addAddress(ifname, a);
    if (options.up !== false) await this.setLinkUp(ifname, true);
  }

  addAddress(ifname: string, cidr: string): Promise<ExecResult> {
    return this.ip(['addr', 'add', cidr, 'dev', ifname]);
  }

  setLinkUp(ifname: string, up = true): Promise<ExecResult> {
    return this.ip(['link', 'set', 'dev', ifname, up ? 'up' : 'down']);
  }

  /** Run a command inside the namespace and wait for it. */
  exec(argv: string[], options?: ExecOptions): Promise<ExecResult> {
    this.assertOpen();
    return run(['ip', 'netns', 'exec', this.name, ...argv], options);
  }

  /** Start a long-running command inside the namespace (killed by close()). */
  spawn(argv: string[], options: SpawnOptions = {}): ChildProcess {
    this.assertOpen();
    const child = spawn(ipCommand(), ['netns', 'exec', this.name, ...argv], { stdio: 'pipe', ...options });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** Kill spawned commands and delete the namespace (interfaces in it go with it). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    live.delete(this);
    await Promise.all([...this.children].map((c) => new Promise<void>((resolve) => {
      if (c.exitCode !== null || c.signalCode !== null) {
        resolve();
        return;
      }
      c.once('exit', () => resolve());
      c.kill('SIGKILL');
    })));
    this.children.clear();
    await run(['ip', 'netns', 'del', this.name], { check: false });
  }

  /** close() for process-exit paths, where nothing asynchronous runs any more. */
  closeSync(): void {
    if (this.closed) return;
    this.closed = true;
    live.delete(this);
    for (const c of this.children) c.kill('SIGKILL');
    this.children.clear();
    try {
      execFileSync(ipCommand(), ['netns', 'del', this.name], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  }

  /** Same as close(), for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
