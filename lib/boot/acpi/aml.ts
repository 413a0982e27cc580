// A tiny AML (ACPI Machine Language) encoder: just the opcodes our DSDT needs, each returning
// its encoded bytes so terms compose by plain nesting. Encodings follow ACPI 6.5 §20.2 (AML
// grammar) and §6.4 (resource descriptors). Everything is built once at boot, so clarity wins
// over speed: small Uint8Arrays concatenated, no shared buffer.
import { InvalidArgumentError } from '../../errors.js';

/** One AML term (or any run of AML bytes). */
export type Aml = Uint8Array;

// Opcodes (ACPI 6.5 §20.2.x), spec names.
export const ZeroOp = 0x00;
export const OneOp = 0x01;
export const NameOp = 0x08;
export const BytePrefix = 0x0a;
export const WordPrefix = 0x0b;
export const DWordPrefix = 0x0c;
export const StringPrefix = 0x0d;
export const QWordPrefix = 0x0e;
export const ScopeOp = 0x10;
export const BufferOp = 0x11;
export const PackageOp = 0x12;
export const MethodOp = 0x14;
export const DualNamePrefix = 0x2e;
export const MultiNamePrefix = 0x2f;
export const ExtOpPrefix = 0x5b;
export const DeviceOp = 0x82; // after ExtOpPrefix
export const RootChar = 0x5c; // '\'
export const ParentPrefixChar = 0x5e; // '^'
export const ReturnOp = 0xa4;
export const OnesOp = 0xff;

