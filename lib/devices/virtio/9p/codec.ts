// Encode and decode 9P2000.L messages (protocol.ts holds the layouts). Decoding is bounded by
// the message: a size field that disagrees with the bytes, a string or array running past the
// end, bytes left over, or an unknown type all come back as a DecodeError naming the errno to
// answer with (the tag is given when it could be read), never as an exception. Strings are
// copied out, so a guest that rewrites its request while the server works on it cannot change
// a name after it was checked.
import {
  HEADER_SIZE, MESSAGES, MESSAGE_NAMES, QID_SIZE, type FieldSpec, type Message, type MessageName, type Qid,
} from './protocol.js';
import { LINUX_ERRNO } from './errno.js';

export interface DecodeError {
  error: true;
  /** Linux errno for the Rlerror (EINVAL for a malformed message, EOPNOTSUPP for a type the
   *  server does not know). */
  errno: number;
  /** The request's tag, when the header could be read. */
  tag?: number;
  /** The message type from the header, when it could be read. */
  type?: number;
  reason: string;
}

function fail(errno: number, reason: string, tag?: number, type?: number): DecodeError {
  return { error: true, errno, reason, tag, type };
}

/** Reads fields from a byte range, never past its end. */
class Reader {
  private readonly view: DataView;
  pos: number;
  constructor(private readonly buf: Uint8Array, start: number, readonly end: number) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.pos = start;
  }

  has(n: number): boolean { return this.end - this.pos >= n; }
  u8(): number { const v = this.view.getUint8(this.pos); this.pos += 1; return v; }
  u16(): number { const v = this.view.getUint16(this.pos, true); this.pos += 2; return v; }
  u32(): number { const v = this.view.getUint32(this.pos, true); this.pos += 4; return v; }
  u64(): bigint { const v = this.view.getBigUint64(this.pos, true); this.pos += 8; return v; }
  /** Copy of `n` bytes. */
  bytes(n: number): Uint8Array { const v = this.buf.slice(this.pos, this.pos + n); this.pos += n; return v; }
  qid(): Qid { return { type: this.u8(), version: this.u32(), path: this.u64() }; }
}

const FIXED: Record<string, number> = { u8: 1, u16: 2, u32: 4, u64: 8, qid: QID_SIZE };

/** Reads one field; undefined when the message ends too early. */
function readField(r: Reader, type: FieldSpec[1]): unknown {
  const fixed = FIXED[type];
  if (fixed !== undefined) {
    if (!r.has(fixed)) return undefined;
    switch (type) {
      case 'u8': return r.u8();
      case 'u16': return r.u16();
      case 'u32': return r.u32();
      case 'u64': return r.u64();
      default: return r.qid();
    }
  }
  switch (type) {
    case 'str': {
      if (!r.has(2)) return undefined;
      const n = r.u16();
      return r.has(n) ? r.bytes(n) : undefined;
    }
    case 'data': {
      if (!r.has(4)) return undefined;
      const n = r.u32();
      return r.has(n) ? r.bytes(n) : undefined;
    }
    case 'strs': {
      if (!r.has(2)) return undefined;
      const count = r.u16();
      const out: Uint8Array[] = [];
      for (let i = 0; i < count; i++) {
        const s = readField(r, 'str') as Uint8Array | undefined;
        if (s === undefined) return undefined;
        out.push(s);
      }
      return out;
    }
    case 'qids': {
      if (!r.has(2)) return undefined;
      const count = r.u16();
      if (!r.has(count * QID_SIZE)) return undefined;
      const out: Qid[] = [];
      for (let i = 0; i < count; i++) out.push(r.qid());
      return out;
    }
    default: return undefined;
  }
}

export interface Header {
  size: number;
  type: number;
  tag: number;
}

/** The header of the message at the start of `buf`, or undefined when fewer than 7 bytes. */
export function readHeader(buf: Uint8Array): Header | undefined {
  if (buf.byteLength < HEADER_SIZE) return undefined;
  const v = new DataView(buf.buffer, buf.byteOffset, HEADER_SIZE);
  return { size: v.getUint32(0, true), type: v.getUint8(4), tag: v.getUint16(5, true) };
}

/**
 * Decodes the message at the start of `buf` (which may hold more bytes than the message).
 * `only`, when given, limits which types are accepted (a server accepts T-messages only).
 */
