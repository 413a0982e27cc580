// The export as a jail. Every host path the server touches is resolved by the kernel beneath
// a directory fd that is already inside the export, with openat2(RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS): no `..` above that fd, no symlink followed anywhere in the path (a
// final symlink is opened as itself with O_PATH|O_NOFOLLOW), no magic link. A guest rename
// that swaps a component for a symlink between a walk and an open therefore gets ELOOP or
// ENOENT, never a file outside (the kernel checks the whole walk at open time, not us before
// it). Names from the guest are single components: a `/` or NUL in one is refused before it
// reaches a syscall.
//
// An O_PATH fd cannot be read or written; a file is opened for I/O by reopening the O_PATH fd
// through /proc/self/fd/N, which names exactly the inode the fd holds (no path is resolved
// again), and only for regular files and directories (never a symlink or a FIFO/socket/device).
import { close, closeSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { KvmError } from '../../../errors.js';
import { native, type FsConstants } from '../../../native.js';
import { P9Error } from './errno.js';
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from './protocol.js';

let C: FsConstants | undefined;
export function fsc(): FsConstants {
  C ??= native().fsConstants;
  return C;
}

/** RESOLVE_* for every open beneath a directory fd. */
export function resolveFlags(): number {
  const c = fsc();
  return c.RESOLVE_BENEATH | c.RESOLVE_NO_SYMLINKS | c.RESOLVE_NO_MAGICLINKS;
}

const SLASH = 0x2f;
const DOT = 0x2e;
/** Longest name a Linux filesystem takes (NAME_MAX). */
export const NAME_MAX = 255;

export function isDot(name: Uint8Array): boolean { return name.length === 1 && name[0] === DOT; }
export function isDotDot(name: Uint8Array): boolean { return name.length === 2 && name[0] === DOT && name[1] === DOT; }

/**
 * Checks a single path component from the guest: not empty, no `/`, no NUL, not longer than
 * NAME_MAX. `.` and `..` pass only when `dots` is set (walk handles them itself).
 */
export function checkName(name: Uint8Array, dots = false): void {
  if (name.length === 0) throw new P9Error('EINVAL', 'empty name');
  if (name.length > NAME_MAX) throw new P9Error('ENAMETOOLONG', `name of ${name.length} bytes`);
  if (name.includes(SLASH) || name.includes(0)) throw new P9Error('EINVAL', 'name holds / or NUL');
  if (!dots && (isDot(name) || isDotDot(name))) throw new P9Error('EINVAL', 'name is . or ..');
}

/** Joins checked names into a relative path ('.' for none). */
export function joinPath(names: readonly Uint8Array[]): Uint8Array {
  if (names.length === 0) return new Uint8Array([DOT]);
  const total = names.reduce((n, s) => n + s.length, 0) + names.length - 1;
  const out = new Uint8Array(total);
  let at = 0;
  names.forEach((s, i) => {
    if (i > 0) out[at++] = SLASH;
    out.set(s, at);
    at += s.length;
  });
  return out;
}

/**
 * How an export's host calls run. Every call may go to the libuv threadpool, but each trip
 * costs the guest a second event-loop turn (the vCPU leaves KVM_RUN again for the answer), so
 * calls that cannot wait for a disk or a network run on the main thread instead:
 *   - an open whose path the dcache already holds (RESOLVE_CACHED; else EAGAIN, then the pool);
 *   - a read the page cache can answer whole or in part (RWF_NOWAIT; likewise);
 *   - on a local filesystem (`local`), a statx, a reopen or a close of an fd the server holds:
 *     its inode is in memory, so none of them reads a device (a network filesystem may ask
 *     its server for any of them, so there they go to the pool).
 */
export interface HostIo {
  /** Whether any call runs inline (false: all on the threadpool). */
  readonly inline: boolean;
  /** The export is on a local filesystem (LOCAL_FS_TYPES). */
  readonly local: boolean;
  /** Calls answered on the main thread, and those sent to the threadpool. */
  readonly calls: { inline: number; pooled: number };
  /** The filesystem refused an RWF_NOWAIT write once: writes go to the threadpool. */
  readonly noWaitWrites: { refused: boolean };
}

/** A HostIo that sends every call to the threadpool. */
export function pooledIo(): HostIo {
  return { inline: false, local: false, calls: { inline: 0, pooled: 0 }, noWaitWrites: { refused: false } };
}

/** f_type of filesystems whose inodes live in this machine's memory or disks (linux/magic.h). */
const LOCAL_FS_TYPES = new Set([
  0xef53, // ext2/3/4
  0x58465342, // xfs
  0x9123683e, // btrfs
  0xf2f52010, // f2fs
  0x01021994, // tmpfs
  0x858458f6, // ramfs
  0x794c7630, // overlayfs (its upper and lower layers are local in the usual container setups)
]);

/** The HostIo for an export whose root fd is `rootFd`. */
export async function hostIoFor(rootFd: number): Promise<HostIo> {
  const st = await native().fstatfs(rootFd);
  return { inline: true, local: LOCAL_FS_TYPES.has(Number(st[0])), calls: { inline: 0, pooled: 0 }, noWaitWrites: { refused: false } };
}

const ERRNO_NAMES = new Map<number, string>(Object.entries(osConstants.errno).map(([k, v]) => [v, k]));
const EAGAIN = osConstants.errno.EAGAIN;
const EINVAL = osConstants.errno.EINVAL;

/** The rejection the threadpool call would have given for `-errno`. */
function failed(negErrno: number, syscall: string): Promise<never> {
  const e = -negErrno;
  return Promise.reject(new KvmError(ERRNO_NAMES.get(e) ?? 'EIO', e, syscall));
}

/**
 * openat2 beneath a directory: from the dcache on the main thread when it can answer
 * (EINVAL: a kernel older than RESOLVE_CACHED, 5.12), else on the threadpool.
 */
function openat2Beneath(io: HostIo, dirfd: number, path: Uint8Array | string, flags: number, mode: number): Promise<number> {
  const c = fsc();
  if (io.inline && (flags & (c.O_CREAT | c.O_TRUNC)) === 0) {
    const r = native().openat2Now(dirfd, path, flags, mode, resolveFlags() | c.RESOLVE_CACHED);
    if (r >= 0 || (r !== -EAGAIN && r !== -EINVAL)) {
      io.calls.inline++;
      return r >= 0 ? Promise.resolve(r) : failed(r, 'openat2');
    }
  }
  io.calls.pooled++;
  return native().openat2(dirfd, path, flags, mode, resolveFlags());
}

/** O_PATH fd of `path` (names joined by `/`) beneath `dirfd`, never following a symlink. */
export function openPathBeneath(dirfd: number, path: Uint8Array | string, extraFlags = 0, io: HostIo = pooledIo()): Promise<number> {
  const c = fsc();
  return openat2Beneath(io, dirfd, path, c.O_PATH | c.O_NOFOLLOW | c.O_CLOEXEC | extraFlags, 0);
}

/** Opens (or creates) `name` beneath `dirfd` for I/O, never following a symlink. */
export function openBeneath(dirfd: number, name: Uint8Array | string, flags: number, mode: number, io: HostIo = pooledIo()): Promise<number> {
  const c = fsc();
  return openat2Beneath(io, dirfd, name, flags | c.O_NOFOLLOW | c.O_CLOEXEC, mode);
}

/** Closes an fd the server held: at once on a local filesystem, else on the threadpool. */
export function closeHeld(fd: number, io: HostIo): void {
  if (io.local) {
    io.calls.inline++;
    try {
      closeSync(fd);
    } catch { /* a close error leaves nothing to undo */ }
    return;
  }
  io.calls.pooled++;
  close(fd, () => { /* likewise */ });
}

/** The magic link that names exactly the file an fd holds. */
export function procPath(fd: number): string { return `/proc/self/fd/${fd}`; }

/**
 * Opens the file an O_PATH fd holds for I/O. `kind` must be 'file' or 'dir' (checked here:
 * a symlink, FIFO, socket or device is never opened on the host).
 */
export function reopen(fd: number, kind: FileKind, flags: number, io: HostIo = pooledIo()): Promise<number> {
  const c = fsc();
  if (kind === 'dir') return openHeld(io, fd, '.', flags | c.O_DIRECTORY | c.O_CLOEXEC, resolveFlags());
  if (kind !== 'file') return Promise.reject(new P9Error(kind === 'symlink' ? 'ELOOP' : 'EOPNOTSUPP', `cannot open a ${kind}`));
  return openHeld(io, c.AT_FDCWD, procPath(fd), flags | c.O_CLOEXEC, 0);
}

/**
 * An open of an inode the server holds already: on the main thread on a local filesystem
 * (RESOLVE_CACHED is no help here: procfs revalidates the magic link, so it never is cached),
 * except with O_TRUNC, which may have blocks to free; else on the threadpool.
 */
function openHeld(io: HostIo, dirfd: number, path: string, flags: number, resolve: number): Promise<number> {
  if (io.local && (flags & fsc().O_TRUNC) === 0) {
    io.calls.inline++;
    const r = native().openat2Now(dirfd, path, flags, 0, resolve);
    return r >= 0 ? Promise.resolve(r) : failed(r, 'openat2');
  }
  io.calls.pooled++;
  return native().openat2(dirfd, path, flags, 0, resolve);
}

/** What the server needs of a statx. */
export interface HostStat {
  mode: number;
  nlink: bigint;
  uid: number;
  gid: number;
  rdevMajor: number;
  rdevMinor: number;
  ino: bigint;
  size: bigint;
  blocks: bigint;
  blksize: bigint;
  atimeSec: bigint; atimeNsec: bigint;
  mtimeSec: bigint; mtimeNsec: bigint;
  ctimeSec: bigint; ctimeNsec: bigint;
  btimeSec: bigint; btimeNsec: bigint;
  hasBtime: boolean;
  devMajor: number;
  devMinor: number;
}

/** statx of the file an fd holds (itself, never a symlink's target). */
export async function statFd(fd: number, io: HostIo = pooledIo()): Promise<HostStat> {
  const c = fsc();
  const flags = c.AT_EMPTY_PATH | c.AT_SYMLINK_NOFOLLOW;
  const mask = c.STATX_BASIC_STATS | c.STATX_BTIME;
  let s: BigInt64Array;
  if (io.local) {
    io.calls.inline++;
    s = new BigInt64Array(21);
    const r = native().statxNow(fd, '', flags, mask, s);
    if (r < 0) return failed(r, 'statx');
  } else {
    io.calls.pooled++;
    s = await native().statx(fd, '', flags, mask);
  }
  return {
    mode: Number(s[1]), nlink: s[2], uid: Number(s[3]), gid: Number(s[4]), rdevMajor: Number(s[5]), rdevMinor: Number(s[6]),
    ino: BigInt.asUintN(64, s[7]), size: s[8], blocks: s[9], blksize: s[10],
    atimeSec: s[11], atimeNsec: s[12], mtimeSec: s[13], mtimeNsec: s[14], ctimeSec: s[15], ctimeNsec: s[16],
    btimeSec: s[17], btimeNsec: s[18], hasBtime: (Number(s[0]) & c.STATX_BTIME) !== 0,
    devMajor: Number(s[19]), devMinor: Number(s[20]),
  };
}

/** What a fid names, as far as the server treats them differently. */
export type FileKind = 'dir' | 'file' | 'symlink' | 'other';

export function kindOf(mode: number): FileKind {
  switch (mode & S_IFMT) {
    case S_IFDIR: return 'dir';
    case S_IFREG: return 'file';
    case S_IFLNK: return 'symlink';
    default: return 'other';
  }
}
