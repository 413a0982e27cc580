// The file operations of 9P2000.L on one export, each from a decoded T-message to the fields
// of its R-message. Every host call is asynchronous (native/fs.cc or Node's fs, both on the
// libuv threadpool) and starts from an fd inside the export (jail.ts). Errors are thrown as
// host errors (KvmError/ErrnoException with an errno name) or P9Error; server.ts turns them
// into Rlerror.
import { close, fdatasync, fchmod, fsync, ftruncate, readFileSync, readv, writev } from 'node:fs';
import { promisify } from 'node:util';
import { native } from '../../../native.js';
import { P9Error } from './errno.js';
import { FdRef, FidTable, type Fid, type FileKind } from './fids.js';
import {
  checkName, fsc, isDot, isDotDot, joinPath, kindOf, openBeneath, openPathBeneath, procPath, reopen, statFd,
  type HostStat,
} from './jail.js';
import {
  DOTL, GETATTR, LOCK_STATUS, LOCK_TYPE, MAXWELEM, NOFID, P9_AT_REMOVEDIR, QTDIR, QTFILE, QTSYMLINK, QID_SIZE, SETATTR,
  S_IFCHR, S_IFBLK, S_IFIFO, S_IFMT, S_IFREG, S_IFSOCK, type Message, type Qid,
} from './protocol.js';

const pReadv = promisify(readv);
const pWritev = promisify(writev);
const pFsync = promisify(fsync);
const pFdatasync = promisify(fdatasync);
const pFchmod = promisify(fchmod);
const pFtruncate = promisify(ftruncate);

type Reply<N extends Message['op']> = Omit<Extract<Message, { op: N }>, 'op' | 'tag'>;

/** One export served to one guest session. */
export interface ExportRoot {
  /** O_PATH fd of the exported directory, held for the server's life. */
  rootFd: number;
  readonly: boolean;
}

/** The process's umask (read once): a create whose mode it would narrow gets an explicit chmod. */
function processUmask(): number {
  try {
    const m = /^Umask:\s*([0-7]+)$/m.exec(readFileSync('/proc/self/status', 'latin1'));
    if (m) return parseInt(m[1]!, 8);
  } catch { /* no /proc: assume the usual */ }
  return 0o022;
}

const MASK48 = (1n << 48n) - 1n;