export function decode(buf: Uint8Array, only?: (name: MessageName) => boolean): Message | DecodeError {
  const h = readHeader(buf);
  if (h === undefined) return fail(LINUX_ERRNO.EINVAL, `message of ${buf.byteLength} bytes has no header`);
  const { size, type, tag } = h;
  if (size < HEADER_SIZE || size > buf.byteLength) {
    return fail(LINUX_ERRNO.EINVAL, `size field ${size} but ${buf.byteLength} bytes present`, tag, type);
  }
  const name = MESSAGE_NAMES.get(type);
  if (name === undefined || (only !== undefined && !only(name))) {
    return fail(LINUX_ERRNO.EOPNOTSUPP, `message type ${type} not served`, tag, type);
  }
  const spec = MESSAGES[name];
  const r = new Reader(buf, HEADER_SIZE, size);
  const msg: Record<string, unknown> = { op: name, tag };
  for (let i = 1; i < spec.length; i++) {
    const [field, ftype] = spec[i] as FieldSpec;
    const v = readField(r, ftype);
    if (v === undefined) return fail(LINUX_ERRNO.EINVAL, `${name}.${field} runs past the message's ${size} bytes`, tag, type);
    msg[field] = v;
  }
  if (r.pos !== size) return fail(LINUX_ERRNO.EINVAL, `${name}: ${size - r.pos} bytes left over`, tag, type);
  return msg as Message;
}

export function isDecodeError(m: Message | DecodeError): m is DecodeError {
  return (m as DecodeError).error === true;
}

function fieldSize(type: FieldSpec[1], v: unknown): number {
  switch (type) {
    case 'u8': return 1;
    case 'u16': return 2;
    case 'u32': return 4;
    case 'u64': return 8;
    case 'qid': return QID_SIZE;
    case 'str': return 2 + (v as Uint8Array).byteLength;
    case 'data': return 4 + (v as Uint8Array).byteLength;
    case 'strs': return 2 + (v as Uint8Array[]).reduce((n, s) => n + 2 + s.byteLength, 0);
    case 'qids': return 2 + (v as Qid[]).length * QID_SIZE;
  }
}

/** Bytes `msg` takes encoded. */
export function encodedSize(msg: Message): number {
  const spec = MESSAGES[(msg as { op: MessageName }).op];
  let n = HEADER_SIZE;
  const rec = msg as unknown as Record<string, unknown>;
  for (let i = 1; i < spec.length; i++) {
    const [field, ftype] = spec[i] as FieldSpec;
    n += fieldSize(ftype, rec[field]);
  }
  return n;
}

function writeQid(v: DataView, at: number, q: Qid): number {
  v.setUint8(at, q.type);
  v.setUint32(at + 1, q.version, true);
  v.setBigUint64(at + 5, q.path, true);
  return at + QID_SIZE;
}

/**
 * Encodes `msg` into `out` (at its start); returns the bytes written, or -1 when `out` is too
 * small. Strings longer than 65535 bytes, arrays longer than 65535 entries and a message over
 * 4 GiB cannot be encoded: RangeError (a server bug, not guest input).
 */
export function encodeInto(msg: Message, out: Uint8Array): number {
  const size = encodedSize(msg);
  if (size > out.byteLength) return -1;
  const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const spec = MESSAGES[(msg as { op: MessageName }).op];
  v.setUint32(0, size, true);
  v.setUint8(4, spec[0]);
  v.setUint16(5, msg.tag, true);
  let at = HEADER_SIZE;
  const rec = msg as unknown as Record<string, unknown>;
  const str = (s: Uint8Array): void => {
    if (s.byteLength > 0xffff) throw new RangeError(`9P string of ${s.byteLength} bytes`);
    v.setUint16(at, s.byteLength, true);
    out.set(s, at + 2);
    at += 2 + s.byteLength;
  };
  for (let i = 1; i < spec.length; i++) {
    const [field, ftype] = spec[i] as FieldSpec;
    const val = rec[field];
    switch (ftype) {
      case 'u8': v.setUint8(at, val as number); at += 1; break;
      case 'u16': v.setUint16(at, val as number, true); at += 2; break;
      case 'u32': v.setUint32(at, val as number, true); at += 4; break;
      case 'u64': v.setBigUint64(at, BigInt.asUintN(64, val as bigint), true); at += 8; break;
      case 'qid': at = writeQid(v, at, val as Qid); break;
      case 'str': str(val as Uint8Array); break;
      case 'data': {
        const d = val as Uint8Array;
        v.setUint32(at, d.byteLength, true);
        out.set(d, at + 4);
        at += 4 + d.byteLength;
        break;
      }
      case 'strs': {
        const a = val as Uint8Array[];
        if (a.length > 0xffff) throw new RangeError(`9P array of ${a.length} strings`);
        v.setUint16(at, a.length, true);
        at += 2;
        for (const s of a) str(s);
        break;
      }
      case 'qids': {
        const a = val as Qid[];
        if (a.length > 0xffff) throw new RangeError(`9P array of ${a.length} qids`);
        v.setUint16(at, a.length, true);
        at += 2;
        for (const q of a) at = writeQid(v, at, q);
        break;
      }
    }
  }
  return at;
}

/** Encodes `msg` into a new buffer of exactly its size. */
export function encode(msg: Message): Uint8Array {
  const out = new Uint8Array(encodedSize(msg));
  encodeInto(msg, out);
  return out;
}

const utf8 = new TextEncoder();
/** A 9P string from a JS string (UTF-8). */
export function str(s: string): Uint8Array { return utf8.encode(s); }
