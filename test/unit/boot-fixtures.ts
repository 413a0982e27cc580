// Crafted kernel images for the boot-* unit tests: just enough bzImage header, ELF and
// Multiboot structure to exercise every check of the loaders without a real kernel.

export interface BzOptions {
  version?: number;
  setupSects?: number;
  payload?: Uint8Array;
  /** Override syssize (default: payload length / 16, rounded up). */
  syssize?: number;
  loadflags?: number;
  xloadflags?: number;
  prefAddress?: number;
  initSize?: number;
  cmdlineSize?: number;
  initrdAddrMax?: number;
  relocatable?: number;
  bootFlag?: number;
  magic?: number;
  code32Start?: number;
  /** End of the header (0x202 + the jump's byte): older protocols have shorter headers. */
  headerEnd?: number;
}

export function makeBzImage(o: BzOptions = {}): Uint8Array {
  const setupSects = o.setupSects ?? 4;
  const realSects = setupSects === 0 ? 4 : setupSects;
  const payload = o.payload ?? new Uint8Array(0x3000).map((_, i) => i & 0xff);
  const setupSize = (realSects + 1) * 512;
  const img = new Uint8Array(setupSize + payload.length);
  const dv = new DataView(img.buffer);
  dv.setUint8(0x1f1, setupSects);
  dv.setUint32(0x1f4, o.syssize ?? Math.ceil(payload.length / 16), true);
  dv.setUint16(0x1fe, o.bootFlag ?? 0xaa55, true);
  dv.setUint8(0x200, 0xeb);
  const end = o.headerEnd ?? 0x26c;
  dv.setUint8(0x201, end - 0x202);
  dv.setUint32(0x202, o.magic ?? 0x53726448, true);
  dv.setUint16(0x206, o.version ?? 0x020f, true);
  dv.setUint8(0x211, o.loadflags ?? 0x01);
  dv.setUint32(0x214, o.code32Start ?? 0x100000, true);
  // Fields past the header's end are left zero, as an older kernel's image has them.
  const set = (off: number, size: number, write: () => void): void => { if (off + size <= end) write(); };
  set(0x22c, 4, () => dv.setUint32(0x22c, o.initrdAddrMax ?? 0x7fffffff, true));
  set(0x230, 4, () => dv.setUint32(0x230, 0x200000, true));
  set(0x234, 1, () => dv.setUint8(0x234, o.relocatable ?? 1));
  set(0x236, 2, () => dv.setUint16(0x236, o.xloadflags ?? 0x1, true));
  set(0x238, 4, () => dv.setUint32(0x238, o.cmdlineSize ?? 2047, true));
  set(0x258, 8, () => dv.setBigUint64(0x258, BigInt(o.prefAddress ?? 0x1000000), true));
  set(0x260, 4, () => dv.setUint32(0x260, o.initSize ?? 0x200000, true));
  img.set(payload, setupSize);
  return img;
}

export interface SegSpec {
  paddr: number;
  vaddr?: bigint | number;
  data: Uint8Array;
  memsz?: number;
  /** Override p_offset / p_filesz to craft broken files. */
  offset?: number;
  filesz?: number;
}

export interface NoteSpec {
  name: string;
  type: number;
  desc: Uint8Array;
}

function noteBytes(notes: NoteSpec[]): Uint8Array {
  const parts: number[] = [];
  const pad = (a: number[]): void => { while (a.length % 4) a.push(0); };
  for (const n of notes) {
    const name = [...new TextEncoder().encode(n.name), 0];
    const hdr = new Uint8Array(12);
    const dv = new DataView(hdr.buffer);
    dv.setUint32(0, name.length, true);
    dv.setUint32(4, n.desc.length, true);
    dv.setUint32(8, n.type, true);
    parts.push(...hdr, ...name);
    pad(parts);
    parts.push(...n.desc);
    pad(parts);
  }
  return new Uint8Array(parts);
}

