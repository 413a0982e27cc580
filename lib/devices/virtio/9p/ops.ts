// The file operations of 9P2000.L on one export, each from a decoded T-message to the fields
// of its R-message. Every host call is asynchronous (native/fs.cc or Node's fs, both on the
// libuv threadpool) and starts from an fd inside the export (jail.ts). Errors are thrown as
// host errors (KvmError/ErrnoException with an errno name) or P9Error; server.ts turns them
// into Rlerror.
//
// P9Ops is the one object server.ts calls: it holds the export's context (session.ts) and
// hands each message to the module of its concern: session.ts (attach, walk, clunk),
// file-io.ts (open, create, read, write, fsync), namespace.ts (names in directories and
// readdir), metadata.ts (attributes, statfs, locks, xattrs).
import type { FidTable } from './fids.js';
import * as io from './file-io.js';
import type { HostStat } from './jail.js';
import * as meta from './metadata.js';
import * as names from './namespace.js';
import { restoreSession, saveSession, type ParsedFid, type P9SessionState } from './persist.js';
import type { Qid } from './protocol.js';
import * as session from './session.js';
import type { ExportRoot, OpsContext, Reply, Request } from './session.js';

export type { ExportRoot } from './session.js';

export class P9Ops {
  private readonly ctx: OpsContext;
  readonly fids: FidTable;

  constructor(root: ExportRoot, maxFids?: number) {
    this.ctx = session.createContext(root, maxFids);
    this.fids = this.ctx.fids;
  }

  qidOf(st: HostStat): Qid { return session.qidOf(this.ctx, st); }

  // ---- snapshots (persist.ts) ----
  saveSession(msize: number): P9SessionState { return saveSession(this.ctx, msize); }
  restoreSession(fids: readonly ParsedFid[], devIndex: Array<[string, number]>): Promise<number> {
    return restoreSession(this.ctx, fids, devIndex);
  }

  // ---- session ----
  attach(m: Request<'Tattach'>): Promise<Reply<'Rattach'>> { return session.attach(this.ctx, m); }
  walk(m: Request<'Twalk'>): Promise<Reply<'Rwalk'>> { return session.walk(this.ctx, m); }
  clunk(fidId: number): void { session.clunk(this.ctx, fidId); }

  // ---- attributes, locks, xattrs ----
  getattr(m: Request<'Tgetattr'>): Promise<Reply<'Rgetattr'>> { return meta.getattr(this.ctx, m); }
  setattr(m: Request<'Tsetattr'>): Promise<Reply<'Rsetattr'>> { return meta.setattr(this.ctx, m); }
  statfs(m: Request<'Tstatfs'>): Promise<Reply<'Rstatfs'>> { return meta.statfs(this.ctx, m); }
  lock(m: Request<'Tlock'>): Reply<'Rlock'> { return meta.lock(this.ctx, m); }
  getlock(m: Request<'Tgetlock'>): Reply<'Rgetlock'> { return meta.getlock(this.ctx, m); }
  xattrwalk(m: Request<'Txattrwalk'>): never { return meta.xattrwalk(this.ctx, m); }
  xattrcreate(m: Request<'Txattrcreate'>): never { return meta.xattrcreate(this.ctx, m); }

  // ---- open, create, data ----
  lopen(m: Request<'Tlopen'>): Promise<Reply<'Rlopen'>> { return io.lopen(this.ctx, m); }
  lcreate(m: Request<'Tlcreate'>): Promise<Reply<'Rlcreate'>> { return io.lcreate(this.ctx, m); }
  /** Reads into `views` (guest RAM) at `offset`; returns the bytes read (fewer at EOF). */
  read(fidId: number, offset: bigint, views: Uint8Array[]): Promise<number> { return io.read(this.ctx, fidId, offset, views); }
  /** Writes `views` (guest RAM) at `offset`; returns the bytes written. */
  write(fidId: number, offset: bigint, views: Uint8Array[]): Promise<number> { return io.write(this.ctx, fidId, offset, views); }
  fsync(m: Request<'Tfsync'>): Promise<Reply<'Rfsync'>> { return io.fsync(this.ctx, m); }

  // ---- names ----
  mkdir(m: Request<'Tmkdir'>): Promise<Reply<'Rmkdir'>> { return names.mkdir(this.ctx, m); }
  mknod(m: Request<'Tmknod'>): Promise<Reply<'Rmknod'>> { return names.mknod(this.ctx, m); }
  symlink(m: Request<'Tsymlink'>): Promise<Reply<'Rsymlink'>> { return names.symlink(this.ctx, m); }
  link(m: Request<'Tlink'>): Promise<Reply<'Rlink'>> { return names.link(this.ctx, m); }
  readlink(m: Request<'Treadlink'>): Promise<Reply<'Rreadlink'>> { return names.readlink(this.ctx, m); }
  rename(m: Request<'Trename'>): Promise<Reply<'Rrename'>> { return names.rename(this.ctx, m); }
  renameat(m: Request<'Trenameat'>): Promise<Reply<'Rrenameat'>> { return names.renameat(this.ctx, m); }
  unlinkat(m: Request<'Tunlinkat'>): Promise<Reply<'Runlinkat'>> { return names.unlinkat(this.ctx, m); }
  /** Tremove: unlink the fid's file; the fid is clunked whatever the outcome. */
  remove(m: Request<'Tremove'>): Promise<Reply<'Rremove'>> { return names.remove(this.ctx, m); }
  /** Treaddir: at most `count` bytes of 9P dirents from the host offset `m.offset`. */
  readdir(m: Request<'Treaddir'>, count: number): Promise<Uint8Array> { return names.readdir(this.ctx, m, count); }
}
