// The ACPI tables as the guest sees them: found by scanning for the RSDP like Linux does, then
// followed pointer by pointer, with every checksum and the fields Linux reads checked at their
// spec offsets (ACPI 6.5 §5.2).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fakeGuestMemory, type GuestMemory } from '../../lib/kvm/memory.js';
import { writeAcpiTables, ACPI_MAX_CPUS } from '../../lib/boot/acpi/index.js';
import { acpiChecksum, FADT, FADT_HW_REDUCED_ACPI, FADT_RESET_REG_SUP, FADT_TMR_VAL_EXT, FADT_WBINVD, IAPC_8042 } from '../../lib/boot/acpi/tables.js';
import { buildDsdtAml, buildPrt } from '../../lib/boot/acpi/dsdt.js';
import {
  ACPI_END, ACPI_RESET_VALUE, ACPI_START, IOAPIC_START, IRQ_SCI, LAPIC_START, PORT_ACPI_GPE0, PORT_ACPI_PM1A_CNT,
  PORT_ACPI_PM1A_EVT, PORT_ACPI_PM_TMR, PORT_ACPI_RESET, pciIntxGsi,
} from '../../lib/platform/layout.js';
import type { NodeKvmError } from '../../lib/errors.js';

function machine(cpus: number, extra: Partial<Parameters<typeof writeAcpiTables>[1]> = {}): GuestMemory {
  const mem = fakeGuestMemory([{ guestPhysAddr: 0, size: 0x100000 }]);
  writeAcpiTables(mem, { cpus, ...extra });
  return mem;
}

const ascii = (mem: GuestMemory, a: number, n: number): string => String.fromCharCode(...mem.read(a, n));
const sums = (b: Uint8Array): number => b.reduce((s, x) => (s + x) & 0xff, 0);

/** Linux's RSDP search: 16-byte boundaries of 0xE0000-0xFFFFF. */
function findRsdp(mem: GuestMemory): number {
  for (let a = 0xe0000; a < 0x100000; a += 16) if (ascii(mem, a, 8) === 'RSD PTR ') return a;
  throw new Error('no RSDP');
}

/** Read and validate one SDT: signature, length, checksum. */
function sdt(mem: GuestMemory, addr: number, signature: string): Uint8Array {
  assert.equal(ascii(mem, addr, 4), signature);
  const len = mem.readU32(addr + 4);
  assert.ok(addr + len <= ACPI_END, `${signature} ends inside the ACPI area`);
  const bytes = mem.read(addr, len);
  assert.equal(sums(bytes), 0, `${signature} checksum`);
  assert.equal(ascii(mem, addr + 10, 6), 'NODKVM');
  return bytes;
}

function tablesFromXsdt(mem: GuestMemory): Map<string, number> {
  const rsdp = findRsdp(mem);
  const xsdt = Number(mem.readU64(rsdp + 24));
  const x = sdt(mem, xsdt, 'XSDT');
  const out = new Map<string, number>();
  for (let off = 36; off < x.length; off += 8) {
    const a = Number(mem.readU64(xsdt + off));
    out.set(ascii(mem, a, 4), a);
  }
  return out;
}

test('RSDP: revision 2 at ACPI_START with both checksums and XSDT/RSDT pointers', () => {
  const mem = machine(2);
  const rsdp = findRsdp(mem);
  assert.equal(rsdp, ACPI_START);
  assert.equal(rsdp % 16, 0);
  assert.equal(sums(mem.read(rsdp, 20)), 0, 'ACPI 1.0 checksum over 20 bytes');
  assert.equal(sums(mem.read(rsdp, 36)), 0, 'extended checksum over 36 bytes');
  assert.equal(mem.readU8(rsdp + 15), 2);
  assert.equal(mem.readU32(rsdp + 20), 36);
  const rsdt = sdt(mem, mem.readU32(rsdp + 16), 'RSDT');
  const xsdtAddr = Number(mem.readU64(rsdp + 24));
  const xsdt = sdt(mem, xsdtAddr, 'XSDT');
  assert.equal(rsdt.length, 36 + 4 * 2);
  assert.equal(xsdt.length, 36 + 8 * 2);
  const rsdtDv = new DataView(rsdt.buffer);
  assert.deepEqual([rsdtDv.getUint32(36, true), rsdtDv.getUint32(40, true)],
    [Number(mem.readU64(xsdtAddr + 36)), Number(mem.readU64(xsdtAddr + 44))]);
  assert.deepEqual([...tablesFromXsdt(mem).keys()].sort(), ['APIC', 'FACP']);
});

