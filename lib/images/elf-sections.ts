// Just enough ELF64 parsing to read one section by name (kernel modules' ".modinfo").
export function readElfSection(buf: Buffer, name: string): Buffer | undefined {
  if (buf.length < 64 || buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2 || buf[5] !== 1) return undefined;
  const shoff = Number(buf.readBigUInt64LE(0x28));
  const shentsize = buf.readUInt16LE(0x3a);
  const shnum = buf.readUInt16LE(0x3c);
  const shstrndx = buf.readUInt16LE(0x3e);
  if (shoff === 0 || shoff + shnum * shentsize > buf.length || shstrndx >= shnum) return undefined;
  const sh = (i: number): { name: number; offset: number; size: number } => {
    const o = shoff + i * shentsize;
    return { name: buf.readUInt32LE(o), offset: Number(buf.readBigUInt64LE(o + 0x18)), size: Number(buf.readBigUInt64LE(o + 0x20)) };
  };
  const strtab = sh(shstrndx);
  for (let i = 0; i < shnum; i++) {
    const s = sh(i);
    const start = strtab.offset + s.name;
    const end = buf.indexOf(0, start);
    if (end < 0) continue;
    if (buf.toString('latin1', start, end) === name) {
      if (s.offset + s.size > buf.length) return undefined;
      return buf.subarray(s.offset, s.offset + s.size);
    }
  }
  return undefined;
}

/** The key=value strings of a module's .modinfo section. */
export function readModinfo(ko: Buffer): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const sec = readElfSection(ko, '.modinfo');
  if (!sec) return out;
  for (const s of sec.toString('latin1').split('\0')) {
    const eq = s.indexOf('=');
    if (eq <= 0) continue;
    const k = s.slice(0, eq);
    const list = out.get(k) ?? [];
    list.push(s.slice(eq + 1));
    out.set(k, list);
  }
  return out;
}
