// A 9P2000.L server for one export, independent of the transport: the virtio-9p device hands
// it each request as the chain's readable buffers and the buffers for the reply, and gets the
// reply's length back through `done`, once, when the host I/O finished. Requests run
// concurrently and complete in any order; Tflush answers after the request it names has.
// Nothing a guest sends makes `handle` throw: a malformed message gets Rlerror (EINVAL, or
// EOPNOTSUPP for a type not served), and a chain too short even for that gets a reply of 0
// bytes and a count in `stats.protocolErrors` (the device may then ask for a reset).
import { close, closeSync } from 'node:fs';
import { native } from '../../../native.js';
import { decode, encodeInto, encodedSize, isDecodeError, readHeader } from './codec.js';
import { LINUX_ERRNO, toLinuxErrno } from './errno.js';
import { fsc, hostIoFor, pooledIo, type HostIo } from './jail.js';
import { P9Ops } from './ops.js';
import { parseSession, type P9SessionState } from './persist.js';
import {
  HEADER_SIZE, MESSAGES, NOTAG, RREAD_HEADER, TWRITE_HEADER, VERSION_9P2000_L, type Message, type MessageName,
} from './protocol.js';
import { gather, scatter, sliceSegments, totalLength } from './segments.js';
import type { ResolvedShare } from './share.js';

/** Largest msize the server agrees to (the guest may ask for less). */
export const DEFAULT_MAX_MSIZE = 1024 * 1024;
/** Smallest msize the server works with: a 9P client needs at least a page. */
export const MIN_MSIZE = 4096;

export interface P9ServerOptions {
  maxMsize?: number;
  /** Live fids a session may hold (default DEFAULT_MAX_FIDS); more are answered EMFILE. */
  maxFids?: number;
  /**
   * Answer host calls that cannot wait (jail.ts HostIo) on the main thread (default true);
   * false sends every call to the threadpool.
   */
  inline?: boolean;
}

export interface P9Stats {
  requests: number;
  /** Requests answered with Rlerror. */
  errors: number;
  /** Chains that could not carry even an Rlerror (no header, no room). */
  protocolErrors: number;
}

/** A message without its tag (the server adds the request's). */
type Body = Message extends infer M ? M extends Message ? Omit<M, 'tag'> : never : never;

const isRequest = (n: MessageName): boolean => n.startsWith('T') && n !== 'Tlerror';

export class P9Server {
  readonly ops: P9Ops;
  readonly stats: P9Stats = { requests: 0, errors: 0, protocolErrors: 0 };

  /** Fids refused because the session held its maximum. */
  get refusedFids(): number { return this.ops.fids.refused; }
  readonly maxMsize: number;
  /** Negotiated by Tversion. */
  msize: number;
  private readonly inflight = new Map<number, Promise<void>>();
  private closed = false;

  private constructor(private readonly rootFd: number, readonly share: ResolvedShare, readonly io: HostIo, opts: P9ServerOptions) {
    this.maxMsize = Math.max(MIN_MSIZE, opts.maxMsize ?? DEFAULT_MAX_MSIZE);
    this.msize = this.maxMsize;
    this.ops = new P9Ops({ rootFd, readonly: share.readonly, io }, opts.maxFids);
  }

  /**
   * Options for servers opened without any (the machines' shares). @internal: a bench's A/B
   * switch (bench/host-calls.ts), not an API.
   */
  static defaults: P9ServerOptions = {};

