// A 9P session across a machine snapshot. Open host fds cannot be saved, so a fid is saved as
// what names it: its path of names from the export root, its kind, its last qid.path and, when
// open, the 9P2000.L flags it was opened with. A restore walks each path again beneath the
// export's root fd (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, as every walk: no symlink is
// followed, nothing outside the export is reached) and reopens open fids from the handle it
// got, with the same access mode and without the one-time O_TRUNC/O_CREAT/O_EXCL.
//
// A fid whose path no longer resolves, or resolves to another kind of file, or cannot be
// reopened (a read-only export now refuses its write mode) becomes stale: every request on it
// answers ESTALE and Tclunk forgets it. A fid is found again by name, not by inode: a file
// replaced under the same name between save and restore is the one the restored fid names.
// A file unlinked while the guest held it open is saved by its old path and comes back stale.
import { NodeKvmError } from '../../../errors.js';
import { P9Error } from './errno.js';
import { FdRef, type Fid, type FileKind, type StaleFid } from './fids.js';
import { hostFlags } from './file-io.js';
import { checkName, fsc, joinPath, kindOf, openPathBeneath, reopen, statFd } from './jail.js';
import { DOTL, NOFID } from './protocol.js';
import { qidOf, type OpsContext } from './session.js';

/** One fid as a snapshot keeps it. */
export interface SavedFid {
  id: number;
  /** Names from the export root, each base64 (names are bytes, not necessarily UTF-8). */
  path: string[];
  kind: FileKind;
  /** qid.path last reported for the file (hex), if any. */
  qidPath?: string;
  /** When open: the Tlopen/Tlcreate flags less O_TRUNC/O_CREAT/O_EXCL. */
  open?: { dotl: number; readable: boolean; writable: boolean };
  /** Saved from a fid that was already stale (it stays stale). */
  stale?: string;
}

/** The state of one 9P session (one export), as Virtio9p.saveState() stores it. */
export interface P9SessionState {
  /** msize agreed by Tversion. */
  msize: number;
  /** Host filesystems seen so far (`major:minor`) and their index in qid.path's top 16 bits. */
  devIndex: Array<[string, number]>;
  fids: SavedFid[];
}

const KINDS: readonly FileKind[] = ['dir', 'file', 'symlink', 'other'];
/** Flags a restore never passes on: they acted once, when the file was first opened. */
const ONE_TIME = DOTL.TRUNC | DOTL.CREATE | DOTL.EXCL;

const b64 = (u: Uint8Array): string => Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('base64');

/** Captures the session synchronously (paths and flags only: no host call). */
export function saveSession(ctx: OpsContext, msize: number): P9SessionState {
  const fids: SavedFid[] = [];
  const base = (f: Fid | StaleFid): SavedFid => ({
    id: f.id, path: f.path.map(b64), kind: f.kind, ...(f.qidPath !== undefined ? { qidPath: f.qidPath.toString(16) } : {}),
  });
  for (const f of ctx.fids.values()) {
    const s = base(f);
    if (f.open !== undefined) s.open = { dotl: f.open.dotl & ~ONE_TIME, readable: f.open.readable, writable: f.open.writable };
    fids.push(s);
  }
  for (const f of ctx.fids.stale()) fids.push({ ...base(f), stale: f.reason });
  return { msize, devIndex: [...ctx.devIndex], fids };
}

function corrupt(why: string): never {
  throw new NodeKvmError('ERR_SNAPSHOT_CORRUPT', `9p session state: ${why}`);
}

const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const isU32 = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffffffff;

/** A parsed fid: names checked as single components (the state file is not trusted blindly). */
export interface ParsedFid { id: number; path: Uint8Array[]; kind: FileKind; qidPath?: bigint; open?: SavedFid['open']; stale?: string }

/**
 * Checks a saved session's shape and every name in it; ERR_SNAPSHOT_CORRUPT when it is not
 * one this server wrote. `minMsize`/`maxMsize` bound the msize.
 */
