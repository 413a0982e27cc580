// What a file is rather than what it holds: Tgetattr and Tsetattr (mode, owner, times, size),
// Tstatfs, the advisory locks (Tlock, Tgetlock: answered without a host lock) and the extended
// attributes (Txattrwalk, Txattrcreate: not served).
import { ftruncate } from 'node:fs';
import { promisify } from 'node:util';
import { native } from '../../../native.js';
import { P9Error } from './errno.js';
import { fsc, procPath, reopen, statFd } from './jail.js';
import { GETATTR, LOCK_STATUS, LOCK_TYPE, SETATTR } from './protocol.js';
import { closeFd, qidOf, rofs, withHandle, type OpsContext, type Reply, type Request } from './session.js';

const pFtruncate = promisify(ftruncate);

/** Linux's new_encode_dev: the dev_t numbering 9P's rdev uses. */
function encodeDev(major: number, minor: number): bigint {
  return BigInt(((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0);
}

export async function getattr(ctx: OpsContext, m: Request<'Tgetattr'>): Promise<Reply<'Rgetattr'>> {
  const fid = ctx.fids.get(m.fid);
  const st = await withHandle(fid, (fd) => statFd(fd, ctx.root.io));
  const valid = GETATTR.BASIC | (st.hasBtime ? GETATTR.BTIME : 0n);
  return {
    valid, qid: qidOf(ctx, st), mode: st.mode, uid: st.uid, gid: st.gid, nlink: st.nlink,
    rdev: encodeDev(st.rdevMajor, st.rdevMinor), size: st.size, blksize: st.blksize, blocks: st.blocks,
    atimeSec: st.atimeSec, atimeNsec: st.atimeNsec, mtimeSec: st.mtimeSec, mtimeNsec: st.mtimeNsec,
    ctimeSec: st.ctimeSec, ctimeNsec: st.ctimeNsec, btimeSec: st.hasBtime ? st.btimeSec : 0n,
    btimeNsec: st.hasBtime ? st.btimeNsec : 0n, gen: 0n, dataVersion: 0n,
  };
}

export async function setattr(ctx: OpsContext, m: Request<'Tsetattr'>): Promise<Reply<'Rsetattr'>> {
  const fid = ctx.fids.get(m.fid);
  const v = m.valid;
  const changes = SETATTR.MODE | SETATTR.UID | SETATTR.GID | SETATTR.SIZE | SETATTR.ATIME | SETATTR.MTIME;
  if ((v & changes) === 0) return {};
  rofs(ctx);
  const c = fsc();
  const n = native();
  await withHandle(fid, async (fd) => {
    if (v & SETATTR.MODE) {
      if (fid.kind === 'symlink') throw new P9Error('EOPNOTSUPP', 'symlinks have no mode of their own');
      await n.fchmodat(c.AT_FDCWD, procPath(fd), m.mode & 0o7777, 0);
    }
    if (v & (SETATTR.ATIME | SETATTR.MTIME)) {
      const t = (set: number, setGiven: number, sec: bigint, nsec: bigint): [bigint, number] =>
        (v & set) === 0 ? [0n, c.UTIME_OMIT] : (v & setGiven) ? [BigInt.asIntN(64, sec), Number(nsec % 1_000_000_000n)] : [0n, c.UTIME_NOW];
      const [as, an] = t(SETATTR.ATIME, SETATTR.ATIME_SET, m.atimeSec, m.atimeNsec);
      const [ms, mn] = t(SETATTR.MTIME, SETATTR.MTIME_SET, m.mtimeSec, m.mtimeNsec);
      if (fid.kind === 'symlink') await n.utimensat(fd, '', as, an, ms, mn, c.AT_EMPTY_PATH | c.AT_SYMLINK_NOFOLLOW);
      else await n.utimensat(c.AT_FDCWD, procPath(fd), as, an, ms, mn, 0);
    }
    if (v & (SETATTR.UID | SETATTR.GID)) {
      const uid = (v & SETATTR.UID) ? m.uid : 0xffffffff;
      const gid = (v & SETATTR.GID) ? m.gid : 0xffffffff;
      try {
        await n.fchownat(fd, '', uid, gid, c.AT_EMPTY_PATH | c.AT_SYMLINK_NOFOLLOW);
      } catch (e) {
        // security_model=none: an unprivileged VMM keeps ownership; the guest is not told.
        if ((e as { code?: string }).code !== 'EPERM') throw e;
      }
    }
    if (v & SETATTR.SIZE) {
      if (fid.kind !== 'file') throw new P9Error(fid.kind === 'dir' ? 'EISDIR' : 'EINVAL');
      if (m.size > BigInt(Number.MAX_SAFE_INTEGER)) throw new P9Error('EFBIG');
      const open = fid.open;
      if (open?.writable) {
        const h = open.fd.acquire();
        try { await pFtruncate(h.fd, Number(m.size)); } finally { h.release(); }
      } else {
        const wfd = await reopen(fd, 'file', c.O_WRONLY, ctx.root.io);
        try { await pFtruncate(wfd, Number(m.size)); } finally { await closeFd(wfd); }
      }
    }
  });
  return {};
}

export async function statfs(ctx: OpsContext, m: Request<'Tstatfs'>): Promise<Reply<'Rstatfs'>> {
  const fid = ctx.fids.get(m.fid);
  const s = await withHandle(fid, (fd) => native().fstatfs(fd));
  const u = (x: bigint): bigint => BigInt.asUintN(64, x);
  return {
    fstype: Number(s[0]! & 0xffffffffn), bsize: Number(s[1]!), blocks: u(s[2]!), bfree: u(s[3]!), bavail: u(s[4]!),
    files: u(s[5]!), ffree: u(s[6]!), fsid: u(s[7]!), namelen: Number(s[8]!),
  };
}

/**
 * Tlock: the guest's kernel already arbitrates its own processes' locks before it sends
 * this; the server takes no host lock (as QEMU's), so locks are not seen by host processes.
 */
export function lock(ctx: OpsContext, m: Request<'Tlock'>): Reply<'Rlock'> {
  ctx.fids.get(m.fid);
  if (m.lockType !== LOCK_TYPE.RDLCK && m.lockType !== LOCK_TYPE.WRLCK && m.lockType !== LOCK_TYPE.UNLCK) {
    return { status: LOCK_STATUS.ERROR };
  }
  return { status: LOCK_STATUS.SUCCESS };
}

export function getlock(ctx: OpsContext, m: Request<'Tgetlock'>): Reply<'Rgetlock'> {
  ctx.fids.get(m.fid);
  return { lockType: LOCK_TYPE.UNLCK, start: m.start, length: m.length, procId: m.procId, clientId: m.clientId };
}

/** Extended attributes are not served: the guest gets EOPNOTSUPP, as from a filesystem without them. */
export function xattrwalk(ctx: OpsContext, m: Request<'Txattrwalk'>): never {
  ctx.fids.get(m.fid);
  throw new P9Error('EOPNOTSUPP', 'extended attributes are not supported');
}

export function xattrcreate(ctx: OpsContext, m: Request<'Txattrcreate'>): never {
  ctx.fids.get(m.fid);
  rofs(ctx);
  throw new P9Error('EOPNOTSUPP', 'extended attributes are not supported');
}
