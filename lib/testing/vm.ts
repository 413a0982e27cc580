// bootVm(): a booted guest with its shell ready, and exec/readFile/writeFile. When the image has
// the guest agent and the machine its virtio-console port, these go over that port
// (agent-client.ts: binary frames, several requests at once, output streamed); otherwise over
// the serial console (protocol.ts: one conversation, so those calls are queued and run one at
// a time).
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import { join } from 'node:path';
import { NodeKvmError } from '../errors.js';
import { readUserFile } from '../user-file.js';
import { getDefaultImage, getImage, GUEST_PROMPT, READY_MARKER, type Image } from '../images/index.js';
import { DEFAULT_CMDLINE } from '../machine/cmdline.js';
import { ConsoleTimeoutError, Machine, type MachineConsole, type MachineResult, type NetOptions } from '../machine/index.js';
import { userNet, UserNetBackend } from '../net/user.js';
import { AgentClient, AgentError, AgentRequestError } from './agent-client.js';
import { agentPortOptions, openAgentPort } from './agent-port.js';
import { BootError, ExecFailedError, ExecProtocolError, ExecTimeoutError, GuestFileError } from './errors.js';
import {
  ackPattern, execLine, execReplyPattern, ExecReplyError, GUEST_WORK_DIR, MAX_LINE, marker, parseExecReply,
  printMarker, shellQuote, uploadLines,
} from './protocol.js';
import { checkOptions, keysOf } from '../options-check.js';
import type { BootVmOptions, CleanupHost, ExecOptions, ExecResult, MountOptions } from './vm-options.js';

export type { BootVmOptions, CleanupHost, ExecOptions, ExecResult, MountOptions } from './vm-options.js';


const DEFAULT_BOOT_TIMEOUT = 180_000;
const DEFAULT_EXEC_TIMEOUT = 60_000;
/** How long the shell gets to answer a resync marker after Ctrl-C. */
const RESYNC_TIMEOUT = 15_000;
/** Extra host-side wait beyond an exec's timeout (the guest enforces the timeout itself). */
const HOST_GRACE = 15_000;
/** Bytes per readFile chunk (its base64 stays far below the console's history limit). */
const READ_CHUNK = 64 * 1024;
/** How long bootVm waits for the agent's HELLO once the shell is ready. */
const AGENT_HELLO_WAIT = 60_000;
/** How long requests wait for a restarted agent (the guest's loop restarts it after 1 s). */
const AGENT_RECONNECT_WAIT = 30_000;

async function collect(src: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of src) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

let vmCount = 0;
let macCount = 0;

