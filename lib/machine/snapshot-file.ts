// The snapshot file format. One file, read back either whole or with its memory sections
// mapped privately (copy-on-write), so sections start on page boundaries.
//
//   offset  size  field
//        0     8  magic "NKVMSNAP"
//        8     4  format version (u32 LE)
//       12     4  header length in bytes (u32 LE)
//       16    32  sha256 of the header bytes
//       48    16  node-kvm version that wrote the file (ASCII, NUL-padded)
//       64     n  header: UTF-8 JSON { nodeKvmVersion, fileSize, meta, sections[] }
//   page-aligned  sections, each { name, kind, offset, length, sha256 } in the header
//
// Every section carries its own sha256; `verify: 'state'` checks all but the memory sections
// (hashing gigabytes of RAM is the slow part of a load), `'full'` checks everything.
import { closeSync, fstatSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { checkReplaceable, createUserFile, openUserFile } from '../user-file.js';
import { createHash } from 'node:crypto';
import { NodeKvmError } from '../errors.js';

export const SNAPSHOT_MAGIC = 'NKVMSNAP';
/** The snapshot file format this version writes and reads. */
export const SNAPSHOT_FORMAT_VERSION = 1;
export const SNAPSHOT_PAGE_SIZE = 4096;
/** The node-kvm version written into new files (package.json's). */
export const NODE_KVM_VERSION = '0.1.0';

const PREAMBLE = 64;
const OFF_VERSION = 8;
const OFF_HEADER_LEN = 12;
const OFF_HEADER_SHA = 16;
const OFF_WRITER = 48;
const WRITER_LEN = 16;
const MAX_HEADER = 64 * 1024 * 1024;
const CHUNK = 4 * 1024 * 1024;

export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };

export type SectionKind = 'state' | 'memory';

export interface SectionInput {
  name: string;
  kind: SectionKind;
  /** The section's bytes, possibly in several pieces (written back to back). */
  data: Uint8Array | readonly Uint8Array[];
}

export interface SectionEntry {
  name: string;
  kind: SectionKind;
  offset: number;
  length: number;
  sha256: string;
}

export interface SnapshotHeader {
  nodeKvmVersion: string;
  fileSize: number;
  meta: JsonValue;
  sections: SectionEntry[];
}

/** A refused snapshot file: `ERR_SNAPSHOT_CORRUPT` or `ERR_SNAPSHOT_VERSION`. */
export class SnapshotFileError extends NodeKvmError {
  /** The snapshot file. */
  readonly path: string;
  constructor(code: 'ERR_SNAPSHOT_CORRUPT' | 'ERR_SNAPSHOT_VERSION', path: string, detail: string) {
    super(code, `snapshot ${path}: ${detail}`);
    this.path = path;
    this.name = 'SnapshotFileError';
  }
}

const alignUp = (n: number): number => Math.ceil(n / SNAPSHOT_PAGE_SIZE) * SNAPSHOT_PAGE_SIZE;
const pieces = (d: Uint8Array | readonly Uint8Array[]): readonly Uint8Array[] => (d instanceof Uint8Array ? [d] : d);

function writeAll(fd: number, bytes: Uint8Array, position: number): void {
  let done = 0;
  while (done < bytes.length) {
    done += writeSync(fd, bytes, done, Math.min(bytes.length - done, 1 << 30), position + done);
  }
}

/**
 * Write a snapshot file atomically (a temporary file renamed over `path`). Returns the header
 * that was written.
 */
