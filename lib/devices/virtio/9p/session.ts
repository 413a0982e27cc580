// The base every 9P2000.L file operation stands on: the context of one export (its root fd,
// fid table, qid numbering and the process's umask), the helpers the operation modules share
// (read-only check, qids, holding a fid's handle, a fid's parent, closing a scratch fd), and
// the operations that make and drop fids: attach, walk and clunk. The other modules
// (file-io.ts, namespace.ts, metadata.ts) take an OpsContext from here; ops.ts holds it.
import { close, readFileSync } from 'node:fs';
import { P9Error } from './errno.js';
import { FdRef, FidTable, type Fid, type FileKind } from './fids.js';
import { checkName, fsc, isDot, isDotDot, joinPath, kindOf, openPathBeneath, pooledIo, statFd, type HostIo, type HostStat } from './jail.js';
import { MAXWELEM, NOFID, QTDIR, QTFILE, QTSYMLINK, type Message, type Qid } from './protocol.js';

/** The decoded T-message named `N`. */
export type Request<N extends Message['op']> = Extract<Message, { op: N }>;
/** The fields of the R-message named `N` (the server adds op and tag). */
export type Reply<N extends Message['op']> = Omit<Extract<Message, { op: N }>, 'op' | 'tag'>;

/** One export served to one guest session. */
export interface ExportRoot {
  /** O_PATH fd of the exported directory, held for the server's life. */
  rootFd: number;
  readonly: boolean;
  /** How its host calls run (jail.ts); every call on the threadpool when not given. */
  io?: HostIo;
}

/** What every operation works on. */
export interface OpsContext {
  readonly root: ExportRoot & { io: HostIo };
  readonly fids: FidTable;
  /** Host filesystem (`major:minor`) to its index in the top 16 bits of qid.path. */
  readonly devIndex: Map<string, number>;
  /** The process's umask (processUmask). */
  readonly umask: number;
}

/** The process's umask (read once): a create whose mode it would narrow gets an explicit chmod. */
function processUmask(): number {
  try {
    const m = /^Umask:\s*([0-7]+)$/m.exec(readFileSync('/proc/self/status', 'latin1'));
    if (m) return parseInt(m[1]!, 8);
  } catch { /* no /proc: assume the usual */ }
  return 0o022;
}

export function createContext(root: ExportRoot, maxFids?: number): OpsContext {
  return { root: { ...root, io: root.io ?? pooledIo() }, fids: new FidTable(maxFids), devIndex: new Map(), umask: processUmask() };
}

/** The inode bits of qid.path (the rest is the filesystem's index). */
export const MASK48 = (1n << 48n) - 1n;

export function rofs(ctx: OpsContext): void {
  if (ctx.root.readonly) throw new P9Error('EROFS', 'read-only export');
}

/**
 * qid.path: the inode number, with the host filesystem's index in the top 16 bits so files
 * of two filesystems under one export (mount points) never share a qid.
 */
export function qidOf(ctx: OpsContext, st: HostStat): Qid {
  const key = `${st.devMajor}:${st.devMinor}`;
  let idx = ctx.devIndex.get(key);
  if (idx === undefined) {
    idx = ctx.devIndex.size & 0xffff;
    ctx.devIndex.set(key, idx);
  }
  const k = kindOf(st.mode);
  const type = k === 'dir' ? QTDIR : k === 'symlink' ? QTSYMLINK : QTFILE;
  return { type, version: 0, path: (BigInt(idx) << 48n) | (st.ino & MASK48) };
}

/** Runs `f` with the fid's handle held, so a clunk meanwhile cannot close it. */
export async function withHandle<T>(fid: Fid, f: (fd: number) => Promise<T>): Promise<T> {
  const h = fid.handle.acquire();
  try {
    return await f(h.fd);
  } finally {
    h.release();
  }
}

/** O_PATH fd of the fid's parent directory (the root for the root itself). */
export function parentOf(ctx: OpsContext, fid: Fid): Promise<number> {
  return openPathBeneath(ctx.root.rootFd, joinPath(fid.path.slice(0, -1)), fsc().O_DIRECTORY, ctx.root.io);
}

/** Closes an fd this operation opened and no fid holds. */
export async function closeFd(fd: number): Promise<void> {
  await new Promise<void>((r) => close(fd, () => r()));
}

export async function attach(ctx: OpsContext, m: Request<'Tattach'>): Promise<Reply<'Rattach'>> {
  if (m.afid !== NOFID) throw new P9Error('EINVAL', 'authentication is not used');
  ctx.fids.reserve(m.fid);
  try {
    const fd = await openPathBeneath(ctx.root.rootFd, '.', fsc().O_DIRECTORY, ctx.root.io);
    let st: HostStat;
    try {
      st = await statFd(fd, ctx.root.io);
    } catch (e) {
      await closeFd(fd);
      throw e;
    }
    const qid = qidOf(ctx, st);
    ctx.fids.set({ id: m.fid, path: [], handle: new FdRef(fd, ctx.root.io), kind: 'dir', qidPath: qid.path });
    return { qid };
  } finally {
    ctx.fids.unreserve(m.fid);
  }
}

export async function walk(ctx: OpsContext, m: Request<'Twalk'>): Promise<Reply<'Rwalk'>> {
  const names = m.wnames;
  if (names.length > MAXWELEM) throw new P9Error('EINVAL', `walk of ${names.length} names (at most ${MAXWELEM})`);
  for (const n of names) checkName(n, true);
  const fid = ctx.fids.get(m.fid);
  const inPlace = m.newfid === m.fid;
  if (!inPlace) ctx.fids.reserve(m.newfid);
  let cur = fid.handle.acquire();
  let path = fid.path.slice();
  let kind: FileKind = fid.kind;
  const qids: Qid[] = [];
  try {
    for (const name of names) {
      let next: number;
      if (isDot(name)) {
        next = await openPathBeneath(cur.fd, '.', 0, ctx.root.io);
      } else if (isDotDot(name)) {
        // Never above the export's root; resolved from the root by the names walked so far.
        const up = path.slice(0, -1);
        next = await openPathBeneath(ctx.root.rootFd, joinPath(up), 0, ctx.root.io);
        path = up;
      } else {
        if (kind !== 'dir') throw new P9Error('ENOTDIR');
        next = await openPathBeneath(cur.fd, name, 0, ctx.root.io);
        path.push(name);
      }
      const ref = new FdRef(next, ctx.root.io);
      cur.release();
      cur = ref;
      let st: HostStat;
      try {
        st = await statFd(next, ctx.root.io);
      } catch (e) {
        if (qids.length === 0) throw e;
        break;
      }
      kind = kindOf(st.mode);
      qids.push(qidOf(ctx, st));
    }
  } catch (e) {
    cur.release();
    if (!inPlace) ctx.fids.unreserve(m.newfid);
    if (qids.length === 0) throw e;
    return { wqids: qids };
  }
  if (qids.length < names.length) {
    cur.release();
    if (!inPlace) ctx.fids.unreserve(m.newfid);
    return { wqids: qids };
  }
  if (inPlace && !ctx.fids.has(m.fid)) {
    // Clunked while the walk ran: nothing to replace.
    cur.release();
    throw new P9Error('EBADF', `fid ${m.fid} clunked during walk`);
  }
  ctx.fids.set({ id: m.newfid, path, handle: cur, kind, qidPath: qids.length > 0 ? qids[qids.length - 1]!.path : fid.qidPath });
  return { wqids: qids };
}

export function clunk(ctx: OpsContext, fidId: number): void {
  ctx.fids.clunk(fidId);
}