test('FADT: legacy PM block, SCI, reset register, DSDT and FACS pointers', () => {
  const mem = machine(1);
  const fadtAddr = tablesFromXsdt(mem).get('FACP')!;
  const f = sdt(mem, fadtAddr, 'FACP');
  assert.equal(f.length, 276);
  assert.equal(f[8], 6, 'revision 6');
  const dv = new DataView(f.buffer);
  const u32 = (o: number): number => dv.getUint32(o, true);
  const u64 = (o: number): number => Number(dv.getBigUint64(o, true));
  assert.equal(dv.getUint16(FADT.SCI_INT, true), IRQ_SCI);
  assert.equal(u32(FADT.SMI_CMD), 0, 'no SMI_CMD: already in ACPI mode');
  assert.equal(u32(FADT.PM1a_EVT_BLK), PORT_ACPI_PM1A_EVT);
  assert.equal(u32(FADT.PM1a_CNT_BLK), PORT_ACPI_PM1A_CNT);
  assert.equal(u32(FADT.PM_TMR_BLK), PORT_ACPI_PM_TMR);
  assert.equal(u32(FADT.GPE0_BLK), PORT_ACPI_GPE0);
  assert.deepEqual([f[FADT.PM1_EVT_LEN], f[FADT.PM1_CNT_LEN], f[FADT.PM_TMR_LEN], f[FADT.GPE0_BLK_LEN]], [4, 2, 4, 4]);
  const flags = u32(FADT.Flags);
  assert.ok(flags & FADT_WBINVD);
  assert.ok(flags & FADT_RESET_REG_SUP);
  assert.ok(flags & FADT_TMR_VAL_EXT, 'the PM timer is 32 bits');
  assert.equal(flags & FADT_HW_REDUCED_ACPI, 0, 'not hardware-reduced');
  assert.ok(dv.getUint16(FADT.IAPC_BOOT_ARCH, true) & IAPC_8042);
  // RESET_REG: GAS {SystemIO, 8 bits, offset 0, byte access, 0xCF9}.
  assert.deepEqual(Array.from(f.subarray(FADT.RESET_REG, FADT.RESET_REG + 4)), [1, 8, 0, 1]);
  assert.equal(u64(FADT.RESET_REG + 4), PORT_ACPI_RESET);
  assert.equal(f[FADT.RESET_VALUE], ACPI_RESET_VALUE);
  // X_ blocks mirror the 32-bit ones (SystemIO GAS).
  for (const [x, legacy, bits] of [[FADT.X_PM1a_EVT_BLK, FADT.PM1a_EVT_BLK, 32], [FADT.X_PM1a_CNT_BLK, FADT.PM1a_CNT_BLK, 16],
    [FADT.X_PM_TMR_BLK, FADT.PM_TMR_BLK, 32], [FADT.X_GPE0_BLK, FADT.GPE0_BLK, 32]] as const) {
    assert.equal(f[x], 1, 'SystemIO');
    assert.equal(f[x + 1], bits);
    assert.equal(u64(x + 4), u32(legacy));
  }
  // DSDT and FACS, both 32- and 64-bit pointers.
  assert.equal(u64(FADT.X_DSDT), u32(FADT.DSDT));
  assert.equal(u64(FADT.X_FIRMWARE_CTRL), u32(FADT.FIRMWARE_CTRL));
  sdt(mem, u32(FADT.DSDT), 'DSDT');
  const facs = u32(FADT.FIRMWARE_CTRL);
  assert.equal(facs % 64, 0, 'FACS is 64-byte aligned');
  assert.equal(ascii(mem, facs, 4), 'FACS');
  assert.equal(mem.readU32(facs + 4), 64);
});

function madtEntries(mem: GuestMemory): Array<{ type: number; bytes: Uint8Array }> {
  const m = sdt(mem, tablesFromXsdt(mem).get('APIC')!, 'APIC');
  const dv = new DataView(m.buffer);
  assert.equal(dv.getUint32(36, true), LAPIC_START);
  assert.equal(dv.getUint32(40, true) & 1, 1, 'PCAT_COMPAT');
  const out: Array<{ type: number; bytes: Uint8Array }> = [];
  for (let off = 44; off < m.length; off += m[off + 1]!) {
    assert.ok(m[off + 1]! > 0);
    out.push({ type: m[off]!, bytes: m.subarray(off, off + m[off + 1]!) });
  }
  return out;
}

