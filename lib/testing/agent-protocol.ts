// The exec channel's wire format, shared with the guest agent (guest-agent/nkvm-agent.c), as
// pure functions and a streaming decoder (unit-tested without a guest).
//
// Every message, both ways, is one frame: [u32 payload length][u8 type][u32 id][payload],
// little endian. `id` names the request a frame belongs to (0 for HELLO); the host picks ids.
//
//   host -> guest                              guest -> host
//   EXEC       flags, argc, envc, strings      HELLO      "NKVM-AGENT-HELLO" u32 version
//   STDIN      bytes                           STDOUT     bytes, as the command writes them
//   STDIN_EOF                                  STDERR     bytes
//   KILL       SIGKILL the command's group,    EXIT       u8 signalled, u32 status or signal
//              or cancel a file transfer       ERROR      i32 errno, UTF-8 message
//   WRITE_OPEN u8 has mode, u32 mode, path\0   OK         (READ_OPEN: u64 size, ~0 = unknown)
//   WRITE_DATA bytes                           READ_DATA  bytes
//   WRITE_END                                  READ_EOF
//   READ_OPEN  path\0                          STDIN_ACK  u32 stdin bytes the command took
//   SYNC       "NKVM-HOST-SYNC!!"
//   CLOCK_ADVANCE  i64 microseconds to add     OK or ERROR
//              to the wall clock (a restored
//              guest's clock is behind)
//
// Start of a conversation: the agent sends HELLO and discards its input until it finds a SYNC
// frame; the host sends SYNC when it sees a HELLO. So bytes a dead agent left half-read in the
// port, or requests the host sent before it learned of the new agent, are never parsed.
//
// EXEC's payload: [u8 flags (1 stdin piped, 2 shell string)][u32 argc][u32 envc] then
// NUL-terminated strings: cwd ('' = the agent's), argv..., env ("K=V") ... . Stdin is
// credit-based (at most STDIN_WINDOW unacknowledged bytes), so a command that does not read
// cannot make the agent buffer without bound; everything else relies on the port's own flow
// control: the agent stops reading children and files while its queue to the host is long.
//
// The guest is hostile: the decoder bounds every length, rejects unknown types and malformed
// payloads with ERR_AGENT_PROTOCOL, and after such an error discards input until the next
// HELLO frame (an agent that restarts sends one first), so a broken stream never throws out of
// the caller's event loop and can recover.
import { constants as osConstants } from 'node:os';
import { NodeKvmError } from '../errors.js';

export const HEADER_SIZE = 9;
export const PROTOCOL_VERSION = 1;
/** The virtio-console port the default image's agent listens on. */
export const AGENT_PORT_NAME = 'org.nodekvm.agent.0';

export const T = {
  EXEC: 0x01, STDIN: 0x02, STDIN_EOF: 0x03, KILL: 0x04,
  WRITE_OPEN: 0x05, WRITE_DATA: 0x06, WRITE_END: 0x07, READ_OPEN: 0x08, SYNC: 0x09, CLOCK_ADVANCE: 0x0a,
  HELLO: 0x81, STDOUT: 0x82, STDERR: 0x83, EXIT: 0x84, ERROR: 0x85,
  OK: 0x86, READ_DATA: 0x87, READ_EOF: 0x88, STDIN_ACK: 0x89,
} as const;

export const EXEC_STDIN = 1;
export const EXEC_SHELL = 2;

/** Largest frame the agent accepts (its limit, MAX_IN_FRAME in the C source). */
export const MAX_REQUEST_PAYLOAD = 16 * 1024 * 1024;
/** Largest frame accepted from the guest: the agent sends at most 64 KiB of data per frame. */
export const MAX_GUEST_PAYLOAD = 1024 * 1024;
/** Bytes per STDIN / WRITE_DATA frame. */
export const DATA_CHUNK = 64 * 1024;
/** Unacknowledged stdin bytes in flight per command. */
export const STDIN_WINDOW = 1024 * 1024;