/** ELF64 (or ELF32 with elfClass 32) executable with PT_LOAD segments and one PT_NOTE. */
export function makeElf(o: {
  elfClass?: 32 | 64; machine?: number; entry: bigint | number; segments: SegSpec[]; notes?: NoteSpec[];
}): Uint8Array {
  const is64 = (o.elfClass ?? 64) === 64;
  const ehsize = is64 ? 64 : 52;
  const phentsize = is64 ? 56 : 32;
  const notes = o.notes && o.notes.length > 0 ? noteBytes(o.notes) : undefined;
  const phnum = o.segments.length + (notes ? 1 : 0);
  let off = ehsize + phnum * phentsize;
  off = (off + 15) & ~15;
  const placed = o.segments.map((s) => {
    const at = off;
    off += s.data.length;
    return at;
  });
  const noteOff = off;
  off += notes?.length ?? 0;
  const img = new Uint8Array(off);
  const dv = new DataView(img.buffer);
  img.set([0x7f, 0x45, 0x4c, 0x46, is64 ? 2 : 1, 1, 1]);
  dv.setUint16(16, 2, true); // ET_EXEC
  dv.setUint16(18, o.machine ?? (is64 ? 62 : 3), true);
  dv.setUint32(20, 1, true);
  if (is64) {
    dv.setBigUint64(0x18, BigInt(o.entry), true);
    dv.setBigUint64(0x20, BigInt(ehsize), true);
    dv.setUint16(0x34, ehsize, true);
    dv.setUint16(0x36, phentsize, true);
    dv.setUint16(0x38, phnum, true);
  } else {
    dv.setUint32(0x18, Number(o.entry), true);
    dv.setUint32(0x1c, ehsize, true);
    dv.setUint16(0x28, ehsize, true);
    dv.setUint16(0x2a, phentsize, true);
    dv.setUint16(0x2c, phnum, true);
  }
  const ph = (i: number, type: number, offset: number, vaddr: bigint, paddr: number, filesz: number, memsz: number): void => {
    const p = ehsize + i * phentsize;
    if (is64) {
      dv.setUint32(p, type, true);
      dv.setBigUint64(p + 8, BigInt(offset), true);
      dv.setBigUint64(p + 16, vaddr, true);
      dv.setBigUint64(p + 24, BigInt(paddr), true);
      dv.setBigUint64(p + 32, BigInt(filesz), true);
      dv.setBigUint64(p + 40, BigInt(memsz), true);
    } else {
      dv.setUint32(p, type, true);
      dv.setUint32(p + 4, offset, true);
      dv.setUint32(p + 8, Number(vaddr), true);
      dv.setUint32(p + 12, paddr, true);
      dv.setUint32(p + 16, filesz, true);
      dv.setUint32(p + 20, memsz, true);
    }
  };
  o.segments.forEach((s, i) => {
    img.set(s.data, placed[i]!);
    ph(i, 1, s.offset ?? placed[i]!, BigInt(s.vaddr ?? s.paddr), s.paddr, s.filesz ?? s.data.length, s.memsz ?? s.data.length);
  });
  if (notes) {
    img.set(notes, noteOff);
    ph(o.segments.length, 4, noteOff, 0n, 0, notes.length, notes.length);
  }
  return img;
}

/** A Multiboot v1 header (12 bytes, or 32 with the a.out kludge addresses). */
export function multibootHeader(flags: number, aout?: {
  header_addr: number; load_addr: number; load_end_addr: number; bss_end_addr: number; entry_addr: number;
}): Uint8Array {
  const b = new Uint8Array(aout ? 32 : 12);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, 0x1badb002, true);
  dv.setUint32(4, flags, true);
  dv.setUint32(8, (-(0x1badb002 + flags)) >>> 0, true);
  if (aout) {
    dv.setUint32(12, aout.header_addr, true);
    dv.setUint32(16, aout.load_addr, true);
    dv.setUint32(20, aout.load_end_addr, true);
    dv.setUint32(24, aout.bss_end_addr, true);
    dv.setUint32(28, aout.entry_addr, true);
  }
  return b;
}

export function u64le(v: number | bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
  return b;
}

export const MiB = 1024 * 1024;