for (const cpus of [1, 2, 8]) {
  test(`MADT for ${cpus} vCPU(s): one enabled local APIC each, IOAPIC, overrides, LINT1 NMI`, () => {
    const mem = machine(cpus);
    const e = madtEntries(mem);
    const lapics = e.filter((x) => x.type === 0);
    assert.equal(lapics.length, cpus);
    lapics.forEach((l, i) => {
      assert.equal(l.bytes[3], i, 'APIC id');
      assert.equal(l.bytes[4]! & 1, 1, 'enabled');
    });
    const ioapics = e.filter((x) => x.type === 1);
    assert.equal(ioapics.length, 1);
    const io = new DataView(ioapics[0]!.bytes.buffer, ioapics[0]!.bytes.byteOffset);
    assert.equal(io.getUint8(2), cpus, 'IOAPIC id follows the CPUs');
    assert.equal(io.getUint32(4, true), IOAPIC_START);
    assert.equal(io.getUint32(8, true), 0, 'GSI base');
    const isos = e.filter((x) => x.type === 2).map((x) => {
      const d = new DataView(x.bytes.buffer, x.bytes.byteOffset);
      return { source: d.getUint8(3), gsi: d.getUint32(4, true), flags: d.getUint16(8, true) };
    });
    // Default irq0Gsi 0 (KVM's default routing): only the SCI override, level/active-high.
    assert.deepEqual(isos, [{ source: IRQ_SCI, gsi: IRQ_SCI, flags: 0x000d }]);
    const nmis = e.filter((x) => x.type === 4);
    assert.equal(nmis.length, 1);
    assert.equal(nmis[0]!.bytes[2], 0xff);
    assert.equal(nmis[0]!.bytes[5], 1, 'LINT1');
  });
}

test('MADT: irq0Gsi 2 adds the IRQ0->GSI2 edge override', () => {
  const e = madtEntries(machine(1, { irq0Gsi: 2 }));
  const iso = e.filter((x) => x.type === 2).map((x) => Array.from(x.bytes));
  assert.deepEqual(iso[0], [2, 10, 0, 0, 2, 0, 0, 0, 0x05, 0x00]);
  assert.equal(iso.length, 2);
});

/** Hand decoder for the tests: PkgLength at `off` -> [value, bytes used]. */
function readPkgLength(b: Uint8Array, off: number): [number, number] {
  const lead = b[off]!;
  const follow = lead >> 6;
  if (follow === 0) return [lead & 0x3f, 1];
  let v = lead & 0x0f;
  for (let i = 0; i < follow; i++) v |= b[off + 1 + i]! << (4 + 8 * i);
  return [v, 1 + follow];
}

function indexOf(b: Uint8Array, s: string): number {
  const pat = Array.from(s, (c) => c.charCodeAt(0));
  outer: for (let i = 0; i + pat.length <= b.length; i++) {
    for (let k = 0; k < pat.length; k++) if (b[i + k] !== pat[k]) continue outer;
    return i;
  }
  return -1;
}

test('DSDT holds \\_S5_ = {5, 5, 0, 0} and a 128-entry _PRT in GSI form', () => {
  const mem = machine(2);
  const fadt = tablesFromXsdt(mem).get('FACP')!;
  const dsdt = sdt(mem, mem.readU32(fadt + FADT.DSDT), 'DSDT');
  const s5 = indexOf(dsdt, '_S5_');
  assert.ok(s5 > 0);
  assert.deepEqual(Array.from(dsdt.subarray(s5 - 2, s5 + 13)),
    [0x08, 0x5c, 0x5f, 0x53, 0x35, 0x5f, 0x12, 0x08, 0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00]);
  assert.ok(indexOf(dsdt, 'PCI0') > 0);
  const prt = indexOf(dsdt, '_PRT');
  let off = prt + 4;
  assert.equal(dsdt[off++], 0x12, 'PackageOp');
  const [, used] = readPkgLength(dsdt, off);
  assert.equal(used, 2, 'the _PRT needs the two-byte PkgLength');
  off += used;
  assert.equal(dsdt[off++], 128, 'NumElements');
  const seen = new Set<string>();
  for (let n = 0; n < 128; n++) {
    assert.equal(dsdt[off], 0x12);
    const [len, u] = readPkgLength(dsdt, off + 1);
    const body = dsdt.subarray(off + 1 + u, off + 1 + len);
    assert.equal(body[0], 4);
    // Decode the four integers (Zero/One/Byte/Word/DWord).
    const ints: number[] = [];
    let p = 1;
    while (ints.length < 4) {
      const op = body[p++]!;
      if (op === 0x00 || op === 0x01) ints.push(op);
      else if (op === 0x0a) ints.push(body[p++]!);
      else if (op === 0x0b) { ints.push(body[p]! | (body[p + 1]! << 8)); p += 2; }
      else if (op === 0x0c) { ints.push(new DataView(body.buffer, body.byteOffset + p).getUint32(0, true)); p += 4; }
      else assert.fail(`unexpected opcode 0x${op.toString(16)}`);
    }
    const [addr, pin, source, gsi] = ints as [number, number, number, number];
    const slot = addr >>> 16;
    assert.equal(addr & 0xffff, 0xffff);
    assert.equal(source, 0, 'GSI form');
    assert.equal(gsi, pciIntxGsi(slot, pin + 1));
    seen.add(`${slot}/${pin}`);
    off += 1 + len;
  }
  assert.equal(seen.size, 128);
});