const HELLO_MAGIC = Buffer.from('NKVM-AGENT-HELLO');
const HELLO_PAYLOAD = HELLO_MAGIC.length + 4;
export const SYNC_MAGIC = Buffer.from('NKVM-HOST-SYNC!!');
/** A HELLO frame's first bytes: what resynchronisation looks for. */
export const HELLO_PREFIX = Buffer.concat([frameHeader(T.HELLO, 0, HELLO_PAYLOAD), HELLO_MAGIC]);

/** The guest sent something that does not follow the protocol. Code: `ERR_AGENT_PROTOCOL`. */
export class AgentProtocolError extends NodeKvmError {
  /** @internal */
  constructor(message: string) {
    super('ERR_AGENT_PROTOCOL', `guest agent: ${message}`);
  }
}

export function frameHeader(type: number, id: number, length: number): Buffer {
  const h = Buffer.allocUnsafe(HEADER_SIZE);
  h.writeUInt32LE(length, 0);
  h.writeUInt8(type, 4);
  h.writeUInt32LE(id >>> 0, 5);
  return h;
}

/** One whole frame in one buffer (the payload copied; for small frames). */
export function encodeFrame(type: number, id: number, payload: Uint8Array = Buffer.alloc(0)): Buffer {
  return Buffer.concat([frameHeader(type, id, payload.byteLength), payload]);
}

export interface ExecRequest {
  /** One shell string (`sh -c`), or argv run directly (PATH lookup). */
  command: string | readonly string[];
  env?: Record<string, string>;
  cwd?: string;
  /** Stdin is a pipe fed by STDIN frames (otherwise /dev/null). */
  stdin?: boolean;
}

function cString(s: string, what: string): Buffer {
  if (s.includes('\0')) throw new NodeKvmError('ERR_INVALID_ARG', `${what} contains a NUL byte`);
  return Buffer.from(`${s}\0`);
}

export function encodeExec(req: ExecRequest): Buffer {
  const shell = typeof req.command === 'string';
  const argv = shell ? [req.command as string] : [...req.command];
  if (argv.length === 0) throw new NodeKvmError('ERR_INVALID_ARG', 'exec needs a command (argv is empty)');
  const env = Object.entries(req.env ?? {}).map(([k, v]) => {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new NodeKvmError('ERR_INVALID_ARG', `bad environment variable name ${JSON.stringify(k)}`);
    return cString(`${k}=${v}`, `environment variable ${k}`);
  });
  const head = Buffer.alloc(9);
  head.writeUInt8((req.stdin ? EXEC_STDIN : 0) | (shell ? EXEC_SHELL : 0), 0);
  head.writeUInt32LE(argv.length, 1);
  head.writeUInt32LE(env.length, 5);
  const payload = Buffer.concat([head, cString(req.cwd ?? '', 'cwd'), ...argv.map((a, i) => cString(a, `argv[${i}]`)), ...env]);
  if (payload.length > MAX_REQUEST_PAYLOAD) {
    throw new NodeKvmError('ERR_EXEC_TOO_LARGE', `exec request of ${payload.length} bytes exceeds the agent's ${MAX_REQUEST_PAYLOAD}-byte limit; put the script in a file (writeFile) and run that`);
  }
  return payload;
}

/** Decoded inverse of encodeExec (the host does not need it; tests and fuzzers do). */
export function decodeExec(p: Buffer): ExecRequest & { command: string | string[] } {
  if (p.length < 10 || p[p.length - 1] !== 0) throw new AgentProtocolError('malformed EXEC');
  const flags = p.readUInt8(0);
  const argc = p.readUInt32LE(1);
  const envc = p.readUInt32LE(5);
  const strs = p.subarray(9, p.length - 1).toString('utf8').split('\0');
  if (argc === 0 || strs.length !== 1 + argc + envc) throw new AgentProtocolError('malformed EXEC');
  const argv = strs.slice(1, 1 + argc);
  const env = Object.fromEntries(strs.slice(1 + argc).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  return { command: flags & EXEC_SHELL ? argv[0]! : argv, env, cwd: strs[0], stdin: (flags & EXEC_STDIN) !== 0 };
}

export function encodeWriteOpen(path: string, mode: number | undefined): Buffer {
  const head = Buffer.alloc(5);
  if (mode !== undefined) {
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) throw new NodeKvmError('ERR_INVALID_ARG', `mode must be an integer 0..0o7777 (got ${mode})`);
    head.writeUInt8(1, 0);
    head.writeUInt32LE(mode, 1);
  }
  return Buffer.concat([head, encodePath(path)]);
}