/** Concatenate AML fragments. */
export function aml(...parts: ReadonlyArray<Aml | readonly number[]>): Aml {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * PkgLength (§20.2.4) for a package whose body (everything after the PkgLength) is
 * `bodyLength` bytes. The encoded value counts the PkgLength bytes themselves. One byte holds
 * up to 63; longer forms put the byte count in bits 7-6 of the lead byte, the low nibble in
 * bits 3-0, and the rest in 1-3 following bytes (so up to 2^12, 2^20, 2^28).
 */
export function pkgLength(bodyLength: number): Aml {
  if (!Number.isSafeInteger(bodyLength) || bodyLength < 0) {
    throw new InvalidArgumentError(`AML package body length ${bodyLength} is not a valid size`, 'ERR_AML_INVALID');
  }
  if (bodyLength + 1 <= 0x3f) return Uint8Array.of(bodyLength + 1);
  for (let follow = 1; follow <= 3; follow++) {
    const total = bodyLength + 1 + follow;
    if (total < 2 ** (4 + 8 * follow)) {
      const out = new Uint8Array(1 + follow);
      out[0] = (follow << 6) | (total & 0x0f);
      let rest = Math.floor(total / 16);
      for (let i = 1; i <= follow; i++) {
        out[i] = rest & 0xff;
        rest = Math.floor(rest / 256);
      }
      return out;
    }
  }
  throw new InvalidArgumentError(`AML package body of ${bodyLength} bytes exceeds PkgLength's 2^28 limit`, 'ERR_AML_INVALID');
}

const NAME_SEG = /^[A-Z_][A-Z0-9_]{0,3}$/;

/** A NameSeg: 1-4 chars, lead A-Z or '_', padded with '_' to 4 (ASL does the same). */
export function nameSeg(seg: string): Aml {
  if (!NAME_SEG.test(seg)) {
    throw new InvalidArgumentError(`'${seg}' is not a valid ACPI NameSeg`, 'ERR_AML_INVALID');
  }
  const padded = seg.padEnd(4, '_');
  return Uint8Array.from(padded, (c) => c.charCodeAt(0));
}

/**
 * A NameString (§20.2.2): optional '\' root or '^' parent prefixes, then dot-separated
 * segments, e.g. '\\_SB.PCI0', '_S5_', '^^FOO'. Two segments use DualNamePrefix, more use
 * MultiNamePrefix; a bare prefix ('\\') ends with NullName.
 */
export function nameString(path: string): Aml {
  let i = 0;
  const prefix: number[] = [];
  if (path.startsWith('\\')) {
    prefix.push(RootChar);
    i = 1;
  } else {
    while (path[i] === '^') {
      prefix.push(ParentPrefixChar);
      i++;
    }
  }
  const rest = path.slice(i);
  if (rest === '') return aml(prefix, [0x00]); // NullName
  const segs = rest.split('.').map(nameSeg);
  if (segs.length === 1) return aml(prefix, segs[0]!);
  if (segs.length === 2) return aml(prefix, [DualNamePrefix], segs[0]!, segs[1]!);
  if (segs.length > 255) throw new InvalidArgumentError(`name path '${path}' has too many segments`, 'ERR_AML_INVALID');
  return aml(prefix, [MultiNamePrefix, segs.length], ...segs);
}

/** An integer as the shortest ComputationalData form (Zero/One/Ones, Byte/Word/DWord/QWord). */
export function amlInteger(value: number | bigint): Aml {
  const v = BigInt(value);
  if (v < 0n || v > 0xffff_ffff_ffff_ffffn) {
    throw new InvalidArgumentError(`AML integer ${value} is outside 0..2^64-1`, 'ERR_AML_INVALID');
  }
  if (v === 0n) return Uint8Array.of(ZeroOp);
  if (v === 1n) return Uint8Array.of(OneOp);
  if (v <= 0xffn) return Uint8Array.of(BytePrefix, Number(v));
  const le = (n: number): Aml => {
    const out = new Uint8Array(n);
    let x = v;
    for (let k = 0; k < n; k++) {
      out[k] = Number(x & 0xffn);
      x >>= 8n;
    }
    return out;
  };
  if (v <= 0xffffn) return aml([WordPrefix], le(2));
  if (v <= 0xffff_ffffn) return aml([DWordPrefix], le(4));
  return aml([QWordPrefix], le(8));
}

/** A String constant (ASCII 0x01-0x7F, NUL-terminated). */
export function amlString(s: string): Aml {
  const chars = Array.from(s, (c) => c.charCodeAt(0));
  if (chars.some((c) => c < 1 || c > 0x7f)) {
    throw new InvalidArgumentError(`AML string '${s}' must be 7-bit ASCII without NUL`, 'ERR_AML_INVALID');
  }
  return aml([StringPrefix], chars, [0x00]);
}

/**
 * EISAID("PNP0A03") as the 32-bit integer ASL produces: three letters packed 5 bits each and
 * four hex digits, stored big-endian in the dword (so PNP0A03 is 0x030AD041).
 */
export function eisaId(id: string): number {
  if (!/^[A-Z]{3}[0-9A-F]{4}$/.test(id)) {
    throw new InvalidArgumentError(`'${id}' is not an EISA id like PNP0A03`, 'ERR_AML_INVALID');
  }
  const l = (k: number): number => id.charCodeAt(k) - 0x40;
  const vendor = (l(0) << 10) | (l(1) << 5) | l(2);
  const product = parseInt(id.slice(3), 16);
  const b = [vendor >> 8, vendor & 0xff, product >> 8, product & 0xff];
  return (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
}

/** DefName: Name(name, data). */
export function amlName(name: string, data: Aml): Aml {
  return aml([NameOp], nameString(name), data);
}

/** Wrap a body in `opcode PkgLength body`. */
function withPkgLength(opcode: readonly number[], body: Aml): Aml {
  return aml(opcode, pkgLength(body.length), body);
}

/** DefScope: Scope(name) { terms }. */
export function amlScope(name: string, ...terms: Aml[]): Aml {
  return withPkgLength([ScopeOp], aml(nameString(name), ...terms));
}

/** DefDevice: Device(name) { terms }. */
export function amlDevice(name: string, ...terms: Aml[]): Aml {
  return withPkgLength([ExtOpPrefix, DeviceOp], aml(nameString(name), ...terms));
}

/** DefMethod: Method(name, argCount, Serialized?) { terms }. */
export function amlMethod(name: string, argCount: number, serialized: boolean, ...terms: Aml[]): Aml {
  if (!Number.isInteger(argCount) || argCount < 0 || argCount > 7) {
    throw new InvalidArgumentError(`AML method argument count ${argCount} is outside 0..7`, 'ERR_AML_INVALID');
  }
  const flags = argCount | (serialized ? 0x08 : 0);
  return withPkgLength([MethodOp], aml(nameString(name), [flags], ...terms));
}

/** DefReturn: Return(term). */
export function amlReturn(term: Aml): Aml {
  return aml([ReturnOp], term);
}

/** DefPackage: Package(n) { elements } (NumElements is one byte, so at most 255). */
export function amlPackage(elements: readonly Aml[]): Aml {
  if (elements.length > 255) {
    throw new InvalidArgumentError(`AML Package of ${elements.length} elements needs VarPackageOp`, 'ERR_AML_INVALID');
  }
  return withPkgLength([PackageOp], aml([elements.length], ...elements));
}

/** DefBuffer: Buffer(size) { bytes }, size given as the shortest integer. */
export function amlBuffer(bytes: Uint8Array): Aml {
  return withPkgLength([BufferOp], aml(amlInteger(bytes.length), bytes));
}

// Resource descriptors (ACPI 6.5 §6.4), the bytes inside a ResourceTemplate() buffer.

/** Address Space Descriptor _RNG/_MEM-independent general flags (§6.4.3.5, Table 6.47). */
const ADDR_PRODUCER_MIN_MAX_FIXED = 0x0c; // _MAF | _MIF, positive decode, producer
const ADDRSPACE_MEMORY = 0;
const ADDRSPACE_IO = 1;
const ADDRSPACE_BUS = 2;
const IO_RANGE_ENTIRE = 0x03; // I/O type-specific flags: _RNG = both ISA and non-ISA ranges
const MEM_READ_WRITE = 0x01;
const MEM_CACHEABLE = 0x02; // _MEM = 1

function u16le(v: number): number[] {
  return [v & 0xff, (v >>> 8) & 0xff];
}
function u32le(v: number): number[] {
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
}

function checkRange(what: string, min: number, max: number, limit: number): void {
  if (!Number.isInteger(min) || !Number.isInteger(max) || min < 0 || max > limit || min > max) {
    throw new InvalidArgumentError(`${what} range 0x${min.toString(16)}-0x${max.toString(16)} is invalid`, 'ERR_AML_INVALID');
  }
}

/** Word Address Space Descriptor (large item 0x88): a producer window with fixed min and max. */
function wordAddressSpace(type: number, typeFlags: number, min: number, max: number): Aml {
  const body = [type, ADDR_PRODUCER_MIN_MAX_FIXED, typeFlags, ...u16le(0), ...u16le(min), ...u16le(max),
    ...u16le(0), ...u16le(max - min + 1)];
  return aml([0x88], u16le(body.length), body);
}

/** WordBusNumber(ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, min, max, 0, len). */
export function wordBusNumber(min: number, max: number): Aml {
  checkRange('bus number', min, max, 0xff);
  return wordAddressSpace(ADDRSPACE_BUS, 0, min, max);
}

/** WordIO(ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0, min, max, 0, len). */
export function wordIo(min: number, max: number): Aml {
  checkRange('I/O window', min, max, 0xffff);
  return wordAddressSpace(ADDRSPACE_IO, IO_RANGE_ENTIRE, min, max);
}

/** DWordMemory(ResourceProducer, PosDecode, MinFixed, MaxFixed, Cacheable|NonCacheable, ReadWrite, ...). */
export function dwordMemory(min: number, max: number, cacheable: boolean): Aml {
  checkRange('memory window', min, max, 0xffff_ffff);
  const body = [ADDRSPACE_MEMORY, ADDR_PRODUCER_MIN_MAX_FIXED, MEM_READ_WRITE | (cacheable ? MEM_CACHEABLE : 0),
    ...u32le(0), ...u32le(min), ...u32le(max), ...u32le(0), ...u32le(max - min + 1)];
  return aml([0x87], u16le(body.length), body);
}

/** IO(Decode16, min, max, alignment, length): small item 0x47 (I/O Port Descriptor). */
export function ioPort(min: number, max: number, alignment: number, length: number): Aml {
  checkRange('I/O port', min, max, 0xffff);
  if (alignment < 0 || alignment > 0xff || length < 0 || length > 0xff) {
    throw new InvalidArgumentError('I/O port alignment and length must fit in a byte', 'ERR_AML_INVALID');
  }
  return Uint8Array.of(0x47, 0x01, ...u16le(min), ...u16le(max), alignment, length);
}

/** IRQNoFlags(){irq}: small item 0x22, an edge-triggered active-high ISA IRQ (mask form). */
export function irqNoFlags(irq: number): Aml {
  if (!Number.isInteger(irq) || irq < 0 || irq > 15) {
    throw new InvalidArgumentError(`ISA IRQ ${irq} is outside 0..15`, 'ERR_AML_INVALID');
  }
  return Uint8Array.of(0x22, ...u16le(1 << irq));
}

/** ResourceTemplate() { descriptors }: a Buffer ending in an End Tag with checksum 0 ("ignore"). */
export function resourceTemplate(...descriptors: Aml[]): Aml {
  return amlBuffer(aml(...descriptors, [0x79, 0x00]));
}
