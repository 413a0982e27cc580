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
import { native, type FsConstants } from '../../../native.js';
import { P9Error } from './errno.js';
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from './protocol.js';
import type { FileKind } from './fids.js';

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

/** O_PATH fd of `path` (names joined by `/`) beneath `dirfd`, never following a symlink. */
export function openPathBeneath(dirfd: number, path: Uint8Array | string, extraFlags = 0): Promise<number> {
  const c = fsc();
  return native().openat2(dirfd, path, c.O_PATH | c.O_NOFOLLOW | c.O_CLOEXEC | extraFlags, 0, resolveFlags());
}

/** Opens (or creates) `name` beneath `dirfd` for I/O, never following a symlink. */
export function openBeneath(dirfd: number, name: Uint8Array | string, flags: number, mode: number): Promise<number> {
  const c = fsc();
  return native().openat2(dirfd, name, flags | c.O_NOFOLLOW | c.O_CLOEXEC, mode, resolveFlags());
}

/** The magic link that names exactly the file an fd holds. */
export function procPath(fd: number): string { return `/proc/self/fd/${fd}`; }

/**
 * Opens the file an O_PATH fd holds for I/O. `kind` must be 'file' or 'dir' (checked here:
 * a symlink, FIFO, socket or device is never opened on the host).
 */
export function reopen(fd: number, kind: FileKind, flags: number): Promise<number> {
  const c = fsc();
  if (kind === 'dir') {
    return native().openat2(fd, '.', flags | c.O_DIRECTORY | c.O_CLOEXEC, 0, resolveFlags());
  }
  if (kind !== 'file') return Promise.reject(new P9Error(kind === 'symlink' ? 'ELOOP' : 'EOPNOTSUPP', `cannot open a ${kind}`));
  return native().openat2(c.AT_FDCWD, procPath(fd), flags | c.O_CLOEXEC, 0, 0);
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
export async function statFd(fd: number): Promise<HostStat> {
  const c = fsc();
  const s = await native().statx(fd, '', c.AT_EMPTY_PATH | c.AT_SYMLINK_NOFOLLOW, c.STATX_BASIC_STATS | c.STATX_BTIME);
  return {
    mode: Number(s[1]), nlink: s[2], uid: Number(s[3]), gid: Number(s[4]), rdevMajor: Number(s[5]), rdevMinor: Number(s[6]),
    ino: BigInt.asUintN(64, s[7]), size: s[8], blocks: s[9], blksize: s[10],
    atimeSec: s[11], atimeNsec: s[12], mtimeSec: s[13], mtimeNsec: s[14], ctimeSec: s[15], ctimeNsec: s[16],
    btimeSec: s[17], btimeNsec: s[18], hasBtime: (Number(s[0]) & c.STATX_BTIME) !== 0,
    devMajor: Number(s[19]), devMinor: Number(s[20]),
  };
}

export function kindOf(mode: number): FileKind {
  switch (mode & S_IFMT) {
    case S_IFDIR: return 'dir';
    case S_IFREG: return 'file';
    case S_IFLNK: return 'symlink';
    default: return 'other';
  }
}