export function encodePath(path: string): Buffer {
  if (path === '') throw new NodeKvmError('ERR_INVALID_ARG', 'path is empty');
  const b = cString(path, 'path');
  if (b.length > 4096) throw new NodeKvmError('ERR_INVALID_ARG', `path of ${b.length - 1} bytes is longer than PATH_MAX`);
  return b;
}

export function encodeU32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0, 0);
  return b;
}

export interface Frame {
  type: number;
  id: number;
  payload: Buffer;
}

/** What a guest frame's payload must look like, per type. */
const GUEST_TYPES = new Map<number, { name: string; size?: (n: number) => boolean }>([
  [T.HELLO, { name: 'HELLO', size: (n) => n === HELLO_PAYLOAD }],
  [T.STDOUT, { name: 'STDOUT', size: (n) => n > 0 }],
  [T.STDERR, { name: 'STDERR', size: (n) => n > 0 }],
  [T.EXIT, { name: 'EXIT', size: (n) => n === 5 }],
  [T.ERROR, { name: 'ERROR', size: (n) => n >= 4 && n <= 4096 }],
  [T.OK, { name: 'OK', size: (n) => n === 0 || n === 8 }],
  [T.READ_DATA, { name: 'READ_DATA', size: (n) => n > 0 }],
  [T.READ_EOF, { name: 'READ_EOF', size: (n) => n === 0 }],
  [T.STDIN_ACK, { name: 'STDIN_ACK', size: (n) => n === 4 }],
]);

export function typeName(type: number): string {
  return GUEST_TYPES.get(type)?.name ?? `0x${type.toString(16)}`;
}

/**
 * Streaming decoder of guest frames. push() bytes as they arrive; complete frames go to
 * `onFrame`, a protocol violation to `onError` (once per violation), after which input is
 * discarded until the next HELLO frame. Payloads are copied out of the input only when a frame
 * spans chunks; at most one frame's payload (≤ MAX_GUEST_PAYLOAD) is held.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private syncing = false;
  /** Frames discarded while resynchronising, and protocol violations seen. */
  readonly counters = { violations: 0, discardedBytes: 0 };

  constructor(
    private readonly onFrame: (f: Frame) => void,
    private readonly onError: (e: AgentProtocolError) => void,
  ) {}

  /** Throw away everything buffered and wait for a HELLO (e.g. the port was closed). */
  resync(): void {
    this.counters.discardedBytes += this.buffered;
    this.chunks = [];
    this.buffered = 0;
    this.syncing = true;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    for (;;) {
      if (this.syncing && !this.findHello()) return;
      if (this.buffered < HEADER_SIZE) return;
      const h = this.peek(HEADER_SIZE);
      const len = h.readUInt32LE(0);
      const type = h.readUInt8(4);
      const id = h.readUInt32LE(5);
      const spec = GUEST_TYPES.get(type);
      let bad: string | undefined;
      if (spec === undefined) bad = `unknown frame type 0x${type.toString(16)} (id ${id})`;
      else if (len > MAX_GUEST_PAYLOAD) bad = `${spec.name} frame of ${len} bytes (limit ${MAX_GUEST_PAYLOAD})`;
      else if (spec.size && !spec.size(len)) bad = `${spec.name} frame with a ${len}-byte payload`;
      if (bad !== undefined) {
        this.violation(bad);
        continue;
      }
      if (this.buffered < HEADER_SIZE + len) return;
      this.consume(HEADER_SIZE);
      const payload = this.take(len);
      if (type === T.HELLO && !payload.subarray(0, HELLO_MAGIC.length).equals(HELLO_MAGIC)) {
        this.violation('HELLO without its magic');
        continue;
      }
      this.onFrame({ type, id, payload });
    }
  }

  private violation(msg: string): void {
    this.counters.violations++;
    // Skip the first byte so the HELLO search cannot find this same (bad) position again.
    this.consume(1);
    this.counters.discardedBytes++;
    this.syncing = true;
    this.onError(new AgentProtocolError(`${msg}; discarding input until the agent says HELLO again`));
  }

  /** Drop bytes up to the next HELLO prefix; true when one starts the buffer now. */
  private findHello(): boolean {
    const all = this.peek(this.buffered);
    const at = all.indexOf(HELLO_PREFIX);
    if (at < 0) {
      // Keep a tail that could be the start of a HELLO split across chunks.
      const keep = Math.min(all.length, HELLO_PREFIX.length - 1);
      this.counters.discardedBytes += all.length - keep;
      this.chunks = keep > 0 ? [Buffer.from(all.subarray(all.length - keep))] : [];
      this.buffered = keep;
      return false;
    }
    this.counters.discardedBytes += at;
    this.consume(at);
    this.syncing = false;
    return true;
  }

  /** The first n buffered bytes (a view when one chunk holds them). */
  private peek(n: number): Buffer {
    if (this.chunks[0]!.length >= n) return this.chunks[0]!.subarray(0, n);
    const all = Buffer.concat(this.chunks, this.buffered);
    this.chunks = [all];
    return all.subarray(0, n);
  }

  private consume(n: number): void {
    this.buffered -= n;
    while (n > 0) {
      const c = this.chunks[0]!;
      if (c.length <= n) {
        this.chunks.shift();
        n -= c.length;
      } else {
        this.chunks[0] = c.subarray(n);
        n = 0;
      }
    }
  }

  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[0]!;
    if (first.length >= n) {
      const out = first.subarray(0, n);
      this.consume(n);
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.buffered -= n;
    return out;
  }
}

