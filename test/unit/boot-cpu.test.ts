import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildCpuid, bootMsrs } from '../../lib/boot/cpu-setup.js';
import type { CpuidEntry } from '../../lib/kvm/regs.js';

const e = (fn: number, index: number, regs: Partial<CpuidEntry> = {}): CpuidEntry =>
  ({ function: fn, index, flags: 0, eax: 0, ebx: 0, ecx: 0, edx: 0, ...regs });

const supported: CpuidEntry[] = [
  e(0, 0, { eax: 0xd, ebx: 0x756e6547 }),
  e(1, 0, { eax: 0x906ea, ebx: 0x00010800, ecx: (1 << 26) | (1 << 27) | (1 << 28) | 1, edx: 0x178bfbff }),
  e(4, 0, { eax: 0x121 | (7 << 26) | (1 << 14) }),
  e(4, 3, { eax: 0x163 }),
  e(0xb, 0, { flags: 1, ecx: 0x100, edx: 5 }),
  e(0xb, 1, { flags: 1, ecx: 0x201, edx: 5 }),
  e(0xd, 0, { flags: 1, eax: 7 }),
  e(0xd, 1, { flags: 1, eax: 1 }),
  e(0x40000000, 0, { eax: 0x40000001, ebx: 1, ecx: 2, edx: 3 }),
  e(0x40000001, 0, { eax: 0x1234 }),
];

const get = (l: CpuidEntry[], fn: number, index = 0): CpuidEntry | undefined => l.find((x) => x.function === fn && x.index === index);

describe('buildCpuid', () => {
  const out = buildCpuid(supported, { vcpuId: 2, cpus: 4 });
  it('leaf 1: APIC id, logical count, HTT, hypervisor bit', () => {
    const l1 = get(out, 1)!;
    assert.equal(l1.ebx >>> 24, 2);
    assert.equal((l1.ebx >>> 16) & 0xff, 4);
    assert.equal(l1.ebx & 0xffff, 0x0800, 'CLFLUSH size kept');
    assert.ok(l1.ecx & (1 << 31));
    assert.ok(l1.edx & (1 << 28));
    assert.ok(l1.ecx & (1 << 26), 'XSAVE kept without clearXsave');
  });
  it('leaf 4: cores per package, sharing', () => {
    assert.equal(get(out, 4, 0)!.eax >>> 26, 3);
    assert.equal((get(out, 4, 0)!.eax >>> 14) & 0xfff, 0);
    assert.equal((get(out, 4, 3)!.eax >>> 14) & 0xfff, 3, 'L3 shared by all');
    assert.equal(get(out, 4, 0)!.eax & 0x3fff, 0x121);
  });
  it('leaf 0xB: x2APIC id in every subleaf and topology', () => {
    const sub = out.filter((x) => x.function === 0xb);
    assert.equal(sub.length, 3);
    for (const s of sub) assert.equal(s.edx, 2);
    assert.equal(sub[0]!.ebx, 1);
    assert.equal(sub[1]!.eax, 2);
    assert.equal(sub[1]!.ebx, 4);
    assert.equal((sub[1]!.ecx >> 8) & 0xff, 2);
    assert.equal((sub[2]!.ecx >> 8) & 0xff, 0);
  });
  it('hypervisor leaves: KVMKVMKVM signature, feature leaf passed through', () => {
    const sig = get(out, 0x40000000)!;
    const bytes = Buffer.alloc(12);
    bytes.writeUInt32LE(sig.ebx, 0);
    bytes.writeUInt32LE(sig.ecx, 4);
    bytes.writeUInt32LE(sig.edx, 8);
    assert.equal(bytes.toString('latin1'), 'KVMKVMKVM\0\0\0');
    assert.equal(sig.eax, 0x40000001);
    assert.equal(get(out, 0x40000001)!.eax, 0x1234);
    assert.equal(out.filter((x) => x.function === 0x40000000).length, 1);
  });
  it('clearXsave drops XSAVE/OSXSAVE and leaf 0xD', () => {
    const c = buildCpuid(supported, { vcpuId: 0, cpus: 1, clearXsave: true });
    const l1 = get(c, 1)!;
    assert.equal(l1.ecx & ((1 << 26) | (1 << 27)), 0);
    assert.ok(l1.ecx & (1 << 28), 'other bits kept');
    assert.equal(l1.edx & (1 << 28), 0, 'no HTT with one CPU');
    assert.equal(c.filter((x) => x.function === 0xd).length, 0);
  });
  it('does not modify its input and checks arguments', () => {
    assert.equal(supported[1]!.ebx, 0x00010800);
    assert.throws(() => buildCpuid(supported, { vcpuId: 4, cpus: 4 }), { code: 'ERR_INVALID_ARG' });
    assert.throws(() => buildCpuid(supported, { vcpuId: 0, cpus: 0 }), { code: 'ERR_INVALID_ARG' });
  });
  it('without a hypervisor feature leaf, the signature leaf is the last one', () => {
    const c = buildCpuid(supported.filter((x) => x.function !== 0x40000001), { vcpuId: 0, cpus: 1 });
    assert.equal(get(c, 0x40000000)!.eax, 0x40000000);
  });
});

describe('bootMsrs', () => {
  it('sets fast strings and WB MTRR default', () => {
    const m = new Map(bootMsrs().map((x) => [x.index, x.data]));
    assert.equal(m.get(0x1a0), 1n);
    assert.equal(m.get(0x2ff), 0x806n, "E (bit 11) | type WB (6)");
    assert.equal(m.get(0xc0000082), 0n);
  });
});
