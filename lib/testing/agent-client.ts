// The host side of the exec channel: requests to the guest agent over any Duplex (a
// virtio-console port, or a child process's stdio in tests), several at once, each under its
// own id. See agent-protocol.ts for the frames.
import type { Duplex } from 'node:stream';
import { NodeKvmError } from '../errors.js';
import {
  AgentProtocolError, DATA_CHUNK, encodeExec, encodePath, encodeWriteOpen, FrameDecoder, frameHeader, parseError,
  parseExit, parseHello, parseReadSize, PROTOCOL_VERSION, STDIN_WINDOW, SYNC_MAGIC, T, typeName, type ExecRequest, type Frame, type GuestErrno,
} from './agent-protocol.js';

/**
 * The agent is gone, restarted, silent or broke the protocol: `code` says which
 * (`ERR_AGENT_TIMEOUT`, `ERR_AGENT_NOT_READY`, `ERR_AGENT_DIED`, `ERR_AGENT_GONE`, `ERR_AGENT_UNRESPONSIVE`).
 */
export class AgentError extends NodeKvmError {}

/** The guest agent refused a request (exec, readFile, writeFile): the guest's errno. Code: `ERR_AGENT_REQUEST`. */
export class AgentRequestError extends NodeKvmError {
  /** The guest's errno number. */
  readonly errno: number;
  /** The guest's errno name ('ENOENT'). */
  readonly errnoCode: string;
  /** @internal */
  constructor(what: string, e: GuestErrno) {
    super('ERR_AGENT_REQUEST', `${what}: ${e.message} (${e.code})`);
    this.errno = e.errno;
    this.errnoCode = e.code;
  }
}

export interface AgentExecOptions {
  /** Bytes for the command's stdin; without it stdin is /dev/null. */
  stdin?: Uint8Array | AsyncIterable<Uint8Array>;
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
  /** Collect stdout/stderr into the result (default true). */
  keepOutput?: boolean;
  /**
   * Most bytes of stdout + stderr kept (default 1 GiB): beyond it the command is killed and
   * exec rejects with ERR_EXEC_OUTPUT_LIMIT (a guest that floods cannot exhaust host memory).
   */
  maxOutput?: number;
  /** Milliseconds until the command's process group gets SIGKILL (default: none). */
  timeout?: number;
  /** After the kill, how long the agent has to report the exit (default 15 s). */
  killGrace?: number;
}

export interface AgentExecResult {
  exitCode: number;
  signal: number | undefined;
  /** The timeout fired and the process group was killed. */
  timedOut: boolean;
  stdout: Buffer;
  stderr: Buffer;
}

interface Op {
  onFrame(f: Frame): void;
  fail(e: Error): void;
}

const DEFAULT_KILL_GRACE = 15_000;
const DEFAULT_MAX_OUTPUT = 1024 * 1024 * 1024;
/** readFile preallocates the size the guest announces up to this; larger files come in pieces. */
const MAX_PREALLOCATE = 256 * 1024 * 1024;
const DEFAULT_MAX_FILE = 2 * 1024 * 1024 * 1024;

function chunksOf(data: Uint8Array): Iterable<Uint8Array> {
  return (function* () {
    for (let off = 0; off < data.byteLength; off += DATA_CHUNK) yield data.subarray(off, Math.min(data.byteLength, off + DATA_CHUNK));
  })();
}

/** Split every chunk of a source into frames of at most DATA_CHUNK bytes. */
async function* framed(src: Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  if (src instanceof Uint8Array) {
    yield* chunksOf(src);
    return;
  }
  for await (const c of src as AsyncIterable<Uint8Array>) {
    const u = typeof c === 'string' ? Buffer.from(c) : c;
    yield* chunksOf(u);
  }
}