export function parseSession(v: unknown, minMsize: number, maxMsize: number): { msize: number; devIndex: Array<[string, number]>; fids: ParsedFid[] } {
  if (!isObj(v)) corrupt('not an object');
  const { msize, devIndex, fids } = v;
  if (!isU32(msize) || msize < minMsize) corrupt(`msize ${String(msize)}`);
  if (!Array.isArray(devIndex) || !devIndex.every((e) => Array.isArray(e) && typeof e[0] === 'string' && isU32(e[1]) && e[1] <= 0xffff)) corrupt('devIndex');
  if (!Array.isArray(fids)) corrupt('fids is not an array');
  const seen = new Set<number>();
  const parsed = fids.map((f, i): ParsedFid => {
    if (!isObj(f)) corrupt(`fids[${i}] is not an object`);
    if (!isU32(f.id) || f.id === NOFID || seen.has(f.id)) corrupt(`fids[${i}].id`);
    seen.add(f.id);
    if (!KINDS.includes(f.kind as FileKind)) corrupt(`fids[${i}].kind`);
    if (!Array.isArray(f.path) || f.path.length > 4096 || !f.path.every((n) => typeof n === 'string')) corrupt(`fids[${i}].path`);
    const path = (f.path as string[]).map((n) => new Uint8Array(Buffer.from(n, 'base64')));
    try {
      for (const n of path) checkName(n);
    } catch {
      corrupt(`fids[${i}].path holds a name that is not one component`);
    }
    let qidPath: bigint | undefined;
    if (f.qidPath !== undefined) {
      if (typeof f.qidPath !== 'string' || !/^[0-9a-f]{1,16}$/.test(f.qidPath)) corrupt(`fids[${i}].qidPath`);
      qidPath = BigInt(`0x${f.qidPath}`);
    }
    let open: SavedFid['open'];
    if (f.open !== undefined) {
      const o = f.open;
      if (!isObj(o) || !isU32(o.dotl) || typeof o.readable !== 'boolean' || typeof o.writable !== 'boolean') corrupt(`fids[${i}].open`);
      open = { dotl: (o.dotl as number) & ~ONE_TIME, readable: o.readable as boolean, writable: o.writable as boolean };
    }
    if (f.stale !== undefined && typeof f.stale !== 'string') corrupt(`fids[${i}].stale`);
    return { id: f.id as number, path, kind: f.kind as FileKind, ...(qidPath !== undefined ? { qidPath } : {}), ...(open ? { open } : {}), ...(f.stale !== undefined ? { stale: f.stale as string } : {}) };
  });
  return { msize: msize as number, devIndex: devIndex as Array<[string, number]>, fids: parsed };
}

/** Reopens one fid beneath the export root; the reason it is stale otherwise. */
async function reopenFid(ctx: OpsContext, f: ParsedFid): Promise<Fid | string> {
  if (f.stale !== undefined) return f.stale;
  let fd: number;
  try {
    fd = await openPathBeneath(ctx.root.rootFd, joinPath(f.path), f.kind === 'dir' ? fsc().O_DIRECTORY : 0);
  } catch (e) {
    return `${(e as { code?: string }).code ?? 'error'} opening its path`;
  }
  const handle = new FdRef(fd);
  try {
    const st = await statFd(fd);
    const kind = kindOf(st.mode);
    if (kind !== f.kind) throw new P9Error('ESTALE', `it is now a ${kind}, was a ${f.kind}`);
    const fid: Fid = { id: f.id, path: f.path, handle, kind, qidPath: qidOf(ctx, st).path };
    if (f.open !== undefined) {
      const { flags, readable, writable } = hostFlags(ctx, f.open.dotl, kind);
      const ofd = await reopen(fd, kind, flags);
      fid.open = { fd: new FdRef(ofd), readable, writable, dotl: f.open.dotl };
    }
    return fid;
  } catch (e) {
    handle.release();
    return e instanceof P9Error && e.code === 'ESTALE' ? e.message : `${(e as { code?: string }).code ?? 'error'} reopening it`;
  }
}

/**
 * Replaces the session's fids with the saved ones, each reopened (or stale). Never throws for
 * a file that changed on the host: that fid is stale. Returns how many fids came back stale.
 */
export async function restoreSession(ctx: OpsContext, fids: readonly ParsedFid[], devIndex: Array<[string, number]>): Promise<number> {
  ctx.fids.clear();
  ctx.devIndex.clear();
  for (const [k, idx] of devIndex) ctx.devIndex.set(k, idx);
  // A bounded number of host calls at a time: a guest may hold thousands of fids.
  const results: Array<Fid | string> = [];
  for (let i = 0; i < fids.length; i += 64) results.push(...await Promise.all(fids.slice(i, i + 64).map((f) => reopenFid(ctx, f))));
  let stale = 0;
  results.forEach((r, i) => {
    const f = fids[i]!;
    if (typeof r === 'string') {
      stale++;
      ctx.fids.setStale({ id: f.id, path: f.path, kind: f.kind, ...(f.qidPath !== undefined ? { qidPath: f.qidPath } : {}), reason: r });
    } else {
      ctx.fids.reserve(r.id);
      ctx.fids.set(r);
    }
  });
  return stale;
}