export function writeSnapshotFile(path: string, meta: JsonValue, sections: readonly SectionInput[]): SnapshotHeader {
  const names = new Set<string>();
  const entries: SectionEntry[] = sections.map((s) => {
    if (names.has(s.name)) throw new NodeKvmError('ERR_INVALID_ARG', `duplicate snapshot section ${s.name}`);
    names.add(s.name);
    const h = createHash('sha256');
    let length = 0;
    for (const p of pieces(s.data)) {
      for (let o = 0; o < p.length; o += CHUNK) h.update(p.subarray(o, Math.min(p.length, o + CHUNK)));
      length += p.length;
    }
    return { name: s.name, kind: s.kind, offset: 0, length, sha256: h.digest('hex') };
  });
  // The header's size depends on the offsets it holds: settle them with a fixed-point pass.
  let headerBytes = new Uint8Array(0);
  let fileSize = 0;
  for (let pass = 0; pass < 4; pass++) {
    let at = alignUp(PREAMBLE + headerBytes.length);
    for (const e of entries) {
      e.offset = at;
      at = alignUp(at + e.length);
    }
    fileSize = entries.length === 0 ? PREAMBLE + headerBytes.length : entries[entries.length - 1]!.offset + entries[entries.length - 1]!.length;
    const header: SnapshotHeader = { nodeKvmVersion: NODE_KVM_VERSION, fileSize, meta, sections: entries };
    const next = new TextEncoder().encode(JSON.stringify(header));
    if (next.length === headerBytes.length) break;
    headerBytes = next;
  }
  const pre = new Uint8Array(PREAMBLE);
  const dv = new DataView(pre.buffer);
  pre.set(new TextEncoder().encode(SNAPSHOT_MAGIC), 0);
  dv.setUint32(OFF_VERSION, SNAPSHOT_FORMAT_VERSION, true);
  dv.setUint32(OFF_HEADER_LEN, headerBytes.length, true);
  pre.set(createHash('sha256').update(headerBytes).digest(), OFF_HEADER_SHA);
  pre.set(new TextEncoder().encode(NODE_KVM_VERSION).subarray(0, WRITER_LEN), OFF_WRITER);

  checkReplaceable(path, 'snapshot');
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = createUserFile(tmp, 'snapshot', 0o600);
  try {
    writeAll(fd, pre, 0);
    writeAll(fd, headerBytes, PREAMBLE);
    sections.forEach((s, i) => {
      let at = entries[i]!.offset;
      for (const p of pieces(s.data)) {
        writeAll(fd, p, at);
        at += p.length;
      }
    });
    closeSync(fd);
  } catch (e) {
    closeSync(fd);
    unlinkSync(tmp);
    throw e;
  }
  renameSync(tmp, path);
  return JSON.parse(new TextDecoder().decode(headerBytes)) as SnapshotHeader;
}

/** How much loadSnapshot() checks: 'full' hashes every section, 'state' skips hashing RAM. */
export type VerifyLevel = 'full' | 'state';

/** An open, validated snapshot file. Sections are read on demand; close() releases the fd. */
export class SnapshotFile {
  private constructor(readonly path: string, private fdValue: number, readonly header: SnapshotHeader, readonly formatVersion: number) {}

