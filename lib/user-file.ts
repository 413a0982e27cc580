// The one place that opens files a user named (kernel, initrd, console log, pcap, snapshot,
// image paths). Only regular files are accepted: a FIFO would block the main thread on open or
// read (and with it every VM of the process), a device such as /dev/zero never ends, and a
// directory is a mistake. Each file is opened with O_NONBLOCK first (so opening a FIFO cannot
// hang) and checked with fstat on that fd (so nothing can be swapped in between the check and
// the read); every failure is an ERR_FILE that names the path and what to do about it.
import { closeSync, constants, fstatSync, ftruncateSync, openSync, readSync, statSync, type Stats } from 'node:fs';
import { dirname } from 'node:path';
import { InvalidArgumentError, NodeKvmError } from './errors.js';

/** A user-named file that cannot be used; `reason` is the errno name or 'not-regular'/'too-large'. */
export class UserFileError extends NodeKvmError {
  constructor(readonly path: string, readonly what: string, readonly reason: string, message: string, options?: { cause?: unknown }) {
    super('ERR_FILE', message, options);
  }
}

/** Largest file readUserFile returns by default (a Buffer's limit on Node 20 is 4 GiB). */
export const DEFAULT_MAX_READ = 2 ** 31 - 1;

type Mode = 'read' | 'write';

function kindOf(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

function checkPath(path: unknown, what: string): string {
  if (typeof path !== 'string' || path.length === 0) throw new InvalidArgumentError(`${what} must be a non-empty path, got ${JSON.stringify(path)}`, 'ERR_FILE');
  if (path.includes('\0')) throw new InvalidArgumentError(`${what} path ${JSON.stringify(path)} contains a NUL byte`, 'ERR_FILE');
  return path;
}

function openError(e: unknown, path: string, what: string, mode: Mode): UserFileError {
  const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
  const verb = mode === 'read' ? 'read' : 'write';
  const fix: Record<string, string> = {
    ENOENT: mode === 'read' ? 'does not exist: check the path' : `cannot be created: the directory ${dirname(path)} does not exist; create it or choose another path`,
    EACCES: `is not ${mode === 'read' ? 'readable' : 'writable'} by this user: check its mode and owner (and those of its directories)`,
    EPERM: `may not be ${mode === 'read' ? 'read' : 'written'} by this user: check its mode and owner`,
    EISDIR: 'is a directory: name a regular file',
    ENOTDIR: 'has a part that is not a directory: check the path',
    ELOOP: 'has too many symbolic links: check the path',
    ENAMETOOLONG: 'is too long',
    EROFS: 'is on a read-only file system: choose another path',
    ENXIO: 'is a FIFO or device with nobody on the other side: name a regular file',
    ETXTBSY: 'is busy: choose another path',
    ENOSPC: 'cannot be written: the file system is full',
    EMFILE: 'cannot be opened: this process has too many open files',
  };
  return new UserFileError(path, what, code, `cannot ${verb} ${what} ${path} (${code}): it ${fix[code] ?? "failed"}`, { cause: e });
}

function refuseKind(fd: number, st: Stats, path: string, what: string, mode: Mode): never {
  closeSync(fd);
  const kind = kindOf(st);
  const fix = st.isDirectory() ? 'name a regular file' : mode === 'read'
    ? 'node-kvm reads only regular files: copy it into one first'
    : 'node-kvm writes only regular files: name one (or leave the option out)';
  throw new UserFileError(path, what, 'not-regular', `cannot ${mode} ${what} ${path}: it is ${kind}; ${fix}`);
}

/**
 * Open a user-named regular file for reading; returns the fd and its size. The caller closes
 * the fd. O_NONBLOCK stays set: it changes nothing for a regular file.
 */
export function openUserFile(path: string, what: string): { fd: number; size: number } {
  checkPath(path, what);
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    throw openError(e, path, what, 'read');
  }
  let st: Stats;
  try {
    st = fstatSync(fd);
  } catch (e) {
    closeSync(fd);
    throw openError(e, path, what, 'read');
  }
  if (!st.isFile()) refuseKind(fd, st, path, what, 'read');
  return { fd, size: st.size };
}

/** Read a whole user-named regular file (at most `maxBytes`, else ERR_FILE 'too-large'). */
export function readUserFile(path: string, what: string, opts: { maxBytes?: number } = {}): Buffer {
  const max = opts.maxBytes ?? DEFAULT_MAX_READ;
  const { fd, size } = openUserFile(path, what);
  try {
    const tooLarge = (n: number): UserFileError => new UserFileError(path, what, 'too-large',
      `cannot read ${what} ${path}: it is ${n} bytes, more than the ${max} allowed; name a smaller file`);
    if (size > max) throw tooLarge(size);
    // Read to EOF rather than trusting st_size (it can change, and some files report 0).
    const chunks: Buffer[] = [];
    let total = 0;
    let buf = Buffer.allocUnsafe(Math.max(1, Math.min(size + 1, max + 1)));
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (e) {
        throw openError(e, path, what, 'read');
      }
      if (n === 0) break;
      total += n;
      if (total > max) throw tooLarge(total);
      chunks.push(buf.subarray(0, n));
      if (n === buf.length) buf = Buffer.allocUnsafe(Math.min(1 << 20, max + 1 - total));
      else buf = buf.subarray(n);
    }
    return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
  } finally {
    closeSync(fd);
  }
}

/**
 * Create (or truncate) a user-named file for writing and return its fd. An existing path
 * that is not a regular file (a FIFO, /dev/…, a directory) is refused before anything is
 * written or truncated. The caller closes the fd.
 */
export function createUserFile(path: string, what: string, mode = 0o644): number {
  checkPath(path, what);
  let fd: number;
  try {
    // Without O_TRUNC: a regular file is truncated only after fstat said it is one.
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_NONBLOCK | constants.O_NOCTTY, mode);
  } catch (e) {
    throw openError(e, path, what, 'write');
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) refuseKind(fd, st, path, what, 'write');
    ftruncateSync(fd, 0);
  } catch (e) {
    if (e instanceof UserFileError) throw e;
    closeSync(fd);
    throw openError(e, path, what, 'write');
  }
  return fd;
}

/**
 * For writers that create a temporary file and rename it over `path`: refuse a `path` that
 * exists and is not a regular file (rename would replace a FIFO or device node, or fail on a
 * directory after all the writing).
 */
export function checkReplaceable(path: string, what: string): void {
  checkPath(path, what);
  let st: Stats;
  try {
    st = statSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw openError(e, path, what, 'write');
  }
  if (!st.isFile()) {
    throw new UserFileError(path, what, 'not-regular', `cannot write ${what} ${path}: it is ${kindOf(st)}; name a regular file`);
  }
}