export interface ExitStatus {
  /** Exit status, or 128 + signal when a signal ended the command (as shells report it). */
  exitCode: number;
  signal: number | undefined;
}

export function parseExit(p: Buffer): ExitStatus {
  const signalled = p.readUInt8(0) !== 0;
  const v = p.readUInt32LE(1);
  if (signalled) return { exitCode: 128 + (v & 0x7f), signal: v & 0x7f };
  return { exitCode: v & 0xff, signal: undefined };
}

export interface GuestErrno {
  errno: number;
  /** The errno's name ('ENOENT') when known. */
  code: string;
  message: string;
}

const ERRNO_NAMES = new Map<number, string>();
for (const [name, n] of Object.entries(osConstants.errno)) if (!ERRNO_NAMES.has(n)) ERRNO_NAMES.set(n, name);

export function parseError(p: Buffer): GuestErrno {
  const errno = p.readInt32LE(0);
  // The message is the guest's: only printable text gets through, and not much of it.
  const message = p.subarray(4).toString('utf8').replace(/[^\x20-\x7e\u00a0-\uffff]/g, '?').slice(0, 512);
  return { errno, code: ERRNO_NAMES.get(errno) ?? `errno ${errno}`, message };
}

/** READ_OPEN's OK: the file's size, or undefined when not a regular file. */
export function parseReadSize(p: Buffer): number | undefined {
  if (p.length !== 8) return undefined;
  const lo = p.readUInt32LE(0);
  const hi = p.readUInt32LE(4);
  if (hi === 0xffffffff && lo === 0xffffffff) return undefined;
  const size = hi * 2 ** 32 + lo;
  return size <= Number.MAX_SAFE_INTEGER ? size : undefined;
}

export function encodeHello(version = PROTOCOL_VERSION): Buffer {
  const p = Buffer.alloc(HELLO_PAYLOAD);
  HELLO_MAGIC.copy(p, 0);
  p.writeUInt32LE(version, HELLO_MAGIC.length);
  return p;
}

export function parseHello(p: Buffer): number {
  return p.readUInt32LE(HELLO_MAGIC.length);
}