  /**
   * Open and validate: magic, format version, header checksum, size (truncation), section
   * bounds and alignment, and the section checksums (`verify`: 'full' = all, 'state' = all but
   * memory). Refuses with SnapshotFileError.
   */
  static open(path: string, opts: { verify?: VerifyLevel } = {}): SnapshotFile {
    const verify = opts.verify ?? 'full';
    const { fd } = openUserFile(path, 'snapshot');
    try {
      const f = SnapshotFile.validate(path, fd, verify);
      return new SnapshotFile(path, fd, f.header, f.version);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  private static validate(path: string, fd: number, verify: VerifyLevel): { header: SnapshotHeader; version: number } {
    const corrupt = (d: string): never => {
      throw new SnapshotFileError('ERR_SNAPSHOT_CORRUPT', path, d);
    };
    const size = fstatSync(fd).size;
    const pre = new Uint8Array(PREAMBLE);
    if (readSync(fd, pre, 0, PREAMBLE, 0) !== PREAMBLE) corrupt(`truncated: ${size} bytes is shorter than the ${PREAMBLE}-byte preamble`);
    if (new TextDecoder().decode(pre.subarray(0, 8)) !== SNAPSHOT_MAGIC) corrupt('bad magic: not a node-kvm snapshot');
    const dv = new DataView(pre.buffer);
    const version = dv.getUint32(OFF_VERSION, true);
    const writer = new TextDecoder().decode(pre.subarray(OFF_WRITER, OFF_WRITER + WRITER_LEN)).replace(/\0+$/, '');
    if (version !== SNAPSHOT_FORMAT_VERSION) {
      throw new SnapshotFileError('ERR_SNAPSHOT_VERSION', path,
        `format version ${version} (written by node-kvm ${writer || '?'}); this node-kvm ${NODE_KVM_VERSION} reads version ${SNAPSHOT_FORMAT_VERSION}`);
    }
    const hlen = dv.getUint32(OFF_HEADER_LEN, true);
    if (hlen === 0 || hlen > MAX_HEADER) corrupt(`header length ${hlen} is out of range`);
    if (PREAMBLE + hlen > size) corrupt(`truncated: the header needs ${PREAMBLE + hlen} bytes, the file has ${size}`);
    const hbytes = new Uint8Array(hlen);
    if (readSync(fd, hbytes, 0, hlen, PREAMBLE) !== hlen) corrupt('truncated header');
    const sha = createHash('sha256').update(hbytes).digest();
    if (!sha.equals(pre.subarray(OFF_HEADER_SHA, OFF_HEADER_SHA + 32))) corrupt('header checksum mismatch');
    let header: SnapshotHeader;
    try {
      header = JSON.parse(new TextDecoder().decode(hbytes)) as SnapshotHeader;
    } catch {
      return corrupt('header is not JSON');
    }
    if (typeof header !== 'object' || header === null || !Array.isArray(header.sections) || typeof header.fileSize !== 'number') {
      corrupt('header lacks sections/fileSize');
    }
    if (size < header.fileSize) corrupt(`truncated: ${size} bytes, the header says ${header.fileSize}`);
    for (const s of header.sections) {
      if (typeof s.name !== 'string' || !Number.isSafeInteger(s.offset) || !Number.isSafeInteger(s.length) || s.length < 0
        || s.offset % SNAPSHOT_PAGE_SIZE !== 0 || s.offset < PREAMBLE + hlen || s.offset + s.length > header.fileSize) {
        corrupt(`section ${String(s.name)} has a bad offset/length`);
      }
      if (verify === 'full' || s.kind !== 'memory') {
        if (hashRange(fd, s.offset, s.length) !== s.sha256) corrupt(`section ${s.name} checksum mismatch`);
      }
    }
    return { header, version };
  }

  get fd(): number {
    if (this.fdValue < 0) throw new NodeKvmError('ERR_KVM_CLOSED', `snapshot file ${this.path} is closed`);
    return this.fdValue;
  }

  get meta(): JsonValue {
    return this.header.meta;
  }

  section(name: string): SectionEntry {
    const s = this.header.sections.find((x) => x.name === name);
    if (s === undefined) throw new SnapshotFileError('ERR_SNAPSHOT_CORRUPT', this.path, `no section ${name}`);
    return s;
  }

  /** Read a whole section into memory. */
  read(name: string): Uint8Array {
    const s = this.section(name);
    const out = new Uint8Array(s.length);
    readInto(this.fd, out, s.offset);
    return out;
  }

  /** Read a section into `target` (which must be exactly its length). */
  readInto(name: string, target: Uint8Array): void {
    const s = this.section(name);
    if (target.length !== s.length) throw new NodeKvmError('ERR_INVALID_ARG', `section ${name} is ${s.length} bytes, target ${target.length}`);
    readInto(this.fd, target, s.offset);
  }

  close(): void {
    if (this.fdValue >= 0) closeSync(this.fdValue);
    this.fdValue = -1;
  }
}

function readInto(fd: number, target: Uint8Array, position: number): void {
  let done = 0;
  while (done < target.length) {
    const n = readSync(fd, target, done, Math.min(target.length - done, 1 << 30), position + done);
    if (n === 0) throw new NodeKvmError('ERR_SNAPSHOT_CORRUPT', 'snapshot file ended early');
    done += n;
  }
}

function hashRange(fd: number, offset: number, length: number): string {
  const h = createHash('sha256');
  const buf = new Uint8Array(Math.min(CHUNK, Math.max(length, 1)));
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, 0, Math.min(buf.length, length - done), offset + done);
    if (n === 0) break;
    h.update(buf.subarray(0, n));
    done += n;
  }
  return h.digest('hex');
}
