// runInLab(): boot the L1 (QEMU TCG with emulated SVM), run one command in the host's root
// (overlaid, read-only underneath) with a working /dev/kvm, stream its stdout/stderr back
// live and separately, and return its exit status.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { watchForFreeze } from './freeze-watch.js';
import type { Writable } from 'node:stream';
import { InvalidArgumentError, NodeKvmError } from '../errors.js';
import type { Image } from '../images/manifest.js';
import { jobScript, labEnvironment } from './job.js';
import { LAB_EXIT_MARKER_PREFIX, LAB_READY_MARKER } from './l1-init.js';
import { getLabImage } from './lab-image.js';
import { labQemuArgs, QEMU_BINARY } from './qemu.js';
import { parseSize, type Size } from '../size.js';
import { checkOptions, keysOf } from '../options-check.js';

/** How long a lab run may take by default (30 minutes). */
export const DEFAULT_LAB_TIMEOUT_MS = 1_800_000;
/** L1's RAM by default. */
export const DEFAULT_LAB_MEMORY = '3G';
/** Exit status reported when the lab timed out (as timeout(1) does). */
export const LAB_TIMEOUT_STATUS = 124;
/** Exit status reported when L1 ended without running the command to completion. */
export const LAB_FAILURE_STATUS = 125;

/** Options of runInLab(). */
export interface RunInLabOptions {
  /** The command and its arguments, run at `cwd` inside L1. */
  command: string[];
  /** Working directory inside the lab (a host path; default process.cwd()). */
  cwd?: string;
  /** Added to the inherited PATH/HOME/LANG/TERM/XDG_CACHE_HOME/CI; undefined removes. */
  env?: Record<string, string | undefined>;
  /** Wall-clock limit in ms (default DEFAULT_LAB_TIMEOUT_MS). */
  timeoutMs?: number;
  /** Where the command's stdout goes (default process.stdout). */
  stdout?: Writable;
  /** Where the command's stderr goes (default process.stderr). */
  stderr?: Writable;
  /** L1's console (kernel messages, markers), live. */
  console?: Writable;
  /** L1's RAM: '3G', '2048M' or bytes (default DEFAULT_LAB_MEMORY), at least 256M. */
  memory?: Size;
  /** L1's CPUs (default 1). */
  cpus?: number;
  /** Abort to end the run early. */
  signal?: AbortSignal;
  /** L1 image (default: the cached "lab" image, built when missing). */
  image?: Image;
  /** Boot L1 from vmlinux via PVH (default true) or from the bzImage. */
  pvh?: boolean;
  /** Progress lines. */
  log?: (line: string) => void;
}

/** How a lab run ended. */
export interface LabResult {
  /** The command's status; 124 on timeout, 125 when L1 never reported one. */
  exitCode: number;
  /** True when timeoutMs ran out. */
  timedOut: boolean;
  /** True when the signal aborted it. */
  aborted: boolean;
  /** Last lines of L1's console, plus QEMU's own diagnostics when it failed. */
  consoleTail: string;
  /** Spawn to L1 ready-to-run (ms), if it got there. */
  bootMs?: number;
  /** Wall-clock time of the whole run (ms). */
  durationMs: number;
  /** Why the status is not the command's own, when it is not. */
  error?: string;
}

const TAIL_BYTES = 16 * 1024;

/** A unix-socket server that takes QEMU's one connection for a chardev. */
function listenOnce(path: string): Promise<{ server: Server; connection: Promise<Socket> }> {
  return new Promise((resolveListen, reject) => {
    let onConn!: (s: Socket) => void;
    const connection = new Promise<Socket>((r) => (onConn = r));
    const server = createServer((s) => {
      server.close(); // exactly one peer
      onConn(s);
    });
    server.once('error', reject);
    server.listen(path, () => resolveListen({ server, connection }));
  });
}

const ended = (s: Socket): Promise<void> => new Promise((r) => (s.destroyed || s.readableEnded ? r() : s.once('close', () => r())));