  /** Opens the export's root directory (as an O_PATH fd held until close()). */
  static async open(share: ResolvedShare, opts: P9ServerOptions = P9Server.defaults): Promise<P9Server> {
    const c = fsc();
    const fd = await native().openat2(c.AT_FDCWD, share.path, c.O_PATH | c.O_DIRECTORY | c.O_CLOEXEC, 0, 0);
    let io: HostIo;
    try {
      io = opts.inline === false ? pooledIo() : await hostIoFor(fd);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
    return new P9Server(fd, share, io, opts);
  }

  /** Requests not answered yet. */
  get pending(): number { return this.inflight.size; }

  /**
   * Serves one request. `readable`: the T-message (possibly split over buffers); `writable`:
   * where the R-message goes. `done(len)` is called exactly once, with the reply's length.
   */
  handle(readable: readonly Uint8Array[], writable: readonly Uint8Array[], done: (len: number) => void): void {
    this.stats.requests++;
    const room = totalLength(writable);
    const head = gather(readable, 0, HEADER_SIZE);
    const h = readHeader(head);
    if (h === undefined || this.closed) {
      this.stats.protocolErrors++;
      done(0);
      return;
    }
    const tag = h.tag;
    let finish!: () => void;
    const completion = new Promise<void>((r) => { finish = r; });
    const answer = (len: number): void => {
      if (this.inflight.get(tag) === completion) this.inflight.delete(tag);
      finish();
      done(len);
    };
    const duplicate = tag !== NOTAG && this.inflight.has(tag);
    if (!duplicate) this.inflight.set(tag, completion);
    this.serve(readable, writable, room, h.size, h.type, tag, duplicate)
      .then(answer, (e: unknown) => answer(this.lerror(writable, room, tag, toLinuxErrno(e))));
  }

  /** Writes Rlerror; 0 (and a protocol error) when it does not fit. */
  private lerror(writable: readonly Uint8Array[], room: number, tag: number, errno: number): number {
    this.stats.errors++;
    return this.reply(writable, room, { op: 'Rlerror', tag, ecode: errno });
  }

  /** Encodes `msg` into the chain; an Rlerror(ENOBUFS) instead when it does not fit. */
  private reply(writable: readonly Uint8Array[], room: number, msg: Message): number {
    const size = encodedSize(msg);
    if (size > room || size > this.msize) {
      if (msg.op === 'Rlerror') {
        this.stats.protocolErrors++;
        return 0;
      }
      return this.lerror(writable, room, msg.tag, LINUX_ERRNO.ENOBUFS);
    }
    const out = new Uint8Array(size);
    encodeInto(msg, out);
    return scatter(writable, 0, out);
  }

  private async serve(readable: readonly Uint8Array[], writable: readonly Uint8Array[], room: number,
    size: number, type: number, tag: number, duplicate: boolean): Promise<number> {
    const avail = totalLength(readable);
    if (size < HEADER_SIZE || size > avail || size > this.msize) {
      return this.lerror(writable, room, tag, LINUX_ERRNO.EINVAL);
    }
    if (duplicate) return this.lerror(writable, room, tag, LINUX_ERRNO.EINVAL);
    if (type === MESSAGES.Twrite[0]) return this.serveWrite(readable, writable, room, size, tag);
    const m = decode(gather(readable, 0, size), isRequest);
    if (isDecodeError(m)) return this.lerror(writable, room, tag, m.errno);
    if (m.op === 'Tread') return this.serveRead(m, writable, room);
    const r = await this.dispatch(m, room);
    return this.reply(writable, room, { ...r, tag } as Message);
  }

  private async serveRead(m: Extract<Message, { op: 'Tread' }>, writable: readonly Uint8Array[], room: number): Promise<number> {
    if (room < RREAD_HEADER) {
      this.stats.protocolErrors++;
      return 0;
    }
    // A count over what fits is cut to what fits: a short read, which the client handles.
    const count = Math.min(m.count, this.msize - RREAD_HEADER, room - RREAD_HEADER);
    const n = await this.ops.read(m.fid, m.offset, sliceSegments(writable, RREAD_HEADER, count));
    const head = new Uint8Array(RREAD_HEADER);
    const v = new DataView(head.buffer);
    v.setUint32(0, RREAD_HEADER + n, true);
    v.setUint8(4, MESSAGES.Rread[0]);
    v.setUint16(5, m.tag, true);
    v.setUint32(7, n, true);
    scatter(writable, 0, head);
    return RREAD_HEADER + n;
  }

  /** Twrite: the data is written from the guest's buffers where they are (no copy). */
  private async serveWrite(readable: readonly Uint8Array[], writable: readonly Uint8Array[], room: number,
    size: number, tag: number): Promise<number> {
    if (size < TWRITE_HEADER) return this.lerror(writable, room, tag, LINUX_ERRNO.EINVAL);
    const head = gather(readable, 0, TWRITE_HEADER);
    const v = new DataView(head.buffer, head.byteOffset, TWRITE_HEADER);
    const fid = v.getUint32(7, true);
    const offset = v.getBigUint64(11, true);
    const count = v.getUint32(19, true);
    if (count !== size - TWRITE_HEADER) return this.lerror(writable, room, tag, LINUX_ERRNO.EINVAL);
    const n = await this.ops.write(fid, offset, sliceSegments(readable, TWRITE_HEADER, count));
    return this.reply(writable, room, { op: 'Rwrite', tag, count: n });
  }

  private async dispatch(m: Message, room: number): Promise<Body> {
    const o = this.ops;
    switch (m.op) {
      case 'Tversion': return this.version(m);
      case 'Tauth': return { op: 'Rlerror', ecode: LINUX_ERRNO.EOPNOTSUPP };
      case 'Tattach': return { op: 'Rattach', ...(await o.attach(m)) };
      case 'Tflush': {
        const old = this.inflight.get(m.oldtag);
        if (old !== undefined && m.oldtag !== m.tag) await old;
        return { op: 'Rflush' };
      }
      case 'Twalk': return { op: 'Rwalk', ...(await o.walk(m)) };
      case 'Tclunk': o.clunk(m.fid); return { op: 'Rclunk' };
      case 'Tremove': return { op: 'Rremove', ...(await o.remove(m)) };
      case 'Tgetattr': return { op: 'Rgetattr', ...(await o.getattr(m)) };
      case 'Tsetattr': return { op: 'Rsetattr', ...(await o.setattr(m)) };
      case 'Tstatfs': return { op: 'Rstatfs', ...(await o.statfs(m)) };
      case 'Tlopen': return { op: 'Rlopen', ...(await o.lopen(m)) };
      case 'Tlcreate': return { op: 'Rlcreate', ...(await o.lcreate(m)) };
      case 'Tmkdir': return { op: 'Rmkdir', ...(await o.mkdir(m)) };
      case 'Tmknod': return { op: 'Rmknod', ...(await o.mknod(m)) };
      case 'Tsymlink': return { op: 'Rsymlink', ...(await o.symlink(m)) };
      case 'Treadlink': return { op: 'Rreadlink', ...(await o.readlink(m)) };
      case 'Tlink': return { op: 'Rlink', ...(await o.link(m)) };
      case 'Trename': return { op: 'Rrename', ...(await o.rename(m)) };
      case 'Trenameat': return { op: 'Rrenameat', ...(await o.renameat(m)) };
      case 'Tunlinkat': return { op: 'Runlinkat', ...(await o.unlinkat(m)) };
      case 'Treaddir': {
        const count = Math.max(0, Math.min(m.count, this.msize - RREAD_HEADER, room - RREAD_HEADER));
        return { op: 'Rreaddir', data: await o.readdir(m, count) };
      }
      case 'Tfsync': return { op: 'Rfsync', ...(await o.fsync(m)) };
      case 'Tlock': return { op: 'Rlock', ...o.lock(m) };
      case 'Tgetlock': return { op: 'Rgetlock', ...o.getlock(m) };
      case 'Txattrwalk': return o.xattrwalk(m);
      case 'Txattrcreate': return o.xattrcreate(m);
      default: return { op: 'Rlerror', ecode: LINUX_ERRNO.EOPNOTSUPP };
    }
  }

  /** Tversion: agree on msize and the dialect; a new session (every fid is clunked). */
  private version(m: Extract<Message, { op: 'Tversion' }>): Body {
    const asked = new TextDecoder().decode(m.version);
    const msize = Math.min(m.msize, this.maxMsize);
    if (!asked.startsWith(VERSION_9P2000_L) || msize < MIN_MSIZE) {
      return { op: 'Rversion', msize: Math.max(msize, 0), version: new TextEncoder().encode('unknown') };
    }
    this.ops.fids.clear();
    this.msize = msize;
    return { op: 'Rversion', msize, version: new TextEncoder().encode(VERSION_9P2000_L) };
  }

  /** Resolves once no request is under way (new ones may start meanwhile: hold the queue first). */
  async idle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight.values()]);
  }

  /**
   * The session for a snapshot: msize and every fid by path (persist.ts). Only meaningful with
   * no request under way (a request may be changing a fid).
   */
  saveSession(): P9SessionState {
    return this.ops.saveSession(this.msize);
  }

  /**
   * Checks a saved session (ERR_SNAPSHOT_CORRUPT when malformed) and returns the step that
   * puts it back: every fid reopened beneath the export's root, or stale. Resolves with the
   * number of stale fids.
   */
  prepareSession(state: unknown): () => Promise<number> {
    const s = parseSession(state, MIN_MSIZE, Math.max(this.maxMsize, DEFAULT_MAX_MSIZE));
    return async () => {
      const stale = await this.ops.restoreSession(s.fids, s.devIndex);
      this.msize = Math.min(s.msize, this.maxMsize);
      return stale;
    };
  }

  /** Waits for requests under way, then closes every fid and the export's root fd. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.inflight.values()]);
    this.ops.fids.clear();
    await new Promise<void>((r) => close(this.rootFd, () => r()));
  }

  async [Symbol.asyncDispose](): Promise<void> { await this.close(); }
}
