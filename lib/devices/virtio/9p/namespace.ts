// The operations on names in directories: making entries (Tmkdir, Tmknod, Tsymlink, Tlink),
// reading a symlink, moving and removing names (Trename, Trenameat, Tunlinkat, Tremove, with
// the fids' paths following a rename) and listing a directory (Treaddir, encoded straight from
// getdents64). Every name is one checked component, resolved beneath a directory fid's fd.
import { native } from '../../../native.js';
import { P9Error } from './errno.js';
import type { Fid } from './fids.js';
import { checkName, fsc, openPathBeneath, procPath, statFd } from './jail.js';
import { openFor } from './file-io.js';
import {
  P9_AT_REMOVEDIR, QTDIR, QTFILE, QTSYMLINK, QID_SIZE, S_IFCHR, S_IFBLK, S_IFIFO, S_IFMT, S_IFREG, S_IFSOCK, type Qid,
} from './protocol.js';
import {
  MASK48, closeFd, parentOf, qidOf, rofs, withHandle, type OpsContext, type Reply, type Request,
} from './session.js';

/** Creates something with `make` in directory fid `dfid`, then stats it by name beneath. */
async function made(ctx: OpsContext, dfid: Fid, name: Uint8Array, make: (dfd: number) => Promise<unknown>, chmod?: number): Promise<Qid> {
  return withHandle(dfid, async (dfd) => {
    await make(dfd);
    const fd = await openPathBeneath(dfd, name, 0, ctx.root.io);
    try {
      if (chmod !== undefined && (chmod & ctx.umask)) await native().fchmodat(fsc().AT_FDCWD, procPath(fd), chmod, 0);
      return qidOf(ctx, await statFd(fd, ctx.root.io));
    } finally {
      await closeFd(fd);
    }
  });
}

export async function mkdir(ctx: OpsContext, m: Request<'Tmkdir'>): Promise<Reply<'Rmkdir'>> {
  const dfid = ctx.fids.get(m.dfid);
  checkName(m.name);
  rofs(ctx);
  const mode = m.mode & 0o7777;
  return { qid: await made(ctx, dfid, m.name, (dfd) => native().mkdirat(dfd, m.name, mode), mode) };
}

export async function mknod(ctx: OpsContext, m: Request<'Tmknod'>): Promise<Reply<'Rmknod'>> {
  const dfid = ctx.fids.get(m.dfid);
  checkName(m.name);
  rofs(ctx);
  const type = m.mode & S_IFMT;
  if (type === S_IFCHR || type === S_IFBLK) throw new P9Error('EPERM', 'device nodes are not created on the host');
  if (type !== 0 && type !== S_IFREG && type !== S_IFIFO && type !== S_IFSOCK) throw new P9Error('EINVAL', 'unknown file type');
  const mode = (type === 0 ? S_IFREG : type) | (m.mode & 0o7777);
  return { qid: await made(ctx, dfid, m.name, (dfd) => native().mknodat(dfd, m.name, mode, 0, 0), m.mode & 0o7777) };
}

export async function symlink(ctx: OpsContext, m: Request<'Tsymlink'>): Promise<Reply<'Rsymlink'>> {
  const dfid = ctx.fids.get(m.fid);
  checkName(m.name);
  rofs(ctx);
  if (m.symtgt.length === 0 || m.symtgt.includes(0)) throw new P9Error('EINVAL', 'symlink target empty or holds NUL');
  // The target is stored as given and never followed by the server.
  return { qid: await made(ctx, dfid, m.name, (dfd) => native().symlinkat(m.symtgt, dfd, m.name)) };
}

export async function link(ctx: OpsContext, m: Request<'Tlink'>): Promise<Reply<'Rlink'>> {
  const dfid = ctx.fids.get(m.dfid);
  const fid = ctx.fids.get(m.fid);
  checkName(m.name);
  rofs(ctx);
  if (fid.kind === 'dir') throw new P9Error('EPERM', 'hard links to directories');
  const c = fsc();
  await withHandle(dfid, (dfd) => withHandle(fid, (fd) =>
    // The magic link names exactly the fid's inode; nothing is resolved by name.
    native().linkat(c.AT_FDCWD, procPath(fd), dfd, m.name, c.AT_SYMLINK_FOLLOW)));
  return {};
}

export async function readlink(ctx: OpsContext, m: Request<'Treadlink'>): Promise<Reply<'Rreadlink'>> {
  const fid = ctx.fids.get(m.fid);
  if (fid.kind !== 'symlink') throw new P9Error('EINVAL', 'not a symlink');
  const target = await withHandle(fid, (fd) => native().readlinkat(fd, ''));
  return { target: new Uint8Array(target.buffer, target.byteOffset, target.byteLength) };
}

/** After a rename of `from` to `to`, fids at or under `from` follow it. */
function renamed(ctx: OpsContext, from: Uint8Array[], to: Uint8Array[]): void {
  const eq = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);
  for (const f of ctx.fids.values()) {
    if (f.path.length < from.length) continue;
    if (from.every((n, i) => eq(n, f.path[i]!))) f.path = [...to, ...f.path.slice(from.length)];
  }
}

