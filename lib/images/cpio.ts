// A writer for the "newc" cpio format (the one the Linux kernel unpacks as an initramfs).
// Writing it ourselves means device nodes (/dev/console) need no root and no mknod, and the
// archive is byte-for-byte reproducible (fixed mtimes, uid/gid 0, sorted by the caller).
//
// Layout per entry: a 110-byte ASCII header ("070701" + 13 fields of 8 hex digits), the NUL-
// terminated name, padding to 4 bytes, the data, padding to 4 bytes. The archive ends with
// the entry "TRAILER!!!".
import { gzipSync } from 'node:zlib';
import { InvalidArgumentError } from '../errors.js';

export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;

export interface CpioEntry {
  name: string; // relative, no leading "/" ("bin/busybox")
  mode: number; // full st_mode (type bits | permissions)
  data?: Uint8Array; // file contents or symlink target
  rdevMajor?: number;
  rdevMinor?: number;
  mtime?: number; // seconds; 0 keeps archives reproducible
}

const HEADER_LEN = 110;
const pad4 = (n: number): number => (4 - (n % 4)) % 4;
const hex8 = (v: number): string => (v >>> 0).toString(16).padStart(8, '0');

export class CpioWriter {
  private readonly chunks: Buffer[] = [];
  private ino = 1;
  private readonly names = new Set<string>();
  private finished = false;

  add(entry: CpioEntry): void {
    if (this.finished) throw new InvalidArgumentError('cpio archive already finished');
    const name = entry.name.replace(/^\/+/, '');
    if (name === '' || name.split('/').includes('..')) {
      throw new InvalidArgumentError(`cpio entry name ${JSON.stringify(entry.name)} must be a relative path without ".."`);
    }
    if (this.names.has(name)) throw new InvalidArgumentError(`cpio entry ${name} added twice`);
    this.names.add(name);
    this.push(name, entry, this.ino++);
  }

  dir(name: string, perm = 0o755): void {
    this.add({ name, mode: S_IFDIR | perm });
  }
  file(name: string, data: Uint8Array, perm = 0o644): void {
    this.add({ name, mode: S_IFREG | perm, data });
  }
  symlink(name: string, target: string): void {
    this.add({ name, mode: S_IFLNK | 0o777, data: Buffer.from(target) });
  }
  charDevice(name: string, major: number, minor: number, perm = 0o600): void {
    this.add({ name, mode: S_IFCHR | perm, rdevMajor: major, rdevMinor: minor });
  }
  has(name: string): boolean {
    return this.names.has(name.replace(/^\/+/, ''));
  }

  /** The complete archive, uncompressed. */
  finish(): Buffer {
    if (!this.finished) {
      this.push('TRAILER!!!', { name: 'TRAILER!!!', mode: 0 }, 0);
      this.finished = true;
    }
    return Buffer.concat(this.chunks);
  }

  /** The archive gzip-compressed, as the kernel's initramfs unpacker accepts it. */
  finishGzip(level = 6): Buffer {
    return gzipSync(this.finish(), { level });
  }

  private push(name: string, e: CpioEntry, ino: number): void {
    const data = e.data ?? new Uint8Array(0);
    const isDir = (e.mode & S_IFMT) === S_IFDIR;
    const nameBytes = Buffer.from(name + '\0');
    const fields = [
      ino, e.mode, 0 /* uid */, 0 /* gid */, isDir ? 2 : 1 /* nlink */, e.mtime ?? 0,
      data.length, 0 /* devmajor */, 0 /* devminor */, e.rdevMajor ?? 0, e.rdevMinor ?? 0,
      nameBytes.length, 0 /* check: unused in newc */,
    ];
    const header = Buffer.from('070701' + fields.map(hex8).join(''), 'ascii');
    this.chunks.push(header, nameBytes, Buffer.alloc(pad4(HEADER_LEN + nameBytes.length)));
    if (data.length > 0) this.chunks.push(Buffer.from(data.buffer, data.byteOffset, data.length), Buffer.alloc(pad4(data.length)));
  }
}