/**
 * Run a command inside the nested lab: boot an L1 Debian kernel under QEMU TCG with emulated
 * SVM, mount this host's root read-only over 9p, run `command` at the same path with a working
 * /dev/kvm, and stream its output back.
 */
export async function runInLab(opts: RunInLabOptions): Promise<LabResult> {
  checkOptions('runInLab', opts, keysOf<RunInLabOptions>({ command: true, cwd: true, env: true, timeoutMs: true, stdout: true, stderr: true, console: true, memory: true, cpus: true, signal: true, image: true, pvh: true, log: true }));
  if (opts === undefined || !Array.isArray(opts.command) || opts.command.length === 0) {
    throw new InvalidArgumentError('runInLab needs command: a non-empty array of strings', 'ERR_LAB_COMMAND');
  }
  const timeoutMs = opts.timeoutMs ?? DEFAULT_LAB_TIMEOUT_MS;
  if (!(timeoutMs > 0)) throw new InvalidArgumentError(`timeoutMs must be > 0 (got ${timeoutMs})`, 'ERR_LAB_TIMEOUT');
  const cpus = opts.cpus ?? 1;
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > 64) throw new InvalidArgumentError(`cpus must be an integer 1..64 (got ${cpus})`, 'ERR_LAB_CPUS');
  let memoryBytes: number;
  try {
    memoryBytes = parseSize(opts.memory ?? DEFAULT_LAB_MEMORY, 'runInLab memory');
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message, 'ERR_LAB_MEMORY');
  }
  if (memoryBytes < 256 * 2 ** 20) throw new InvalidArgumentError(`runInLab memory must be at least 256M, got ${memoryBytes} bytes`, 'ERR_LAB_MEMORY');
  // QEMU's -m counts MiB.
  const memory = `${Math.ceil(memoryBytes / 2 ** 20)}M`;
  const image = opts.image ?? (await getLabImage({ build: true, log: opts.log }));
  const env = labEnvironment(opts.env);
  const cwd = resolve(opts.cwd ?? process.cwd());

  const dir = mkdtempSync(join(tmpdir(), 'node-kvm-lab-'));
  if (/\s/.test(dir)) throw new InvalidArgumentError(`temp dir ${dir} contains whitespace; set TMPDIR to a path without spaces`, 'ERR_LAB_TMPDIR');
  const servers: Server[] = [];
  let child: ChildProcess | undefined;
  let timer: NodeJS.Timeout | undefined;
  const killChild = (): void => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  const onAbort = (): void => {
    aborted = true;
    killChild();
  };
  let aborted = false;
  let timedOut = false;
  process.once('exit', killChild); // never leave QEMU behind, whatever happens to us
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const jobPath = join(dir, 'job.sh');
    writeFileSync(jobPath, jobScript(opts.command, cwd, env), { mode: 0o755 });
    const sockets = { console: join(dir, 'console.sock'), stdout: join(dir, 'stdout.sock'), stderr: join(dir, 'stderr.sock') };
    const [con, out, err] = await Promise.all([listenOnce(sockets.console), listenOnce(sockets.stdout), listenOnce(sockets.stderr)]);
    servers.push(con.server, out.server, err.server);
    if (opts.signal?.aborted) aborted = true;

    let consoleTail = '';
    let lineBuf = '';
    let bootMs: number | undefined;
    let status: number | undefined;
    let qemuDiag = '';
    let pokes = 0;
    const t0 = Date.now();

    if (!aborted) {
      const args = labQemuArgs({ image, memory, cpus, jobPath, sockets, pvh: opts.pvh });
      opts.log?.(`${QEMU_BINARY} ${args.join(' ')}`);
      child = spawn(QEMU_BINARY, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      const spawnError = new Promise<Error>((r) => child!.once('error', r));
      child.stdout!.on('data', (d: Buffer) => (qemuDiag = (qemuDiag + d.toString()).slice(-TAIL_BYTES)));
      child.stderr!.on('data', (d: Buffer) => (qemuDiag = (qemuDiag + d.toString()).slice(-TAIL_BYTES)));
      const exited = new Promise<void>((r) => child!.once('close', () => r()));
      let consoleSocket: Socket | undefined;
      const freeze = child.pid === undefined ? undefined : watchForFreeze(child.pid, () => consoleSocket, opts.log);
      void exited.then(() => { pokes = freeze?.pokes ?? 0; freeze?.stop(); });
      timer = setTimeout(() => {
        timedOut = true;
        killChild();
      }, timeoutMs);

      const wire = async (conn: Promise<Socket>, sink: Writable | undefined): Promise<void> => {
        const s = await Promise.race([conn, exited.then(() => undefined)]);
        if (!s) return;
        if (sink) s.pipe(sink, { end: false });
        else s.resume();
        await ended(s);
      };
      const consoleDone = (async (): Promise<void> => {
        const s = await Promise.race([con.connection, exited.then(() => undefined)]);
        if (!s) return;
        consoleSocket = s;
        s.on('data', (d: Buffer) => {
          opts.console?.write(d);
          const text = d.toString('latin1');
          consoleTail = (consoleTail + text).slice(-TAIL_BYTES);
          lineBuf += text;
          let nl: number;
          while ((nl = lineBuf.indexOf('\n')) >= 0) {
            const line = lineBuf.slice(0, nl).replace(/\r$/, '');
            lineBuf = lineBuf.slice(nl + 1);
            if (bootMs === undefined && line.startsWith(LAB_READY_MARKER)) bootMs = Date.now() - t0;
            const m = line.startsWith(LAB_EXIT_MARKER_PREFIX) ? /^(\d+)/.exec(line.slice(LAB_EXIT_MARKER_PREFIX.length)) : null;
            if (m && status === undefined) status = Number(m[1]);
          }
          if (lineBuf.length > TAIL_BYTES) lineBuf = lineBuf.slice(-TAIL_BYTES);
        });
        await ended(s);
      })();
      const failed = await Promise.race([spawnError, Promise.all([exited, consoleDone, wire(out.connection, opts.stdout), wire(err.connection, opts.stderr)]).then(() => undefined)]);
      if (failed) {
        const code = (failed as NodeJS.ErrnoException).code;
        throw new NodeKvmError('ERR_LAB_QEMU', code === 'ENOENT'
          ? `${QEMU_BINARY} not found; install it (apt-get install qemu-system-x86) to use the lab`
          : `cannot start ${QEMU_BINARY}: ${failed.message}`, { cause: failed });
      }
    }
    const durationMs = Date.now() - t0;
    const tailLines = consoleTail.split('\n').slice(-40).join('\n');
    const base = { timedOut, aborted, bootMs, durationMs };
    if (timedOut) {
      return { ...base, exitCode: LAB_TIMEOUT_STATUS, consoleTail: tailLines, error: `the lab timed out after ${Math.round(timeoutMs / 1000)} s (raise --timeout / timeoutMs); the freeze watch poked L1 ${pokes} time(s)` };
    }
    if (aborted) return { ...base, exitCode: LAB_FAILURE_STATUS, consoleTail: tailLines, error: 'the lab was aborted' };
    if (status === undefined) {
      const diag = qemuDiag.trim() ? `${tailLines}\n--- qemu ---\n${qemuDiag.trim()}` : tailLines;
      return { ...base, exitCode: LAB_FAILURE_STATUS, consoleTail: diag, error: `L1 ended without reporting the command's status (QEMU exit ${child?.exitCode ?? child?.signalCode})` };
    }
    return { ...base, exitCode: status, consoleTail: tailLines };
  } finally {
    if (timer) clearTimeout(timer);
    killChild();
    opts.signal?.removeEventListener('abort', onAbort);
    process.removeListener('exit', killChild);
    for (const s of servers) s.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
