// Opening files and moving their data: Tlopen and Tlcreate (the guest's open flags turned
// into the host's), Tread and Twrite straight between guest RAM and the open fd, Tfsync.
// openFor is also how readdir (namespace.ts) gets a directory's open fd.
import { fdatasync, fchmod, fsync as fsyncFd, readv, writev } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { promisify } from 'node:util';
import { native } from '../../../native.js';
import { P9Error } from './errno.js';
import { FdRef, type Fid, type FileKind } from './fids.js';
import { checkName, fsc, openBeneath, reopen, statFd, type HostStat } from './jail.js';
import { DOTL } from './protocol.js';
import { qidOf, rofs, withHandle, type OpsContext, type Reply, type Request } from './session.js';

const pReadv = promisify(readv);
const pWritev = promisify(writev);
const pFsync = promisify(fsyncFd);
const pFdatasync = promisify(fdatasync);
const pFchmod = promisify(fchmod);
/** A filesystem that cannot do RWF_NOWAIT buffered writes says so with one of these. */
const NOWAIT_REFUSED = [osConstants.errno.EOPNOTSUPP, osConstants.errno.EINVAL];

/** Host open flags for a Tlopen/Tlcreate's; what a server must not pass on is dropped. */
export function hostFlags(ctx: OpsContext, dotl: number, kind: FileKind): { flags: number; readable: boolean; writable: boolean } {
  const c = fsc();
  const acc = dotl & DOTL.ACCMODE;
  const writable = acc === DOTL.WRONLY || acc === DOTL.RDWR;
  const readable = acc === DOTL.RDONLY || acc === DOTL.RDWR;
  if (ctx.root.readonly && (writable || (dotl & DOTL.TRUNC))) throw new P9Error('EROFS', 'read-only export');
  if (kind === 'dir' && writable) throw new P9Error('EISDIR');
  let flags = acc === DOTL.WRONLY ? c.O_WRONLY : acc === DOTL.RDWR ? c.O_RDWR : c.O_RDONLY;
  if (dotl & DOTL.TRUNC) flags |= c.O_TRUNC;
  if (dotl & DOTL.APPEND) flags |= c.O_APPEND;
  if (dotl & DOTL.DSYNC) flags |= c.O_DSYNC;
  if (dotl & DOTL.SYNC) flags |= c.O_SYNC;
  if (dotl & DOTL.DIRECTORY) flags |= c.O_DIRECTORY;
  flags |= c.O_LARGEFILE;
  // Not passed: O_NOFOLLOW (the fd is reopened through a magic link), O_DIRECT (the guest's
  // buffers need not be aligned), O_NOATIME (EPERM unless owner), O_NONBLOCK/FASYNC (no
  // signals or would-blocks for a server), O_CREAT/O_EXCL (a Tlopen never creates).
  return { flags, readable: acc !== 3 && readable, writable };
}

export async function lopen(ctx: OpsContext, m: Request<'Tlopen'>): Promise<Reply<'Rlopen'>> {
  const fid = ctx.fids.get(m.fid);
  if (fid.open !== undefined) throw new P9Error('EBADF', `fid ${m.fid} is already open`);
  const { flags, readable, writable } = hostFlags(ctx, m.flags, fid.kind);
  return withHandle(fid, async (fd) => {
    const ofd = await reopen(fd, fid.kind, flags, ctx.root.io);
    const ref = new FdRef(ofd, ctx.root.io);
    let st: HostStat;
    try {
      st = await statFd(ofd, ctx.root.io);
    } catch (e) {
      ref.release();
      throw e;
    }
    if (fid.open !== undefined || !ctx.fids.has(m.fid)) {
      ref.release();
      throw new P9Error('EBADF', `fid ${m.fid} changed while it was opened`);
    }
    fid.open = { fd: ref, readable, writable, dotl: m.flags };
    const qid = qidOf(ctx, st);
    fid.qidPath = qid.path;
    return { qid, iounit: 0 };
  });
}