export class AgentClient {
  private readonly ops = new Map<number, Op>();
  private readonly decoder: FrameDecoder;
  private nextId = 0;
  private helloSeen = false;
  private helloWaiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  private gone: AgentError | undefined;
  /** A protocol violation made the stream untrustworthy until the agent says HELLO again. */
  private desynced: AgentProtocolError | undefined;
  private drainWaiters: Array<() => void> = [];
  readonly counters = { restarts: 0, violations: 0, strayFrames: 0 };
  /** Called once when the channel is gone for good (closed stream, error, close()). */
  onGone: ((e: AgentError) => void) | undefined;
  private readonly onData = (d: Buffer): void => this.decoder.push(d);
  private readonly onDrain = (): void => this.wakeDrain();
  private readonly onEnd = (): void => this.lost('the channel to the guest agent closed');
  private readonly onErr = (e: Error): void => this.lost(`the channel to the guest agent failed: ${e.message}`);

  /**
   * `resumed`: the agent on the other end already said HELLO to an earlier client and was synced
   * (a guest restored from a snapshot taken while its agent sat idle): it will not say HELLO
   * again, so the client starts ready. SYNC is sent anyway; the agent ignores a repeated one.
   */
  constructor(private readonly stream: Duplex, readonly name = 'agent', opts: { resumed?: boolean } = {}) {
    this.decoder = new FrameDecoder((f) => this.frame(f), (e) => this.violation(e));
    stream.on('data', this.onData);
    stream.on('drain', this.onDrain);
    stream.on('end', this.onEnd);
    stream.on('close', this.onEnd);
    stream.on('error', this.onErr);
    if (opts.resumed === true) {
      this.helloSeen = true;
      this.send(T.SYNC, 0, SYNC_MAGIC);
    }
  }

  /** The agent has said HELLO and nothing has broken the channel since. */
  get usable(): boolean {
    return this.helloSeen && this.gone === undefined && this.desynced === undefined;
  }