/** A locally administered MAC unique in this process: 52:54:00:xx:yy:zz. */
export function uniqueMac(): string {
  const n = ++macCount + (process.pid & 0xff) * 0x10000;
  return `52:54:00:${[(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;
}

const kernelCache = new Map<string, Buffer>();
/** @internal a kernel or initrd, read once per process */
export function cachedFile(path: string): Buffer {
  let b = kernelCache.get(path);
  if (b === undefined) kernelCache.set(path, (b = readUserFile(path, 'kernel')));
  return b;
}

/** @internal the image bootVm() would use for `image` */
export async function resolveImage(image: Image | string | undefined): Promise<Image> {
  const verify = process.env.NODE_KVM_LAB === '1' ? 'size' : 'full';
  if (image === undefined) return getDefaultImage({ build: true, verify });
  if (typeof image === 'string') return getImage(image, { verify });
  return image;
}

/** Reject with ERR_VM_ENDED when the machine ends first; a pending wait is never left unhandled. */
function raceEnd<T>(p: Promise<T>, ended: Promise<MachineResult>, what: () => string, hasEnded?: () => boolean): Promise<T> {
  const vmEnded = (r: MachineResult): NodeKvmError =>
    new NodeKvmError('ERR_VM_ENDED', `${what()}: the VM ended (${r.reason}${r.detail ? `: ${r.detail}` : ''})`);
  const waited = p.catch(async (e: unknown) => {
    // The console fails its pending waits the moment the machine ends, a turn before wait()
    // resolves: report the end (a reboot or panic mid-command), not a console timeout.
    if ((e as NodeKvmError).code === 'ERR_MACHINE_ENDED') throw vmEnded(await ended);
    // The agent's port ends when the machine does, maybe a turn before wait() resolves: same.
    if (hasEnded?.() === true) throw vmEnded(await ended);
    throw e;
  });
  return Promise.race([waited, ended.then((r) => { throw vmEnded(r); })]);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * A booted guest with a shell on its console: exec() commands, move files, read the console.
 * Get one from bootVm(); close() (or `await using`) stops it.
 */
export class TestVm implements AsyncDisposable {
  /** Name used in errors and artifact files. */
  readonly name: string;
  /** The raw console stream. */
  readonly console: MachineConsole;
  private readonly log: Buffer[] = [];
  private readonly ended: Promise<MachineResult>;
  private queue: Promise<unknown> = Promise.resolve();
  private seq = 0;
  private readonly token = randomBytes(3).toString('hex');
  private broken: string | undefined;
  private closing: Promise<void> | undefined;
  /** @internal backends made by bootVm for this VM, closed with it. */
  ownedBackends: UserNetBackend[] = [];
  private agent: AgentClient | undefined;
  /** Opens a new host stream of the agent's port (set when the machine has one). */
  private agentPort: (() => Duplex | undefined) | undefined;
  /** A new agent is being waited for after the channel closed (the agent died). */
  private reconnecting: Promise<void> | undefined;
  /** Why the agent's channel is not used (undefined while it is). */
  agentProblem: string | undefined = 'no agent channel';
  /** @internal run once when close() has released everything (a template counts its live forks). */
  readonly onClosed: Array<() => void> = [];

  /** @internal use bootVm() */
  constructor(
    /** The underlying machine. */
    readonly machine: Machine,
    name: string,
  ) {
    this.name = name;
    this.console = machine.console;
    this.console.on('output', (chunk: Buffer) => this.log.push(chunk));
    // Nobody has to read the stream: the history and the log keep the output.
    this.console.resume();
    this.ended = machine.wait();
  }

  private readonly hasEnded = (): boolean => this.machine.state === 'ended' || this.machine.state === 'closed';

  /** Which path exec/readFile/writeFile take now. */
  get channel(): 'agent' | 'console' {
    return this.agent?.usable ? 'agent' : 'console';
  }

  /**
   * @internal after boot: use the agent on the port `open` gives once it says HELLO (within
   * `timeout` ms). `resumed`: the guest was restored with its agent already synced (a fork).
   */
  async attachAgent(open: () => Duplex | undefined, timeout: number, resumed = false): Promise<void> {
    this.agentPort = open;
    await this.connectAgent(timeout, resumed);
  }

  private async connectAgent(timeout: number, resumed = false): Promise<void> {
    let port: Duplex | undefined;
    try {
      port = this.agentPort?.();
    } catch (e) {
      this.agentProblem = `opening the agent's port failed: ${(e as Error).message}`;
      return;
    }
    if (port === undefined) {
      this.agentProblem = 'the machine has no agent port';
      return;
    }
    const client = new AgentClient(port, `vm ${this.name} agent`, { resumed });
    const stream = port;
    client.onGone = (e) => {
      stream.destroy();
      if (this.agent !== client) return;
      this.agent = undefined;
      this.agentProblem = e.message;
      // The guest closed its end: the agent died. /init starts a new one; wait for its HELLO
      // on a fresh stream (requests meanwhile wait for that, then fall back to the console).
      if (this.broken === undefined) {
        this.reconnecting = this.connectAgent(AGENT_RECONNECT_WAIT).finally(() => { this.reconnecting = undefined; });
      }
    };
    try {
      await raceEnd(client.ready(timeout), this.ended, () => `vm ${this.name}: waiting for the guest agent`);
      this.agent = client;
      this.agentProblem = undefined;
    } catch (e) {
      client.onGone = undefined;
      client.close();
      stream.destroy();
      this.agentProblem = (e as Error).message;
    }
  }

  /** Requests go to the agent unless it broke; after ERR_AGENT_UNRESPONSIVE it is dropped. */
  private async agentFor(): Promise<AgentClient | undefined> {
    if (this.reconnecting !== undefined) await this.reconnecting;
    if (this.broken !== undefined) throw new NodeKvmError('ERR_VM_UNUSABLE', `vm ${this.name} is not usable: ${this.broken}`);
    return this.agent?.usable ? this.agent : undefined;
  }

  private dropAgent(why: string): void {
    const a = this.agent;
    this.agent = undefined;
    this.agentProblem = why;
    if (a !== undefined) {
      a.onGone = undefined;
      a.close();
    }
  }

  /** Everything the guest printed since boot. */
  consoleLog(): string {
    return Buffer.concat(this.log).toString('latin1');
  }

  /** The last `n` characters the guest printed. */
  tail(n = 2000): string {
    return this.console.tail(n);
  }

  /** Write the console log into `dir` as <name>.console.log; returns the path. */
  saveArtifacts(dir: string): string[] {
    const p = join(dir, `${this.name}.console.log`);
    writeFileSync(p, Buffer.concat(this.log));
    return [p];
  }

  private nextId(): string {
    return `${this.token}${(++this.seq).toString(36)}`;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(() => {
      if (this.broken !== undefined) throw new NodeKvmError('ERR_VM_UNUSABLE', `vm ${this.name} is not usable: ${this.broken}`);
      return fn();
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private send(line: string): void {
    if (line.length > MAX_LINE + 200) throw new NodeKvmError('ERR_EXEC_PROTOCOL', `internal: line of ${line.length} bytes is too long for the tty`);
    this.console.write(`${line}\n`);
  }

  private wait(pattern: RegExp | string, timeout: number, what: string): Promise<string> {
    return raceEnd(this.console.waitFor(pattern, { timeout }), this.ended, () => `vm ${this.name}: ${what}`);
  }

  /** Type a line that prints a fresh sync marker and wait for it. */
  private async sync(timeout: number): Promise<void> {
    const id = this.nextId();
    this.send(printMarker('S', id));
    await this.wait(marker('S', id), timeout, 'waiting for the shell');
  }

  /** @internal after boot: a quiet, predictable shell. */
  async setup(timeout: number): Promise<void> {
    const id = this.nextId();
    // stty -echo also turns off busybox's line editing (it then reads plain lines): nothing
    // typed is echoed and no cursor-position queries are sent.
    this.send(`stty -echo; set +m; dmesg -n 1; PS1=${shellQuote(GUEST_PROMPT)}; PS2=''; mkdir -p ${GUEST_WORK_DIR}; ${printMarker('S', id)}`);
    await this.wait(marker('S', id), timeout, 'setting up the shell');
  }

  /** Upload bytes into a fixed guest path, paced by acks. */
  private async upload(data: Uint8Array, path: string, timeout: number): Promise<void> {
    const base = this.nextId();
    const lines = uploadLines(data, path, (n) => `${base}x${n}`);
    for (let i = 0; i < lines.length; i++) {
      this.send(lines[i]!);
      const got = await this.wait(ackPattern(`${base}x${i}`), timeout, `uploading to ${path}`);
      const status = /:(\d+)$/.exec(got)?.[1];
      if (status !== '0') throw new ExecProtocolError(`vm ${this.name}: upload to ${path} failed (status ${status})`, this.tail());
    }
  }

  /** Ctrl-C, then resync; if the shell stays silent, stop the VM. Returns whether it recovered. */
  private async interrupt(): Promise<boolean> {
    for (let attempt = 0; attempt < 3; attempt++) {
      this.console.write('\x03');
      await sleep(300);
      try {
        await this.sync(RESYNC_TIMEOUT);
        return true;
      } catch (e) {
        if ((e as NodeKvmError).code === 'ERR_VM_ENDED') break;
      }
    }
    this.broken = 'the shell stopped answering after a timeout';
    await this.machine.stop();
    return false;
  }

  /** Run `command` with `sh` in the guest; resolves with its exit status and output. */
  async exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    checkOptions('exec', options, keysOf<ExecOptions>({ timeout: true, cwd: true, env: true, input: true, stdin: true, onStdout: true, onStderr: true }));
    if (options.input !== undefined && options.stdin !== undefined) {
      throw new NodeKvmError('ERR_INVALID_ARG', 'exec: give `input` or `stdin`, not both');
    }
    const agent = await this.agentFor();
    if (agent !== undefined) return this.execAgent(agent, command, options);
    return this.serial(async () => {
      const r = await this.execNow(command, options.stdin === undefined ? options : { ...options, input: await collect(options.stdin) });
      if (r.stdoutBytes.length > 0) options.onStdout?.(r.stdoutBytes);
      if (r.stderrBytes.length > 0) options.onStderr?.(r.stderrBytes);
      return r;
    });
  }

  private async execAgent(agent: AgentClient, command: string, options: ExecOptions): Promise<ExecResult> {
    const timeout = options.timeout ?? DEFAULT_EXEC_TIMEOUT;
    const input = typeof options.input === 'string' ? Buffer.from(options.input) : options.input;
    let r;
    try {
      r = await raceEnd(agent.exec({ command, env: options.env, cwd: options.cwd },
        { stdin: input ?? options.stdin, onStdout: options.onStdout, onStderr: options.onStderr, timeout, killGrace: HOST_GRACE }),
      this.ended, () => `vm ${this.name}: exec ${command}`, this.hasEnded);
    } catch (e) {
      if (e instanceof AgentError && e.code === 'ERR_AGENT_UNRESPONSIVE') {
        this.dropAgent(e.message);
        throw new ExecTimeoutError(command, timeout, this.tail(), false);
      }
      throw e;
    }
    if (r.timedOut) throw new ExecTimeoutError(command, timeout, this.tail(), true);
    return { exitCode: r.exitCode, stdout: r.stdout.toString('utf8'), stderr: r.stderr.toString('utf8'), stdoutBytes: r.stdout, stderrBytes: r.stderr };
  }

  private async execNow(command: string, options: ExecOptions): Promise<ExecResult> {
    const timeout = options.timeout ?? DEFAULT_EXEC_TIMEOUT;
    const w = GUEST_WORK_DIR;
    let script = '';
    if (options.cwd !== undefined) script += `cd ${shellQuote(options.cwd)} || exit 125\n`;
    for (const [k, v] of Object.entries(options.env ?? {})) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new NodeKvmError('ERR_INVALID_ARG', `bad environment variable name ${JSON.stringify(k)}`);
      script += `export ${k}=${shellQuote(v)}\n`;
    }
    script += `${command}\n`;
    const id = this.nextId();
    let stdin = '/dev/null';
    if (options.input !== undefined) {
      await this.upload(typeof options.input === 'string' ? Buffer.from(options.input) : options.input, `${w}/i`, timeout);
      stdin = `${w}/i`;
    }
    const b64 = Buffer.from(script).toString('base64');
    const run = execLine(id, `${w}/c`, timeout / 1000, stdin);
    const inline = `printf %s '${b64}' | base64 -d >${w}/c; ${run}`;
    if (inline.length <= MAX_LINE) {
      this.send(inline);
    } else {
      await this.upload(Buffer.from(script), `${w}/c`, timeout);
      this.send(run);
    }
    let text: string;
    try {
      // The guest's watchdog fires first; the host waits longer only for a shell gone silent.
      text = await this.wait(execReplyPattern(id), timeout + HOST_GRACE, `exec ${command}`);
    } catch (e) {
      if (!(e instanceof ConsoleTimeoutError)) throw e;
      const tail = this.tail();
      const recovered = await this.interrupt();
      throw new ExecTimeoutError(command, timeout, tail, recovered);
    }
    try {
      const r = parseExecReply(text, id);
      if (r.timedOut) throw new ExecTimeoutError(command, timeout, this.tail(), true);
      return { exitCode: r.exitCode, stdout: r.stdout.toString('utf8'), stderr: r.stderr.toString('utf8'), stdoutBytes: r.stdout, stderrBytes: r.stderr };
    } catch (e) {
      if (e instanceof ExecReplyError) throw new ExecProtocolError(`vm ${this.name}: ${e.message}`, this.tail());
      throw e;
    }
  }

  /** exec(), throwing ERR_EXEC_FAILED (with stdout and stderr) on a non-zero exit status. */
  async execOk(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    const r = await this.exec(command, options);
    if (r.exitCode !== 0) throw new ExecFailedError(command, r.exitCode, r.stdout, r.stderr);
    return r;
  }

  /**
   * Mount share `tag` (see BootVmOptions.shares) at guest directory `guestPath` (created if
   * missing). Linux mounts a tag once at a time (EBUSY): share a directory twice to mount it twice.
   */
  async mount(tag: string, guestPath: string, options: MountOptions = {}): Promise<void> {
    const cache = options.cache ?? 'none';
    const msize = options.msize ?? 512000;
    if (!/^(none|loose|mmap|fscache)$/.test(cache)) throw new NodeKvmError('ERR_INVALID_ARG', `mount: unknown cache mode ${cache}`);
    if (!Number.isSafeInteger(msize) || msize < 4096) throw new NodeKvmError('ERR_INVALID_ARG', `mount: msize ${msize} is not an integer >= 4096`);
    const o = `trans=virtio,version=9p2000.L,msize=${msize},cache=${cache}${options.readonly ? ',ro' : ''}`;
    const p = shellQuote(guestPath);
    await this.execOk(`mkdir -p ${p} && mount -t 9p -o ${o} ${shellQuote(tag)} ${p}`, { timeout: options.timeout });
  }

  /** Write `data` to the guest file `path` (created or truncated). */
  async writeFile(path: string, data: string | Uint8Array, options: { timeout?: number; mode?: number } = {}): Promise<void> {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    const timeout = options.timeout ?? DEFAULT_EXEC_TIMEOUT;
    const agent = await this.agentFor();
    if (agent !== undefined) {
      return this.agentFile(`writeFile ${path}`, timeout, agent.writeFile(path, bytes, { mode: options.mode, timeout }));
    }
    return this.serial(async () => {
      await this.upload(bytes, `${GUEST_WORK_DIR}/u`, timeout);
      const mode = options.mode === undefined ? '' : ` && chmod ${options.mode.toString(8)} ${shellQuote(path)}`;
      const r = await this.execNow(`cat ${GUEST_WORK_DIR}/u >${shellQuote(path)}${mode} && rm -f ${GUEST_WORK_DIR}/u`, { timeout });
      if (r.exitCode !== 0) throw new ExecFailedError(`writeFile ${path}`, r.exitCode, r.stdout, r.stderr);
    });
  }

  /** Read the guest file `path`. */
  async readFile(path: string, options: { timeout?: number } = {}): Promise<Buffer> {
    const timeout = options.timeout ?? DEFAULT_EXEC_TIMEOUT;
    const agent = await this.agentFor();
    if (agent !== undefined) return this.agentFile(`readFile ${path}`, timeout, agent.readFile(path, { timeout }));
    return this.serial(async () => {
      const q = shellQuote(path);
      const size = await this.execNow(`wc -c <${q}`, { timeout });
      if (size.exitCode !== 0) throw new ExecFailedError(`readFile ${path}`, size.exitCode, size.stdout, size.stderr);
      const total = Number(size.stdout.trim());
      const parts: Buffer[] = [];
      for (let i = 0, got = 0; got < total; i++) {
        const r = await this.execNow(`dd if=${q} bs=${READ_CHUNK} skip=${i} count=1 2>/dev/null`, { timeout });
        if (r.exitCode !== 0 || r.stdoutBytes.length === 0) throw new ExecFailedError(`readFile ${path} (chunk ${i})`, r.exitCode, '', r.stderr);
        parts.push(r.stdoutBytes);
        got += r.stdoutBytes.length;
      }
      return Buffer.concat(parts);
    });
  }

  /**
   * @internal A fork's clock step (template.ts): adds `ms` to the guest's wall clock through
   * the agent. False when requests go over the serial console (the caller runs a command).
   */
  async advanceClockByAgent(ms: number, timeout: number): Promise<boolean> {
    const agent = await this.agentFor();
    if (agent === undefined) return false;
    await this.agentFile('advance the clock', timeout, agent.advanceClock(Math.round(ms * 1000), { timeout }));
    return true;
  }

  /** A file request over the agent, its errors mapped to the console path's classes. */
  private async agentFile<T>(what: string, timeout: number, p: Promise<T>): Promise<T> {
    try {
      return await raceEnd(p, this.ended, () => `vm ${this.name}: ${what}`, this.hasEnded);
    } catch (e) {
      if (e instanceof AgentRequestError) throw new GuestFileError(what, e.errnoCode, e.errno, e.message);
      if (e instanceof AgentError && e.code === 'ERR_AGENT_TIMEOUT') throw new ExecTimeoutError(what, timeout, this.tail(), true);
      throw e;
    }
  }

  /** Ask the guest to power off (the shell exits, init powers off) and wait for the machine. */
  poweroff(options: { timeout?: number } = {}): Promise<MachineResult> {
    return this.serial(async () => {
      this.send('exit');
      const timeout = options.timeout ?? 60_000;
      let timer: NodeJS.Timeout | undefined;
      const r = await Promise.race([
        this.ended,
        new Promise<MachineResult>((resolve) => { timer = setTimeout(() => resolve(this.machine.stop()), timeout); }),
      ]);
      clearTimeout(timer);
      this.broken = `it ended (${r.reason})`;
      return r;
    });
  }

  /**
   * Forward a host port (on 127.0.0.1) to `guestPort` on the guest's user network, and return
   * the host port (`host` 0 or omitted: a free one). Needs a NIC on a user network.
   */
  async forward(guestPort: number, opts: { proto?: 'tcp' | 'udp'; host?: number } = {}): Promise<number> {
    const user = this.machine.options.net.map((n) => n.backend).find((b): b is UserNetBackend => b instanceof UserNetBackend);
    if (user === undefined) throw new NodeKvmError('ERR_INVALID_NET', `vm ${this.name} has no NIC on a user network (bootVm({ net: 'user' }))`);
    return user.forward(guestPort, opts);
  }

  /** Stop the VM and release it. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.broken ??= 'it is closed';
      this.dropAgent('the VM is closed');
      await this.machine.close();
      // Backends bootVm made for this VM (net: 'user') end with it.
      for (const b of this.ownedBackends) b.close();
      await Promise.all(this.ownedBackends.map((b) => b.exited));
      this.console.removeAllListeners('output');
      for (const f of this.onClosed.splice(0)) f();
    })();
    return this.closing;
  }

  /** Same as close(), for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * @internal The one place a TestVm is made around a machine, booted (bootVm) or restored from a
 * template (VmTemplate.fork), so both get the same exec channel, console and cleanup.
 */
export function adoptMachine(machine: Machine, name: string, owned: UserNetBackend[]): TestVm {
  const vm = new TestVm(machine, name);
  vm.ownedBackends = owned;
  return vm;
}

/** Boot a guest and wait until its shell is ready for exec(). */
export async function bootVm(opts: BootVmOptions = {}): Promise<TestVm> {
  checkOptions('bootVm', opts, keysOf<BootVmOptions>({ name: true, image: true, bzImage: true, memory: true, cpus: true, net: true, files: true, cmdline: true, verbose: true, timeout: true, t: true, agent: true, shares: true }));
  const name = opts.name ?? `vm${++vmCount}`;
  const image = await resolveImage(opts.image);
  const kernelPath = opts.bzImage ? image.kernel : image.vmlinux;
  // Host files first: a bad path is an ERR_FILE before any VM exists.
  const files = Object.entries(opts.files ?? {}).map(([guestPath, src]) =>
    [guestPath, typeof src === 'string' ? readUserFile(src, `file for ${guestPath}`) : src] as const);
  const useAgent = (opts.agent ?? true) && image.manifest.agent !== undefined;
  const owned = opts.net === 'user' ? [userNet()] : [];
  const net: NetOptions[] = opts.net === 'user' ? owned.map((backend) => ({ backend })) : opts.net ?? [];
  // A user network hands out addresses by DHCP: the default image's /init asks for one.
  const dhcp = net[0]?.backend instanceof UserNetBackend && !/(^|\s)nkvm\.ip=/.test(opts.cmdline ?? '') ? 'nkvm.ip=dhcp' : '';
  const extra = [opts.verbose ? '' : 'quiet', opts.cmdline ?? '', dhcp].filter((s) => s !== '').join(' ');
  let machine: Machine;
  try {
    machine = await Machine.create({
    kernel: cachedFile(kernelPath),
    initrd: cachedFile(image.initrd),
    cmdline: extra === '' ? DEFAULT_CMDLINE : `${DEFAULT_CMDLINE} ${extra}`,
    memory: opts.memory ?? '256M',
    cpus: opts.cpus ?? 1,
    net: net.map((n) => ({ ...n, mac: n.mac ?? uniqueMac() })),
    shares: (opts.shares ?? []).map(({ path, tag, readonly }) => ({ path, tag, readonly })),
    ...(useAgent ? agentPortOptions() : {}),
    });
  } catch (e) {
    for (const b of owned) b.close();
    throw e;
  }
  const vm = adoptMachine(machine, name, owned);
  opts.t?.after(() => vm.close());
  const timeout = opts.timeout ?? DEFAULT_BOOT_TIMEOUT;
  const deadline = Date.now() + timeout;
  const left = (): number => Math.max(1, deadline - Date.now());
  try {
    machine.start();
    await raceEnd(machine.console.waitFor(READY_MARKER, { timeout: left() }), machine.wait(), () => `vm ${name}: booting`);
    await raceEnd(machine.console.waitFor(GUEST_PROMPT, { timeout: left() }), machine.wait(), () => `vm ${name}: waiting for the shell`);
    await vm.setup(left());
    // The agent starts early in /init and waits for its port: by the time the shell answers it
    // has normally said HELLO. If it has not within AGENT_HELLO_WAIT, the console serves.
    if (useAgent) await vm.attachAgent(() => openAgentPort(machine), Math.min(left(), AGENT_HELLO_WAIT));
    for (const s of opts.shares ?? []) {
      if (s.mount !== undefined) await vm.mount(s.tag, s.mount, { timeout: left() });
    }
    for (const [guestPath, bytes] of files) await vm.writeFile(guestPath, bytes, { timeout: left() });
  } catch (e) {
    const tail = vm.tail();
    await vm.close();
    throw new BootError(`vm ${name} did not boot to a usable shell within ${timeout} ms: ${(e as Error).message.split('\n')[0]}`, tail, { cause: e });
  }
  return vm;
}