test('_PRT honours explicit routes and validates them', () => {
  const custom = buildPrt([{ slot: 3, pin: 1, gsi: 22 }]);
  assert.ok(indexOf(custom, '_PRT') === 1);
  // Slot 3 INTA entry: Package(4) {0x0003FFFF, Zero, Zero, 22}.
  const needle = [0x12, 0x0b, 0x04, 0x0c, 0xff, 0xff, 0x03, 0x00, 0x00, 0x00, 0x0a, 22];
  assert.ok(indexOf(custom, String.fromCharCode(...needle)) > 0);
  assert.throws(() => buildPrt([{ slot: 32, pin: 1, gsi: 16 }]), (e: NodeKvmError) => e.code === 'ERR_INVALID_PCI_IRQ');
  assert.throws(() => buildPrt([{ slot: 1, pin: 0, gsi: 16 }]), (e: NodeKvmError) => e.code === 'ERR_INVALID_PCI_IRQ');
  assert.throws(() => buildDsdtAml({ pciDevices: [40] }), (e: NodeKvmError) => e.code === 'ERR_INVALID_PCI_SLOT');
});

test('bad caller input throws coded errors', () => {
  const mem = fakeGuestMemory([{ guestPhysAddr: 0, size: 0x100000 }]);
  assert.throws(() => writeAcpiTables(mem, { cpus: 0 }), (e: NodeKvmError) => e.code === 'ERR_INVALID_ARG');
  assert.throws(() => writeAcpiTables(mem, { cpus: ACPI_MAX_CPUS + 1 }), (e: NodeKvmError) => e.code === 'ERR_TOO_MANY_CPUS');
  // The largest machine still fits.
  const info = writeAcpiTables(mem, { cpus: ACPI_MAX_CPUS });
  assert.ok(info.end <= ACPI_END);
});

test('acpiChecksum makes a buffer sum to zero', () => {
  const b = Uint8Array.of(1, 2, 3, 0);
  b[3] = acpiChecksum(b);
  assert.equal(sums(b), 0);
});

function iaslAvailable(): boolean {
  return spawnSync('iasl', ['-v'], { stdio: 'ignore' }).status === 0;
}

test('iasl disassembles every table cleanly (extra check when acpica-tools is installed)', (t) => {
  const mem = fakeGuestMemory([{ guestPhysAddr: 0, size: 0x100000 }]);
  const info = writeAcpiTables(mem, { cpus: 2, pciDevices: [1, 2] });
  assert.equal(info.rsdpAddress, ACPI_START);
  if (!iaslAvailable()) {
    t.diagnostic('iasl not installed: skipping the disassembler cross-check');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'node-kvm-acpi-'));
  try {
    for (const tbl of info.tables.filter((x) => x.signature !== 'RSD PTR ')) {
      const file = join(dir, `${tbl.signature}.dat`);
      writeFileSync(file, mem.read(tbl.address, tbl.length));
      execFileSync('iasl', ['-d', file], { cwd: dir, stdio: 'pipe' });
    }
    const dsl = readFileSync(join(dir, 'DSDT.dsl'), 'utf8');
    assert.match(dsl, /Name \(\\_S5, Package \(0x04\)/);
    assert.match(dsl, /Name \(_PRT, Package \(0x80\)/);
    assert.match(dsl, /EisaId \("PNP0A03"\)/);
    assert.match(dsl, /WordBusNumber/);
    assert.equal(dsl.match(/Package \(0x04\)/g)?.length, 129, '_S5_ + 128 _PRT entries');
    const facp = readFileSync(join(dir, 'FACP.dsl'), 'utf8');
    assert.match(facp, /Reset Register Supported \(V2\) : 1/);
    assert.match(facp, /Hardware Reduced \(V5\) : 0/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