  /** Resolves at the agent's (first) HELLO; rejects with ERR_AGENT_TIMEOUT after `timeout` ms. */
  ready(timeout: number): Promise<void> {
    if (this.gone) return Promise.reject(this.gone);
    if (this.helloSeen) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const w = {
        resolve: (): void => { clearTimeout(timer); resolve(); },
        reject: (e: Error): void => { clearTimeout(timer); reject(e); },
      };
      const timer = setTimeout(() => {
        this.helloWaiters = this.helloWaiters.filter((x) => x !== w);
        reject(new AgentError('ERR_AGENT_TIMEOUT', `${this.name}: no HELLO from the guest agent within ${timeout} ms`));
      }, timeout);
      this.helloWaiters.push(w);
    });
  }

  /** The peer's stream is gone (closed by us or by the guest): fail everything pending. */
  private lost(why: string): void {
    if (this.gone) return;
    this.gone = new AgentError('ERR_AGENT_GONE', `${this.name}: ${why}`);
    this.failAll(this.gone);
    for (const w of this.helloWaiters.splice(0)) w.reject(this.gone);
    this.wakeDrain();
    this.onGone?.(this.gone);
  }

  private failAll(e: Error): void {
    const ops = [...this.ops.values()];
    this.ops.clear();
    for (const op of ops) op.fail(e);
  }

  private violation(e: AgentProtocolError): void {
    this.counters.violations++;
    this.desynced = e;
    this.failAll(e);
  }

  private frame(f: Frame): void {
    if (f.type === T.HELLO) {
      const version = parseHello(f.payload);
      if (this.helloSeen || this.desynced) {
        // A new agent: the old one died (or a broken stream recovered). Whatever it was doing is lost.
        this.counters.restarts++;
        const why = this.desynced ? `recovered after: ${this.desynced.message}` : 'it restarted (the previous agent died)';
        this.failAll(new AgentError('ERR_AGENT_DIED', `${this.name}: the guest agent ${why}; the request was lost`));
      }
      this.desynced = undefined;
      // The agent ignores everything until this frame: requests from here on are its.
      this.send(T.SYNC, 0, SYNC_MAGIC);
      if (version !== PROTOCOL_VERSION) {
        this.violation(new AgentProtocolError(`speaks protocol version ${version}, this host ${PROTOCOL_VERSION}`));
        return;
      }
      this.helloSeen = true;
      for (const w of this.helloWaiters.splice(0)) w.resolve();
      return;
    }
    const op = this.ops.get(f.id);
    // A frame for a request that already ended (a late STDIN_ACK, output after a cancel): harmless.
    if (op === undefined) {
      this.counters.strayFrames++;
      return;
    }
    op.onFrame(f);
  }

  private assertUsable(): void {
    if (this.gone) throw this.gone;
    if (this.desynced) throw this.desynced;
    if (!this.helloSeen) throw new AgentError('ERR_AGENT_NOT_READY', `${this.name}: the guest agent has not said HELLO`);
  }

  private allocId(): number {
    do this.nextId = (this.nextId + 1) >>> 0; while (this.nextId === 0 || this.ops.has(this.nextId));
    return this.nextId;
  }

  /** Queue a frame; false when the stream wants the writer to wait for 'drain'. */
  private send(type: number, id: number, payload?: Uint8Array): boolean {
    if (this.gone) return true;
    const len = payload?.byteLength ?? 0;
    if (len === 0 || len > 4096) {
      const ok = this.stream.write(frameHeader(type, id, len));
      return len === 0 ? ok : this.stream.write(payload);
    }
    return this.stream.write(Buffer.concat([frameHeader(type, id, len), payload!]));
  }

  private wakeDrain(): void {
    for (const w of this.drainWaiters.splice(0)) w();
  }

  private drain(): Promise<void> {
    if (this.gone || !this.stream.writableNeedDrain) return Promise.resolve();
    return new Promise((r) => this.drainWaiters.push(r));
  }

  /** Run a command; resolves with its exit status (also after a timeout's kill: `timedOut`). */
  exec(request: Omit<ExecRequest, 'stdin'>, opts: AgentExecOptions = {}): Promise<AgentExecResult> {
    this.assertUsable();
    const payload = encodeExec({ ...request, stdin: opts.stdin !== undefined });
    const id = this.allocId();
    const keep = opts.keepOutput ?? true;
    const maxOutput = opts.maxOutput ?? DEFAULT_MAX_OUTPUT;
    let kept = 0;
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    let done = false;
    let inflight = 0;
    let creditWaiter: (() => void) | undefined;
    let timer: NodeJS.Timeout | undefined;
    let graceTimer: NodeJS.Timeout | undefined;
    const finish = (): void => {
      done = true;
      clearTimeout(timer);
      clearTimeout(graceTimer);
      this.ops.delete(id);
      creditWaiter?.();
    };
    const result = new Promise<AgentExecResult>((resolve, reject) => {
      this.ops.set(id, {
        fail: (e) => { finish(); reject(e); },
        onFrame: (f) => {
          switch (f.type) {
            case T.STDOUT:
            case T.STDERR: {
              const isOut = f.type === T.STDOUT;
              if (keep) {
                kept += f.payload.length;
                if (kept > maxOutput) {
                  this.send(T.KILL, id);
                  this.ops.get(id)?.fail(new NodeKvmError('ERR_EXEC_OUTPUT_LIMIT', `${this.name}: the command wrote more than ${maxOutput} bytes of output; it was killed`));
                  return;
                }
                (isOut ? out : err).push(f.payload);
              }
              try {
                (isOut ? opts.onStdout : opts.onStderr)?.(f.payload);
              } catch (e) {
                // The caller's callback threw: end the command and hand the error to exec's caller.
                this.send(T.KILL, id);
                this.ops.get(id)?.fail(e instanceof Error ? e : new Error(String(e)));
              }
              break;
            }
            case T.STDIN_ACK:
              inflight = Math.max(0, inflight - f.payload.readUInt32LE(0));
              creditWaiter?.();
              break;
            case T.EXIT: {
              finish();
              const s = parseExit(f.payload);
              resolve({ ...s, timedOut, stdout: Buffer.concat(out), stderr: Buffer.concat(err) });
              break;
            }
            case T.ERROR:
              finish();
              reject(new AgentRequestError(`${this.name}: exec`, parseError(f.payload)));
              break;
            default:
              this.violation(new AgentProtocolError(`${typeName(f.type)} frame for exec request ${id}`));
          }
        },
      });
    });
    this.send(T.EXEC, id, payload);
    if (opts.timeout !== undefined) {
      timer = setTimeout(() => {
        timedOut = true;
        this.send(T.KILL, id);
        graceTimer = setTimeout(() => {
          this.ops.get(id)?.fail(new AgentError('ERR_AGENT_UNRESPONSIVE',
            `${this.name}: the command was killed after ${opts.timeout} ms, but the agent did not report its end within ${opts.killGrace ?? DEFAULT_KILL_GRACE} ms`));
        }, opts.killGrace ?? DEFAULT_KILL_GRACE);
      }, opts.timeout);
    }
    if (opts.stdin !== undefined) {
      const src = opts.stdin;
      void (async () => {
        for await (const c of framed(src)) {
          while (!done && inflight + c.byteLength > STDIN_WINDOW) await new Promise<void>((r) => (creditWaiter = r));
          creditWaiter = undefined;
          if (done) return;
          inflight += c.byteLength;
          if (!this.send(T.STDIN, id, c)) await this.drain();
        }
        if (!done) this.send(T.STDIN_EOF, id);
      })().catch((e: unknown) => {
        // The caller's stdin source failed: the command cannot get its input, so end it.
        if (!done) {
          this.send(T.KILL, id);
          this.ops.get(id)?.fail(new NodeKvmError('ERR_EXEC_STDIN', `${this.name}: reading stdin for the command failed: ${(e as Error).message}`, { cause: e }));
        }
      });
    }
    return result;
  }

  /** Write `data` to the guest file `path` (created or truncated), in chunks with back-pressure. */
  async writeFile(path: string, data: Uint8Array | AsyncIterable<Uint8Array>, opts: { mode?: number; timeout?: number } = {}): Promise<void> {
    this.assertUsable();
    const open = encodeWriteOpen(path, opts.mode);
    const id = this.allocId();
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const result = new Promise<void>((resolve, reject) => {
      const end = (): void => { done = true; clearTimeout(timer); this.ops.delete(id); this.wakeDrain(); };
      this.ops.set(id, {
        fail: (e) => { end(); reject(e); },
        onFrame: (f) => {
          end();
          if (f.type === T.OK) resolve();
          else if (f.type === T.ERROR) reject(new AgentRequestError(`${this.name}: writeFile ${path}`, parseError(f.payload)));
          else this.violation(new AgentProtocolError(`${typeName(f.type)} frame for writeFile request ${id}`));
        },
      });
    });
    if (opts.timeout !== undefined) {
      timer = setTimeout(() => {
        this.send(T.KILL, id);
        this.ops.get(id)?.fail(new AgentError('ERR_AGENT_TIMEOUT', `${this.name}: writeFile ${path} did not finish within ${opts.timeout} ms`));
      }, opts.timeout);
    }
    this.send(T.WRITE_OPEN, id, open);
    try {
      for await (const c of framed(data)) {
        if (done) break;
        if (!this.send(T.WRITE_DATA, id, c)) await this.drain();
      }
    } catch (e) {
      if (!done) {
        this.send(T.KILL, id);
        this.ops.get(id)?.fail(new NodeKvmError('ERR_INVALID_ARG', `writeFile ${path}: reading the data failed: ${(e as Error).message}`, { cause: e }));
      }
    }
    if (!done) this.send(T.WRITE_END, id);
    return result;
  }

  /**
   * Add `microseconds` to the guest's wall clock in one step (a guest restored from a snapshot
   * resumes with the clock it had then). Rejects with the agent's errno as AgentRequestError.
   */
  advanceClock(microseconds: number, opts: { timeout?: number } = {}): Promise<void> {
    this.assertUsable();
    if (!Number.isSafeInteger(microseconds)) throw new NodeKvmError('ERR_INVALID_ARG', `advanceClock: microseconds must be a safe integer, got ${microseconds}`);
    const id = this.allocId();
    let timer: NodeJS.Timeout | undefined;
    const result = new Promise<void>((resolve, reject) => {
      const end = (): void => { clearTimeout(timer); this.ops.delete(id); };
      this.ops.set(id, {
        fail: (e) => { end(); reject(e); },
        onFrame: (f) => {
          end();
          if (f.type === T.OK) resolve();
          else if (f.type === T.ERROR) reject(new AgentRequestError(`${this.name}: advanceClock`, parseError(f.payload)));
          else this.violation(new AgentProtocolError(`${typeName(f.type)} frame for clock request ${id}`));
        },
      });
    });
    if (opts.timeout !== undefined) {
      timer = setTimeout(() => {
        this.ops.get(id)?.fail(new AgentError('ERR_AGENT_TIMEOUT', `${this.name}: advanceClock did not finish within ${opts.timeout} ms`));
      }, opts.timeout);
    }
    const payload = Buffer.alloc(8);
    payload.writeBigInt64LE(BigInt(microseconds));
    this.send(T.CLOCK_ADVANCE, id, payload);
    return result;
  }

  /**
   * Read the guest file `path`. A regular file lands in one buffer of its announced size (the
   * data is not held twice); `onChunk` instead streams it without keeping it.
   */
  readFile(path: string, opts: { timeout?: number; onChunk?: (c: Buffer) => void; maxBytes?: number } = {}): Promise<Buffer> {
    this.assertUsable();
    const req = encodePath(path);
    const id = this.allocId();
    let timer: NodeJS.Timeout | undefined;
    const result = new Promise<Buffer>((resolve, reject) => {
      let whole: Buffer | undefined;
      let filled = 0;
      let parts: Buffer[] | undefined;
      let opened = false;
      let total = 0;
      const maxBytes = opts.maxBytes ?? DEFAULT_MAX_FILE;
      const end = (): void => { clearTimeout(timer); this.ops.delete(id); };
      this.ops.set(id, {
        fail: (e) => { end(); reject(e); },
        onFrame: (f) => {
          if (f.type === T.OK && !opened) {
            opened = true;
            const size = parseReadSize(f.payload);
            if (opts.onChunk === undefined) {
              if (size !== undefined && size <= MAX_PREALLOCATE) whole = Buffer.allocUnsafe(size);
              else parts = [];
            }
          } else if (f.type === T.READ_DATA && opened) {
            total += f.payload.length;
            if (opts.onChunk === undefined && total > maxBytes) {
              // /dev/zero, or a file that keeps growing: not without bound into host memory.
              this.send(T.KILL, id);
              this.ops.get(id)?.fail(new NodeKvmError('ERR_FILE_TOO_LARGE', `${this.name}: readFile ${path}: more than ${maxBytes} bytes (maxBytes)`));
              return;
            }
            if (opts.onChunk) {
              try {
                opts.onChunk(f.payload);
              } catch (e) {
                this.send(T.KILL, id);
                this.ops.get(id)?.fail(e instanceof Error ? e : new Error(String(e)));
              }
            }
            else if (whole !== undefined && filled + f.payload.length <= whole.length) filled += f.payload.copy(whole, filled);
            else {
              // The file grew while being read: keep what came and go on in pieces.
              parts ??= whole === undefined ? [] : [whole.subarray(0, filled)];
              whole = undefined;
              parts.push(f.payload);
            }
          } else if (f.type === T.READ_EOF && opened) {
            end();
            if (opts.onChunk) resolve(Buffer.alloc(0));
            else resolve(whole !== undefined ? whole.subarray(0, filled) : Buffer.concat(parts ?? []));
          } else if (f.type === T.ERROR) {
            end();
            reject(new AgentRequestError(`${this.name}: readFile ${path}`, parseError(f.payload)));
          } else {
            this.violation(new AgentProtocolError(`${typeName(f.type)} frame for readFile request ${id}`));
          }
        },
      });
    });
    if (opts.timeout !== undefined) {
      timer = setTimeout(() => {
        this.send(T.KILL, id);
        this.ops.get(id)?.fail(new AgentError('ERR_AGENT_TIMEOUT', `${this.name}: readFile ${path} did not finish within ${opts.timeout} ms`));
      }, opts.timeout);
    }
    this.send(T.READ_OPEN, id, req);
    return result;
  }

  /** Requests in flight. */
  get pending(): number {
    return this.ops.size;
  }

  /** Stop listening to the stream and fail what is pending (the stream itself stays open). */
  close(): void {
    this.stream.off('data', this.onData);
    this.stream.off('drain', this.onDrain);
    this.stream.off('end', this.onEnd);
    this.stream.off('close', this.onEnd);
    // The error listener stays: an error the stream emits later must not become an uncaught one.
    this.lost('closed');
  }
}