export async function lcreate(ctx: OpsContext, m: Request<'Tlcreate'>): Promise<Reply<'Rlcreate'>> {
  const fid = ctx.fids.get(m.fid);
  checkName(m.name);
  rofs(ctx);
  if (fid.kind !== 'dir') throw new P9Error('ENOTDIR');
  if (fid.open !== undefined) throw new P9Error('EBADF', `fid ${m.fid} is open`);
  const { flags, readable, writable } = hostFlags(ctx, m.flags, 'file');
  const c = fsc();
  const mode = m.mode & 0o7777;
  const excl = (m.flags & DOTL.EXCL) ? c.O_EXCL : 0;
  const fd = await withHandle(fid, (dfd) => openBeneath(dfd, m.name, flags | c.O_CREAT | excl, mode, ctx.root.io));
  const ref = new FdRef(fd, ctx.root.io);
  try {
    if (mode & ctx.umask) await pFchmod(fd, mode);
    const st = await statFd(fd, ctx.root.io);
    if (fid.open !== undefined || !ctx.fids.has(m.fid)) throw new P9Error('EBADF', `fid ${m.fid} changed during create`);
    // The fid now names the new file, opened: its fd serves as both handle and open fd.
    const oldHandle = fid.handle;
    fid.handle = ref.acquire();
    fid.path = [...fid.path, m.name];
    fid.kind = 'file';
    fid.open = { fd: ref, readable, writable, dotl: m.flags };
    oldHandle.release();
    const qid = qidOf(ctx, st);
    fid.qidPath = qid.path;
    return { qid, iounit: 0 };
  } catch (e) {
    ref.release();
    throw e;
  }
}

/** The open fid `fidId` and its open fd (held: the caller releases it), checked for `what`. */
export function openFor(ctx: OpsContext, fidId: number, what: 'read' | 'write' | 'readdir'): { fid: Fid; fd: FdRef } {
  const fid = ctx.fids.get(fidId);
  const o = fid.open;
  if (o === undefined) throw new P9Error('EBADF', `fid ${fidId} is not open`);
  if (what === 'write' && !o.writable) throw new P9Error('EBADF', `fid ${fidId} is not open for writing`);
  if (what === 'read' && !o.readable) throw new P9Error('EBADF', `fid ${fidId} is not open for reading`);
  if (what === 'readdir' && fid.kind !== 'dir') throw new P9Error('ENOTDIR');
  if (what !== 'readdir' && fid.kind === 'dir') throw new P9Error('EISDIR');
  return { fid, fd: o.fd.acquire() };
}

/** iovecs one preadv2/pwritev2 takes (IOV_MAX). */
const IOV_MAX = 1024;

/**
 * Reads into `views` (guest RAM) at `offset`; returns the bytes read (fewer at EOF, or when
 * only part of the range is in the page cache: the client asks again for the rest).
 */
export async function read(ctx: OpsContext, fidId: number, offset: bigint, views: Uint8Array[]): Promise<number> {
  const { fd } = openFor(ctx, fidId, 'read');
  try {
    if (offset > BigInt(Number.MAX_SAFE_INTEGER)) return 0;
    if (views.length === 0) return 0;
    if (views.length <= IOV_MAX && ctx.root.io.inline) {
      // From the page cache on this thread when it holds the start of the range (RWF_NOWAIT:
      // EAGAIN instead of waiting for the device); any refusal goes to the threadpool.
      const n = native().preadv2Now(fd.fd, views, Number(offset), fsc().RWF_NOWAIT);
      if (n >= 0) {
        ctx.root.io.calls.inline++;
        return n;
      }
    }
    ctx.root.io.calls.pooled++;
    return (await pReadv(fd.fd, views, Number(offset))).bytesRead;
  } finally {
    fd.release();
  }
}

/** Writes `views` (guest RAM) at `offset`; returns the bytes written. */
export async function write(ctx: OpsContext, fidId: number, offset: bigint, views: Uint8Array[]): Promise<number> {
  rofs(ctx);
  const { fd } = openFor(ctx, fidId, 'write');
  try {
    if (offset > BigInt(Number.MAX_SAFE_INTEGER)) throw new P9Error('EFBIG');
    if (views.length === 0) return 0;
    if (views.length <= IOV_MAX && ctx.root.io.inline && !ctx.root.io.noWaitWrites.refused) {
      // Into the page cache on this thread when the filesystem can promise not to wait
      // (RWF_NOWAIT on a buffered write; a filesystem without it refuses, once for all). A
      // short write is an answer too: the client sends the rest.
      const n = native().pwritev2Now(fd.fd, views, Number(offset), fsc().RWF_NOWAIT);
      if (n >= 0) {
        ctx.root.io.calls.inline++;
        return n;
      }
      if (NOWAIT_REFUSED.includes(-n)) ctx.root.io.noWaitWrites.refused = true;
    }
    ctx.root.io.calls.pooled++;
    return (await pWritev(fd.fd, views, Number(offset))).bytesWritten;
  } finally {
    fd.release();
  }
}

export async function fsync(ctx: OpsContext, m: Request<'Tfsync'>): Promise<Reply<'Rfsync'>> {
  const fid = ctx.fids.get(m.fid);
  const o = fid.open;
  if (o === undefined) throw new P9Error('EBADF', `fid ${m.fid} is not open`);
  const h = o.fd.acquire();
  try {
    await (m.datasync ? pFdatasync(h.fd) : pFsync(h.fd));
  } finally {
    h.release();
  }
  return {};
}