/** Linux's new_encode_dev: the dev_t numbering 9P's rdev uses. */
function encodeDev(major: number, minor: number): bigint {
  return BigInt(((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0);
}

export class P9Ops {
  readonly fids = new FidTable();
  private readonly devIndex = new Map<string, number>();
  private readonly umask = processUmask();

  constructor(private readonly root: ExportRoot) {}

  private rofs(): void {
    if (this.root.readonly) throw new P9Error('EROFS', 'read-only export');
  }

  /**
   * qid.path: the inode number, with the host filesystem's index in the top 16 bits so files
   * of two filesystems under one export (mount points) never share a qid.
   */
  qidOf(st: HostStat): Qid {
    const key = `${st.devMajor}:${st.devMinor}`;
    let idx = this.devIndex.get(key);
    if (idx === undefined) {
      idx = this.devIndex.size & 0xffff;
      this.devIndex.set(key, idx);
    }
    const k = kindOf(st.mode);
    const type = k === 'dir' ? QTDIR : k === 'symlink' ? QTSYMLINK : QTFILE;
    return { type, version: 0, path: (BigInt(idx) << 48n) | (st.ino & MASK48) };
  }

  /** Runs `f` with the fid's handle held, so a clunk meanwhile cannot close it. */
  private async withHandle<T>(fid: Fid, f: (fd: number) => Promise<T>): Promise<T> {
    const h = fid.handle.acquire();
    try {
      return await f(h.fd);
    } finally {
      h.release();
    }
  }

  /** O_PATH fd of the fid's parent directory (the root for the root itself). */
  private parentOf(fid: Fid): Promise<number> {
    return openPathBeneath(this.root.rootFd, joinPath(fid.path.slice(0, -1)), fsc().O_DIRECTORY);
  }

  /** Closes an fd this operation opened and no fid holds. */
  private async closeFd(fd: number): Promise<void> {
    await new Promise<void>((r) => close(fd, () => r()));
  }

  // ---- session ----

  async attach(m: Extract<Message, { op: 'Tattach' }>): Promise<Reply<'Rattach'>> {
    if (m.afid !== NOFID) throw new P9Error('EINVAL', 'authentication is not used');
    this.fids.reserve(m.fid);
    try {
      const fd = await openPathBeneath(this.root.rootFd, '.', fsc().O_DIRECTORY);
      let st: HostStat;
      try {
        st = await statFd(fd);
      } catch (e) {
        await this.closeFd(fd);
        throw e;
      }
      const qid = this.qidOf(st);
      this.fids.set({ id: m.fid, path: [], handle: new FdRef(fd), kind: 'dir', qidPath: qid.path });
      return { qid };
    } finally {
      this.fids.unreserve(m.fid);
    }
  }

  async walk(m: Extract<Message, { op: 'Twalk' }>): Promise<Reply<'Rwalk'>> {
    const names = m.wnames;
    if (names.length > MAXWELEM) throw new P9Error('EINVAL', `walk of ${names.length} names (at most ${MAXWELEM})`);
    for (const n of names) checkName(n, true);
    const fid = this.fids.get(m.fid);
    const inPlace = m.newfid === m.fid;
    if (!inPlace) this.fids.reserve(m.newfid);
    let cur = fid.handle.acquire();
    let path = fid.path.slice();
    let kind: FileKind = fid.kind;
    const qids: Qid[] = [];
    try {
      for (const name of names) {
        let next: number;
        if (isDot(name)) {
          next = await openPathBeneath(cur.fd, '.');
        } else if (isDotDot(name)) {
          // Never above the export's root; resolved from the root by the names walked so far.
          const up = path.slice(0, -1);
          next = await openPathBeneath(this.root.rootFd, joinPath(up));
          path = up;
        } else {
          if (kind !== 'dir') throw new P9Error('ENOTDIR');
          next = await openPathBeneath(cur.fd, name);
          path.push(name);
        }
        const ref = new FdRef(next);
        cur.release();
        cur = ref;
        let st: HostStat;
        try {
          st = await statFd(next);
        } catch (e) {
          if (qids.length === 0) throw e;
          break;
        }
        kind = kindOf(st.mode);
        qids.push(this.qidOf(st));
      }
    } catch (e) {
      cur.release();
      if (!inPlace) this.fids.unreserve(m.newfid);
      if (qids.length === 0) throw e;
      return { wqids: qids };
    }
    if (qids.length < names.length) {
      cur.release();
      if (!inPlace) this.fids.unreserve(m.newfid);
      return { wqids: qids };
    }
    if (inPlace && !this.fids.has(m.fid)) {
      // Clunked while the walk ran: nothing to replace.
      cur.release();
      throw new P9Error('EBADF', `fid ${m.fid} clunked during walk`);
    }
    this.fids.set({ id: m.newfid, path, handle: cur, kind, qidPath: qids.length > 0 ? qids[qids.length - 1]!.path : fid.qidPath });
    return { wqids: qids };
  }

  clunk(fidId: number): void {
    this.fids.clunk(fidId);
  }

  // ---- attributes ----

  async getattr(m: Extract<Message, { op: 'Tgetattr' }>): Promise<Reply<'Rgetattr'>> {
    const fid = this.fids.get(m.fid);
    const st = await this.withHandle(fid, statFd);
    const valid = GETATTR.BASIC | (st.hasBtime ? GETATTR.BTIME : 0n);
    return {
      valid, qid: this.qidOf(st), mode: st.mode, uid: st.uid, gid: st.gid, nlink: st.nlink,
      rdev: encodeDev(st.rdevMajor, st.rdevMinor), size: st.size, blksize: st.blksize, blocks: st.blocks,
      atimeSec: st.atimeSec, atimeNsec: st.atimeNsec, mtimeSec: st.mtimeSec, mtimeNsec: st.mtimeNsec,
      ctimeSec: st.ctimeSec, ctimeNsec: st.ctimeNsec, btimeSec: st.hasBtime ? st.btimeSec : 0n,
      btimeNsec: st.hasBtime ? st.btimeNsec : 0n, gen: 0n, dataVersion: 0n,
    };
  }

  async setattr(m: Extract<Message, { op: 'Tsetattr' }>): Promise<Reply<'Rsetattr'>> {
    const fid = this.fids.get(m.fid);
    const v = m.valid;
    const changes = SETATTR.MODE | SETATTR.UID | SETATTR.GID | SETATTR.SIZE | SETATTR.ATIME | SETATTR.MTIME;
    if ((v & changes) === 0) return {};
    this.rofs();
    const c = fsc();
    const n = native();
    await this.withHandle(fid, async (fd) => {
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
          const wfd = await reopen(fd, 'file', c.O_WRONLY);
          try { await pFtruncate(wfd, Number(m.size)); } finally { await this.closeFd(wfd); }
        }
      }
    });
    return {};
  }

  async statfs(m: Extract<Message, { op: 'Tstatfs' }>): Promise<Reply<'Rstatfs'>> {
    const fid = this.fids.get(m.fid);
    const s = await this.withHandle(fid, (fd) => native().fstatfs(fd));
    const u = (x: bigint): bigint => BigInt.asUintN(64, x);
    return {
      fstype: Number(s[0]! & 0xffffffffn), bsize: Number(s[1]!), blocks: u(s[2]!), bfree: u(s[3]!), bavail: u(s[4]!),
      files: u(s[5]!), ffree: u(s[6]!), fsid: u(s[7]!), namelen: Number(s[8]!),
    };
  }

  // ---- open / create ----

  /** Host open flags for a Tlopen/Tlcreate's; what a server must not pass on is dropped. */
  private hostFlags(dotl: number, kind: FileKind): { flags: number; readable: boolean; writable: boolean } {
    const c = fsc();
    const acc = dotl & DOTL.ACCMODE;
    const writable = acc === DOTL.WRONLY || acc === DOTL.RDWR;
    const readable = acc === DOTL.RDONLY || acc === DOTL.RDWR;
    if (this.root.readonly && (writable || (dotl & DOTL.TRUNC))) throw new P9Error('EROFS', 'read-only export');
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

  async lopen(m: Extract<Message, { op: 'Tlopen' }>): Promise<Reply<'Rlopen'>> {
    const fid = this.fids.get(m.fid);
    if (fid.open !== undefined) throw new P9Error('EBADF', `fid ${m.fid} is already open`);
    const { flags, readable, writable } = this.hostFlags(m.flags, fid.kind);
    return this.withHandle(fid, async (fd) => {
      const ofd = await reopen(fd, fid.kind, flags);
      const ref = new FdRef(ofd);
      let st: HostStat;
      try {
        st = await statFd(ofd);
      } catch (e) {
        ref.release();
        throw e;
      }
      if (fid.open !== undefined || !this.fids.has(m.fid)) {
        ref.release();
        throw new P9Error('EBADF', `fid ${m.fid} changed while it was opened`);
      }
      fid.open = { fd: ref, readable, writable };
      const qid = this.qidOf(st);
      fid.qidPath = qid.path;
      return { qid, iounit: 0 };
    });
  }

  async lcreate(m: Extract<Message, { op: 'Tlcreate' }>): Promise<Reply<'Rlcreate'>> {
    const fid = this.fids.get(m.fid);
    checkName(m.name);
    this.rofs();
    if (fid.kind !== 'dir') throw new P9Error('ENOTDIR');
    if (fid.open !== undefined) throw new P9Error('EBADF', `fid ${m.fid} is open`);
    const { flags, readable, writable } = this.hostFlags(m.flags, 'file');
    const c = fsc();
    const mode = m.mode & 0o7777;
    const excl = (m.flags & DOTL.EXCL) ? c.O_EXCL : 0;
    const fd = await this.withHandle(fid, (dfd) => openBeneath(dfd, m.name, flags | c.O_CREAT | excl, mode));
    const ref = new FdRef(fd);
    try {
      if (mode & this.umask) await pFchmod(fd, mode);
      const st = await statFd(fd);
      if (fid.open !== undefined || !this.fids.has(m.fid)) throw new P9Error('EBADF', `fid ${m.fid} changed during create`);
      // The fid now names the new file, opened: its fd serves as both handle and open fd.
      const oldHandle = fid.handle;
      fid.handle = ref.acquire();
      fid.path = [...fid.path, m.name];
      fid.kind = 'file';
      fid.open = { fd: ref, readable, writable };
      oldHandle.release();
      const qid = this.qidOf(st);
      fid.qidPath = qid.path;
      return { qid, iounit: 0 };
    } catch (e) {
      ref.release();
      throw e;
    }
  }

  /** Creates something with `make` in directory fid `dfid`, then stats it by name beneath. */
  private async made(dfid: Fid, name: Uint8Array, make: (dfd: number) => Promise<unknown>, chmod?: number): Promise<Qid> {
    return this.withHandle(dfid, async (dfd) => {
      await make(dfd);
      const fd = await openPathBeneath(dfd, name);
      try {
        if (chmod !== undefined && (chmod & this.umask)) await native().fchmodat(fsc().AT_FDCWD, procPath(fd), chmod, 0);
        return this.qidOf(await statFd(fd));
      } finally {
        await this.closeFd(fd);
      }
    });
  }

  async mkdir(m: Extract<Message, { op: 'Tmkdir' }>): Promise<Reply<'Rmkdir'>> {
    const dfid = this.fids.get(m.dfid);
    checkName(m.name);
    this.rofs();
    const mode = m.mode & 0o7777;
    return { qid: await this.made(dfid, m.name, (dfd) => native().mkdirat(dfd, m.name, mode), mode) };
  }

  async mknod(m: Extract<Message, { op: 'Tmknod' }>): Promise<Reply<'Rmknod'>> {
    const dfid = this.fids.get(m.dfid);
    checkName(m.name);
    this.rofs();
    const type = m.mode & S_IFMT;
    if (type === S_IFCHR || type === S_IFBLK) throw new P9Error('EPERM', 'device nodes are not created on the host');
    if (type !== 0 && type !== S_IFREG && type !== S_IFIFO && type !== S_IFSOCK) throw new P9Error('EINVAL', 'unknown file type');
    const mode = (type === 0 ? S_IFREG : type) | (m.mode & 0o7777);
    return { qid: await this.made(dfid, m.name, (dfd) => native().mknodat(dfd, m.name, mode, 0, 0), m.mode & 0o7777) };
  }

  async symlink(m: Extract<Message, { op: 'Tsymlink' }>): Promise<Reply<'Rsymlink'>> {
    const dfid = this.fids.get(m.fid);
    checkName(m.name);
    this.rofs();
    if (m.symtgt.length === 0 || m.symtgt.includes(0)) throw new P9Error('EINVAL', 'symlink target empty or holds NUL');
    // The target is stored as given and never followed by the server.
    return { qid: await this.made(dfid, m.name, (dfd) => native().symlinkat(m.symtgt, dfd, m.name)) };
  }

  async link(m: Extract<Message, { op: 'Tlink' }>): Promise<Reply<'Rlink'>> {
    const dfid = this.fids.get(m.dfid);
    const fid = this.fids.get(m.fid);
    checkName(m.name);
    this.rofs();
    if (fid.kind === 'dir') throw new P9Error('EPERM', 'hard links to directories');
    const c = fsc();
    await this.withHandle(dfid, (dfd) => this.withHandle(fid, (fd) =>
      // The magic link names exactly the fid's inode; nothing is resolved by name.
      native().linkat(c.AT_FDCWD, procPath(fd), dfd, m.name, c.AT_SYMLINK_FOLLOW)));
    return {};
  }

  async readlink(m: Extract<Message, { op: 'Treadlink' }>): Promise<Reply<'Rreadlink'>> {
    const fid = this.fids.get(m.fid);
    if (fid.kind !== 'symlink') throw new P9Error('EINVAL', 'not a symlink');
    const target = await this.withHandle(fid, (fd) => native().readlinkat(fd, ''));
    return { target: new Uint8Array(target.buffer, target.byteOffset, target.byteLength) };
  }

  // ---- names ----

  /** After a rename of `from` to `to`, fids at or under `from` follow it. */
  private renamed(from: Uint8Array[], to: Uint8Array[]): void {
    const eq = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);
    for (const f of this.fids.values()) {
      if (f.path.length < from.length) continue;
      if (from.every((n, i) => eq(n, f.path[i]!))) f.path = [...to, ...f.path.slice(from.length)];
    }
  }

  async rename(m: Extract<Message, { op: 'Trename' }>): Promise<Reply<'Rrename'>> {
    const fid = this.fids.get(m.fid);
    const dfid = this.fids.get(m.dfid);
    checkName(m.name);
    this.rofs();
    if (fid.path.length === 0) throw new P9Error('EBUSY', 'the export root cannot be renamed');
    const from = fid.path.slice();
    const to = [...dfid.path, m.name];
    const pfd = await this.parentOf(fid);
    try {
      await this.withHandle(dfid, (dfd) => native().renameat2(pfd, from[from.length - 1]!, dfd, m.name, 0));
    } finally {
      await this.closeFd(pfd);
    }
    this.renamed(from, to);
    return {};
  }

  async renameat(m: Extract<Message, { op: 'Trenameat' }>): Promise<Reply<'Rrenameat'>> {
    const od = this.fids.get(m.olddirfid);
    const nd = this.fids.get(m.newdirfid);
    checkName(m.oldname);
    checkName(m.newname);
    this.rofs();
    await this.withHandle(od, (ofd) => this.withHandle(nd, (nfd) => native().renameat2(ofd, m.oldname, nfd, m.newname, 0)));
    this.renamed([...od.path, m.oldname], [...nd.path, m.newname]);
    return {};
  }

  async unlinkat(m: Extract<Message, { op: 'Tunlinkat' }>): Promise<Reply<'Runlinkat'>> {
    const dfid = this.fids.get(m.dirfid);
    checkName(m.name);
    this.rofs();
    const flags = (m.flags & P9_AT_REMOVEDIR) ? fsc().AT_REMOVEDIR : 0;
    await this.withHandle(dfid, (dfd) => native().unlinkat(dfd, m.name, flags));
    return {};
  }

  /** Tremove: unlink the fid's file; the fid is clunked whatever the outcome. */
  async remove(m: Extract<Message, { op: 'Tremove' }>): Promise<Reply<'Rremove'>> {
    const fid = this.fids.get(m.fid);
    try {
      this.rofs();
      if (fid.path.length === 0) throw new P9Error('EBUSY', 'the export root cannot be removed');
      const pfd = await this.parentOf(fid);
      try {
        await native().unlinkat(pfd, fid.path[fid.path.length - 1]!, fid.kind === 'dir' ? fsc().AT_REMOVEDIR : 0);
      } finally {
        await this.closeFd(pfd);
      }
    } finally {
      if (this.fids.has(m.fid)) this.fids.clunk(m.fid);
    }
    return {};
  }

  // ---- data ----

  private openFor(fidId: number, what: 'read' | 'write' | 'readdir'): { fid: Fid; fd: FdRef } {
    const fid = this.fids.get(fidId);
    const o = fid.open;
    if (o === undefined) throw new P9Error('EBADF', `fid ${fidId} is not open`);
    if (what === 'write' && !o.writable) throw new P9Error('EBADF', `fid ${fidId} is not open for writing`);
    if (what === 'read' && !o.readable) throw new P9Error('EBADF', `fid ${fidId} is not open for reading`);
    if (what === 'readdir' && fid.kind !== 'dir') throw new P9Error('ENOTDIR');
    if (what !== 'readdir' && fid.kind === 'dir') throw new P9Error('EISDIR');
    return { fid, fd: o.fd.acquire() };
  }

  /** Reads into `views` (guest RAM) at `offset`; returns the bytes read (fewer at EOF). */
  async read(fidId: number, offset: bigint, views: Uint8Array[]): Promise<number> {
    const { fd } = this.openFor(fidId, 'read');
    try {
      if (offset > BigInt(Number.MAX_SAFE_INTEGER)) return 0;
      if (views.length === 0) return 0;
      return (await pReadv(fd.fd, views, Number(offset))).bytesRead;
    } finally {
      fd.release();
    }
  }

  /** Writes `views` (guest RAM) at `offset`; returns the bytes written. */
  async write(fidId: number, offset: bigint, views: Uint8Array[]): Promise<number> {
    this.rofs();
    const { fd } = this.openFor(fidId, 'write');
    try {
      if (offset > BigInt(Number.MAX_SAFE_INTEGER)) throw new P9Error('EFBIG');
      if (views.length === 0) return 0;
      return (await pWritev(fd.fd, views, Number(offset))).bytesWritten;
    } finally {
      fd.release();
    }
  }

  /**
   * Treaddir: entries from host offset `offset` (a d_off cookie from an earlier reply, 0 at
   * the start), encoded as 9P dirents into at most `count` bytes.
   */
  async readdir(m: Extract<Message, { op: 'Treaddir' }>, count: number): Promise<Uint8Array> {
    const { fid, fd } = this.openFor(m.fid, 'readdir');
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
      const dirSt = this.dirQidBase(fid);
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
  private dirQidBase(fid: Fid): bigint {
    return fid.qidPath === undefined ? 0n : fid.qidPath & ~MASK48;
  }

  async fsync(m: Extract<Message, { op: 'Tfsync' }>): Promise<Reply<'Rfsync'>> {
    const fid = this.fids.get(m.fid);
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

  /**
   * Tlock: the guest's kernel already arbitrates its own processes' locks before it sends
   * this; the server takes no host lock (as QEMU's), so locks are not seen by host processes.
   */
  lock(m: Extract<Message, { op: 'Tlock' }>): Reply<'Rlock'> {
    this.fids.get(m.fid);
    if (m.lockType !== LOCK_TYPE.RDLCK && m.lockType !== LOCK_TYPE.WRLCK && m.lockType !== LOCK_TYPE.UNLCK) {
      return { status: LOCK_STATUS.ERROR };
    }
    return { status: LOCK_STATUS.SUCCESS };
  }

  getlock(m: Extract<Message, { op: 'Tgetlock' }>): Reply<'Rgetlock'> {
    this.fids.get(m.fid);
    return { lockType: LOCK_TYPE.UNLCK, start: m.start, length: m.length, procId: m.procId, clientId: m.clientId };
  }

  /** Extended attributes are not served: the guest gets EOPNOTSUPP, as from a filesystem without them. */
  xattrwalk(m: Extract<Message, { op: 'Txattrwalk' }>): never {
    this.fids.get(m.fid);
    throw new P9Error('EOPNOTSUPP', 'extended attributes are not supported');
  }

  xattrcreate(m: Extract<Message, { op: 'Txattrcreate' }>): never {
    this.fids.get(m.fid);
    this.rofs();
    throw new P9Error('EOPNOTSUPP', 'extended attributes are not supported');
  }
}
