// The guest's serial console as a Duplex stream: what the guest transmits is readable, what
// is written goes to the guest's receive FIFO. waitFor() is expect-style: it scans output
// after the previous match, so the same line is never matched twice by accident.
import { Duplex } from 'node:stream';
import { NodeKvmError } from '../errors.js';

/** How much output is kept for waitFor() and error messages. */
const HISTORY_LIMIT = 1 << 20;
/**
 * The most guest output the readable side holds for a reader that does not take it. A guest
 * can print megabytes a second and nothing makes anyone read this stream (the CLI with
 * `--console none`, an API user who only calls waitFor), so beyond this the output is DROPPED
 * from the stream and counted in `droppedBytes`; the guest is not slowed down (no flow control:
 * a machine nobody reads must not stall). waitFor(), `output`/tail() and the 'output' event
 * still see every byte.
 */
export const STREAM_LIMIT = 1 << 20;
/** Guest bytes batched before a flush is forced (the usual flush is the next event-loop turn). */
const PENDING_LIMIT = 1 << 16;

/**
 * console.waitFor() gave up: `ERR_CONSOLE_TIMEOUT` when the time ran out, `ERR_MACHINE_ENDED`
 * when the machine ended first. The message and `tail` hold the last console output.
 */
export class ConsoleTimeoutError extends NodeKvmError {
  constructor(
    /** The pattern waited for, as text. */
    readonly pattern: string,
    /** The last console output. */
    readonly tail: string,
    timeoutMs: number,
    ended?: string,
  ) {
    super(ended === undefined ? 'ERR_CONSOLE_TIMEOUT' : 'ERR_MACHINE_ENDED',
      ended === undefined
        ? `console did not show ${pattern} within ${timeoutMs} ms; last output:\n${tail}`
        : `console will never show ${pattern}: ${ended}; last output:\n${tail}`);
  }
}

interface Waiter {
  pattern: RegExp | string;
  resolve: (m: string) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * The guest's serial console (COM1) as a Duplex stream: what the guest transmits is readable,
 * what you write goes to its receive FIFO (with backpressure). waitFor() is expect-style.
 */
export class MachineConsole extends Duplex {
  private history = '';
  /** Offset in `history` where the next waitFor starts scanning. */
  private cursor = 0;
  private readonly waiters = new Set<Waiter>();
  private pending: number[] = [];
  private flushScheduled = false;
  private dropped = 0;
  /** Set when the guest can print no more: later waitFor calls fail at once. */
  private endedReason: Error | undefined;

  /** Input the guest has not taken yet (its UART queue was full), and the write to finish. */
  private backlog: { bytes: Uint8Array; cb: (e?: Error | null) => void } | undefined;

  /** @internal `sendToGuest` returns how many bytes the guest side accepted (backpressure). */
  constructor(private readonly sendToGuest: (bytes: Uint8Array) => number) {
    super({ allowHalfOpen: true });
  }

  /** @internal Called by the machine for every byte the guest transmits (batched to one push). True when it starts a batch. */
  guestByte(b: number): boolean {
    this.pending.push(b);
    if (this.pending.length >= PENDING_LIMIT) this.flush();
    if (this.flushScheduled) return false;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
    return true;
  }

  /** @internal Push batched guest output now. */
  flush(): void {
    this.flushScheduled = false;
    if (this.pending.length === 0) return;
    const chunk = Buffer.from(this.pending);
    this.pending = [];
    this.history += chunk.toString('latin1');
    if (this.history.length > HISTORY_LIMIT) {
      const cut = this.history.length - HISTORY_LIMIT;
      this.history = this.history.slice(cut);
      this.cursor = Math.max(0, this.cursor - cut);
    }
    const room = Math.max(0, STREAM_LIMIT - this.readableLength);
    if (room >= chunk.length) this.push(chunk);
    else {
      if (room > 0) this.push(chunk.subarray(0, room));
      this.dropped += chunk.length - room;
    }
    this.emit('output', chunk);
    for (const w of [...this.waiters]) this.check(w);
  }

  /** Guest output the readable side dropped because nobody read it (see STREAM_LIMIT). */
  get droppedBytes(): number {
    return this.dropped;
  }

  /** Everything the guest printed that is still retained. */
  get output(): string {
    return this.history;
  }

  /** The last `n` characters of output, for error messages. */
  tail(n = 2000): string {
    return this.history.slice(-n);
  }

  private check(w: Waiter): boolean {
    const rest = this.history.slice(this.cursor);
    let end = -1;
    let text = '';
    if (typeof w.pattern === 'string') {
      const i = rest.indexOf(w.pattern);
      if (i >= 0) { end = i + w.pattern.length; text = w.pattern; }
    } else {
      const m = w.pattern.exec(rest);
      if (m) { end = m.index + m[0].length; text = m[0]; }
    }
    if (end < 0) return false;
    this.cursor += end;
    clearTimeout(w.timer);
    this.waiters.delete(w);
    w.resolve(text);
    return true;
  }

  /** Resolve with the matched text once `pattern` appears after the previous match. */
  waitFor(pattern: RegExp | string, options: { timeout?: number } = {}): Promise<string> {
    const timeoutMs = options.timeout ?? 30_000;
    this.flush();
    return new Promise<string>((resolve, reject) => {
      const w: Waiter = {
        pattern, resolve, reject,
        timer: setTimeout(() => {
          this.waiters.delete(w);
          reject(new ConsoleTimeoutError(String(pattern), this.tail(), timeoutMs));
        }, timeoutMs),
      };
      if (this.check(w)) return;
      if (this.endedReason !== undefined) {
        clearTimeout(w.timer);
        reject(new ConsoleTimeoutError(String(pattern), this.tail(), 0, this.endedReason.message));
        return;
      }
      this.waiters.add(w);
    });
  }

  /** Fail every pending waitFor, and any later one that does not match already (the machine ended). */
  abortWaiters(reason: Error): void {
    this.endedReason ??= reason;
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.reject(new ConsoleTimeoutError(String(w.pattern), this.tail(), 0, reason.message));
    }
    this.waiters.clear();
  }

  /** @internal */
  override _read(): void {}

  /** @internal */
  override _write(chunk: Buffer | string, encoding: BufferEncoding, cb: (e?: Error | null) => void): void {
    const b = typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk;
    this.backlog = { bytes: new Uint8Array(b.buffer, b.byteOffset, b.byteLength), cb };
    this.rxSpace();
  }

  /** @internal The guest made room for input: continue a write that was held back. */
  rxSpace(): void {
    const w = this.backlog;
    if (w === undefined) return;
    const n = this.sendToGuest(w.bytes);
    if (n >= w.bytes.length) {
      this.backlog = undefined;
      w.cb();
    } else {
      w.bytes = w.bytes.subarray(n);
    }
  }
}
