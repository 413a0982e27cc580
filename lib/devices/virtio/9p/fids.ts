// The fid table of one 9P session. A fid names a file by the open O_PATH fd of that file (the
// jail's anchor: every operation starts from an fd that is already inside the export) and by
// its path of names from the export's root (used only for `..` and for operations on the
// fid's parent, always resolved again beneath the root). An fd can be shared by several fids
// (a walk of zero names clones) and by operations in flight: it is closed when the last one
// lets go, so a clunk racing a read never closes an fd the read still uses, and the fd number
// is never reused under it.
import { NOFID } from './protocol.js';
import { P9Error } from './errno.js';
import { closeHeld, pooledIo, type FileKind, type HostIo } from './jail.js';

/** An fd with users; closed (see closeHeld) when the count drops to zero. */
export class FdRef {
  private refs = 1;
  constructor(readonly fd: number, private readonly io: HostIo = pooledIo()) {}

  acquire(): this {
    if (this.refs <= 0) throw new Error(`fd ${this.fd} used after close`);
    this.refs++;
    return this;
  }

  release(): void {
    if (this.refs <= 0) return;
    if (--this.refs === 0) {
      closeHeld(this.fd, this.io);
    }
  }

  get alive(): boolean { return this.refs > 0; }
}

export type { FileKind } from './jail.js';

export interface OpenState {
  /** The fd read, written, fsynced or listed (opened from the handle, never by path). */
  fd: FdRef;
  readable: boolean;
  writable: boolean;
  /**
   * The Tlopen/Tlcreate flags (9P2000.L DOTL_*) it was opened with: a restored snapshot
   * reopens the file with them, less the one-time O_TRUNC, O_CREAT and O_EXCL.
   */
  dotl: number;
  /** Readdir calls on one fd seek it: they run one after the other. */
  dirQueue?: Promise<unknown>;
  /** getdents64's buffer, kept between readdir calls. */
  dirBuf?: Uint8Array;
}

export interface Fid {
  readonly id: number;
  /** Names from the export root to this file (empty for the root). */
  path: Uint8Array[];
  /** O_PATH fd of the file itself (or, after a create, the fd it was opened with). */
  handle: FdRef;
  kind: FileKind;
  /** qid.path last reported for this file. */
  qidPath?: bigint;
  /** Set by lopen/lcreate. */
  open?: OpenState;
}

/**
 * A fid restored from a snapshot whose file could not be opened again (gone, another kind, a
 * symlink in its path): every request on it answers ESTALE; it holds no fd. Its last known
 * path and kind are kept so a later snapshot saves it as it was.
 */
export interface StaleFid {
  readonly id: number;
  path: Uint8Array[];
  kind: FileKind;
  qidPath?: bigint;
  /** Why it is stale (for logs and tests). */
  reason: string;
}

/**
 * Live fids one session may hold (each holds an O_PATH fd, an open one a second fd). Linux's
 * client clunks what it no longer names; with cache=loose it keeps a fid per cached inode, and
 * a guest that lists a tree of tens of thousands of files stays well below. Without a bound
 * one guest could take the whole process's fd table (every VM, socket and file of it).
 */
export const DEFAULT_MAX_FIDS = 16384;

export class FidTable {
  private readonly fids = new Map<number, Fid>();
  private readonly staleFids = new Map<number, StaleFid>();
  /** fids named by a walk/attach under way: taken, though not yet in the table. */
  private readonly pending = new Set<number>();

  /** Fids refused because the session held maxFids (answered EMFILE). */
  refused = 0;

  constructor(readonly maxFids = DEFAULT_MAX_FIDS) {}

  get size(): number { return this.fids.size + this.staleFids.size; }

  get(id: number): Fid {
    const f = this.fids.get(id);
    if (f === undefined) {
      const st = this.staleFids.get(id);
      if (st !== undefined) throw new P9Error('ESTALE', `fid ${id} is stale since the restore (${st.reason})`);
      throw new P9Error('EBADF', `fid ${id} is not in use`);
    }
    return f;
  }

  has(id: number): boolean { return this.fids.has(id) || this.pending.has(id) || this.staleFids.has(id); }

  isStale(id: number): boolean { return this.staleFids.has(id); }

  /** Adds a fid that a restore could not reopen (replacing any fid of the same id). */
  setStale(fid: StaleFid): void {
    const old = this.fids.get(fid.id);
    if (old !== undefined) {
      this.fids.delete(fid.id);
      release(old);
    }
    this.staleFids.set(fid.id, fid);
  }

  /** The stale fids (saved by a snapshot as they were restored). */
  stale(): IterableIterator<StaleFid> { return this.staleFids.values(); }

  /** Claims `id` for a fid an operation is about to make; EBADF when it is live or claimed. */
  reserve(id: number): void {
    if (id === NOFID) throw new P9Error('EINVAL', 'NOFID cannot name a file');
    if (this.has(id)) throw new P9Error('EBADF', `fid ${id} is already in use`);
    // Stale fids hold no fd: only live and claimed ones count.
    if (this.fids.size + this.pending.size >= this.maxFids) {
      this.refused++;
      throw new P9Error('EMFILE', `the session already holds ${this.maxFids} fids`);
    }
    this.pending.add(id);
  }

  /** Gives up a claim without adding a fid. */
  unreserve(id: number): void { this.pending.delete(id); }

  /** Adds a fid under a claim made by reserve() (or replaces the fid of the same id). */
  set(fid: Fid): void {
    this.pending.delete(fid.id);
    const old = this.fids.get(fid.id);
    this.fids.set(fid.id, fid);
    if (old !== undefined && old !== fid) release(old);
  }

  /** Removes a fid and lets go of its fds (a stale fid is just forgotten). */
  clunk(id: number): Fid | undefined {
    if (this.staleFids.delete(id)) return undefined;
    const f = this.get(id);
    this.fids.delete(id);
    release(f);
    return f;
  }

  /** Every fid, e.g. to update paths after a rename. */
  values(): IterableIterator<Fid> { return this.fids.values(); }

  /** Clunks every fid (Tversion starts a new session; the device resets). */
  clear(): void {
    for (const f of this.fids.values()) release(f);
    this.fids.clear();
    this.staleFids.clear();
    this.pending.clear();
  }
}

function release(f: Fid): void {
  f.open?.fd.release();
  f.open = undefined;
  f.handle.release();
}