export async function rename(ctx: OpsContext, m: Request<'Trename'>): Promise<Reply<'Rrename'>> {
  const fid = ctx.fids.get(m.fid);
  const dfid = ctx.fids.get(m.dfid);
  checkName(m.name);
  rofs(ctx);
  if (fid.path.length === 0) throw new P9Error('EBUSY', 'the export root cannot be renamed');
  const from = fid.path.slice();
  const to = [...dfid.path, m.name];
  const pfd = await parentOf(ctx, fid);
  try {
    await withHandle(dfid, (dfd) => native().renameat2(pfd, from[from.length - 1]!, dfd, m.name, 0));
  } finally {
    await closeFd(pfd);
  }
  renamed(ctx, from, to);
  return {};
}

export async function renameat(ctx: OpsContext, m: Request<'Trenameat'>): Promise<Reply<'Rrenameat'>> {
  const od = ctx.fids.get(m.olddirfid);
  const nd = ctx.fids.get(m.newdirfid);
  checkName(m.oldname);
  checkName(m.newname);
  rofs(ctx);
  await withHandle(od, (ofd) => withHandle(nd, (nfd) => native().renameat2(ofd, m.oldname, nfd, m.newname, 0)));
  renamed(ctx, [...od.path, m.oldname], [...nd.path, m.newname]);
  return {};
}

export async function unlinkat(ctx: OpsContext, m: Request<'Tunlinkat'>): Promise<Reply<'Runlinkat'>> {
  const dfid = ctx.fids.get(m.dirfid);
  checkName(m.name);
  rofs(ctx);
  const flags = (m.flags & P9_AT_REMOVEDIR) ? fsc().AT_REMOVEDIR : 0;
  await withHandle(dfid, (dfd) => native().unlinkat(dfd, m.name, flags));
  return {};
}

/** Tremove: unlink the fid's file; the fid is clunked whatever the outcome. */
export async function remove(ctx: OpsContext, m: Request<'Tremove'>): Promise<Reply<'Rremove'>> {
  if (ctx.fids.isStale(m.fid)) {
    ctx.fids.clunk(m.fid);
    throw new P9Error('ESTALE', `fid ${m.fid} is stale since the restore`);
  }
  const fid = ctx.fids.get(m.fid);
  try {
    rofs(ctx);
    if (fid.path.length === 0) throw new P9Error('EBUSY', 'the export root cannot be removed');
    const pfd = await parentOf(ctx, fid);
    try {
      await native().unlinkat(pfd, fid.path[fid.path.length - 1]!, fid.kind === 'dir' ? fsc().AT_REMOVEDIR : 0);
    } finally {
      await closeFd(pfd);
    }
  } finally {
    if (ctx.fids.has(m.fid)) ctx.fids.clunk(m.fid);
  }
  return {};
}

/**
 * Treaddir: entries from host offset `offset` (a d_off cookie from an earlier reply, 0 at
 * the start), encoded as 9P dirents into at most `count` bytes.
 */
export async function readdir(ctx: OpsContext, m: Request<'Treaddir'>, count: number): Promise<Uint8Array> {
  const { fid, fd } = openFor(ctx, m.fid, 'readdir');
  const o = fid.open!;
  const run = async (): Promise<Uint8Array> => {
    const want = Math.max(4096, Math.min(count, 1 << 20));
    if (o.dirBuf === undefined || o.dirBuf.byteLength < want) o.dirBuf = new Uint8Array(want);
    const buf = o.dirBuf;
    const n = await native().getdents64(fd.fd, buf, BigInt.asIntN(64, m.offset));
    const out = new Uint8Array(Math.min(count, n * 2 + 64));
    const ov = new DataView(out.buffer);
    const dv = new DataView(buf.buffer, buf.byteOffset, n);
    let at = 0;
    let pos = 0;
    // The directory's filesystem index for the entries' qids (d_ino is of that filesystem).
    const dirSt = dirQidBase(fid);
    while (pos + 19 <= n) {
      const ino = dv.getBigUint64(pos, true);
      const off = dv.getBigInt64(pos + 8, true);
      const reclen = dv.getUint16(pos + 16, true);
      const dtype = dv.getUint8(pos + 18);
      if (reclen < 20 || pos + reclen > n) break;
      let end = pos + 19;
      while (end < pos + reclen && buf[end] !== 0) end++;
      const nameLen = end - (pos + 19);
      const entry = QID_SIZE + 8 + 1 + 2 + nameLen;
      if (at + entry > count || at + entry > out.byteLength) break;
      const qtype = dtype === 4 ? QTDIR : dtype === 10 ? QTSYMLINK : QTFILE;
      ov.setUint8(at, qtype);
      ov.setUint32(at + 1, 0, true);
      ov.setBigUint64(at + 5, dirSt | (ino & MASK48), true);
      ov.setBigUint64(at + 13, BigInt.asUintN(64, off), true);
      ov.setUint8(at + 21, dtype);
      ov.setUint16(at + 22, nameLen, true);
      out.set(buf.subarray(pos + 19, end), at + 24);
      at += entry;
      pos += reclen;
    }
    return out.subarray(0, at);
  };
  const prev = o.dirQueue ?? Promise.resolve();
  const p = prev.then(run, run);
  o.dirQueue = p.catch(() => undefined);
  try {
    return await p;
  } finally {
    fd.release();
  }
}

/** The filesystem-index bits of a directory's qid, for its entries (d_ino is of the
 *  directory's filesystem; a mount point's entry shows the covered inode, as on the host). */
function dirQidBase(fid: Fid): bigint {
  return fid.qidPath === undefined ? 0n : fid.qidPath & ~MASK48;
}
