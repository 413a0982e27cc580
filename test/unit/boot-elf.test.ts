import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fakeGuestMemory } from '../../lib/kvm/memory.js';
import { loadKernel, detectKernelFormat, type LoadOptions } from '../../lib/boot/kernel.js';
import { BOOT_INFO_START, CMDLINE_START, GDT_START, ZERO_PAGE_START } from '../../lib/platform/layout.js';
import { MiB, makeElf, u64le } from './boot-fixtures.js';

const layout = [{ guestPhysAddr: 0, size: 64 * MiB }];
const text = new Uint8Array(0x2000).map((_, i) => (i * 7) & 0xff);
const data = new Uint8Array(0x1000).fill(0x5a);
const VBASE = 0xffffffff81000000n;

function vmlinux(opts: { pvh?: boolean; entry?: bigint | number } = {}): Uint8Array {
  return makeElf({
    entry: opts.entry ?? 0x1000000,
    segments: [
      { paddr: 0x1000000, vaddr: VBASE, data: text },
      // data + 0x3000 bytes of bss
      { paddr: 0x1002000, vaddr: VBASE + 0x2000n, data, memsz: 0x4000 },
    ],
    notes: opts.pvh ? [
      { name: 'Xen', type: 6, desc: new TextEncoder().encode('linux\0') },
      { name: 'Xen', type: 18, desc: u64le(0x1000850) },
    ] : [{ name: 'GNU', type: 3, desc: new Uint8Array(20) }],
  });
}

function load(img: Uint8Array, extra: Partial<LoadOptions> = {}) {
  const memory = fakeGuestMemory(layout);
  // Pretend the bss had garbage, to see it zeroed.
  memory.fill(0x1003000, 0x3000, 0xee);
  const setup = loadKernel(img, { memory, ramLayout: layout, ...extra });
  return { memory, setup };
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as { code: string }).code;
  }
  return 'no error';
}

describe('ELF vmlinux', () => {
  it('detects elf64 without and pvh with the PHYS32_ENTRY note', () => {
    assert.equal(detectKernelFormat(vmlinux()), 'elf64');
    assert.equal(detectKernelFormat(vmlinux({ pvh: true })), 'pvh');
  });
  it('loads PT_LOAD segments at p_paddr and zeroes the bss', () => {
    const { memory, setup } = load(vmlinux());
    assert.deepEqual([...memory.read(0x1000000, 16)], [...text.subarray(0, 16)]);
    assert.equal(memory.readU8(0x1002fff), 0x5a);
    assert.equal(memory.readU8(0x1003000), 0);
    assert.equal(memory.readU8(0x1005fff), 0);
    assert.deepEqual(setup.kernelRange, { start: 0x1000000, end: 0x1006000 });
  });
  it('64-bit entry: e_entry (physical) with RSI = a zero page we built', () => {
    const { memory, setup } = load(vmlinux(), { cmdline: 'root=/dev/vda', initrd: new Uint8Array(100).fill(1) });
    assert.equal(setup.format, 'elf64');
    assert.equal(setup.regs.rip, 0x1000000n);
    assert.equal(setup.regs.rsi, BigInt(ZERO_PAGE_START));
    assert.equal(setup.sregs.efer, 0x500n);
    const zp = ZERO_PAGE_START;
    assert.equal(memory.readU16(zp + 0x1fe), 0xaa55);
    assert.equal(memory.readU32(zp + 0x202), 0x53726448);
    assert.equal(memory.readU16(zp + 0x206), 0x020f);
    assert.equal(memory.readU8(zp + 0x210), 0xff);
    assert.equal(memory.readU8(zp + 0x211) & 1, 1);
    assert.equal(memory.readU32(zp + 0x228), CMDLINE_START);
    assert.equal(memory.readU32(zp + 0x238), 2047);
    assert.equal(memory.readU32(zp + 0x230), 0x200000);
    assert.equal(memory.readU32(zp + 0x218), setup.initrdRange!.start);
    assert.equal(memory.readU32(zp + 0x21c), 100);
    assert.equal(memory.readU8(zp + 0x1e8), 3);
  });
  it('translates a virtual e_entry through its segment', () => {
    const { setup } = load(vmlinux({ entry: VBASE + 0x40n }));
    assert.equal(setup.regs.rip, 0x1000040n);
    assert.equal(code(() => load(vmlinux({ entry: 0x5000000 }))), 'ERR_KERNEL_FORMAT');
  });
  it('PVH: 32-bit protected mode at the note entry, EBX = hvm_start_info', () => {
    const initrd = new Uint8Array(0x1800).fill(3);
    const { memory, setup } = load(vmlinux({ pvh: true }), { cmdline: 'console=hvc0', initrd, rsdpAddress: 0xe0000 });
    assert.equal(setup.format, 'pvh');
    assert.equal(setup.regs.rip, 0x1000850n);
    assert.equal(setup.regs.rbx, BigInt(BOOT_INFO_START));
    assert.equal(setup.sregs.cr0, 0x11n, 'PE|ET, paging off');
    assert.equal(setup.sregs.efer, 0n);
    assert.equal(setup.sregs.cs?.db, 1);
    assert.equal(setup.sregs.cs?.l, 0);
    assert.equal(setup.sregs.cs?.limit, 0xffffffff);
    assert.equal(setup.sregs.ds?.limit, 0xffffffff);
    assert.equal(memory.readU64(GDT_START + 0x10), 0x00cf9b000000ffffn);
    const si = BOOT_INFO_START;
    assert.equal(memory.readU32(si), 0x336ec578);
    assert.equal(memory.readU32(si + 4), 1);
    assert.equal(memory.readU32(si + 12), 1, 'nr_modules');
    assert.equal(Number(memory.readU64(si + 24)), CMDLINE_START);
    assert.equal(new TextDecoder().decode(memory.read(CMDLINE_START, 12)), 'console=hvc0');
    assert.equal(Number(memory.readU64(si + 32)), 0xe0000, 'rsdp_paddr');
    const mod = Number(memory.readU64(si + 16));
    assert.equal(Number(memory.readU64(mod)), setup.initrdRange!.start);
    assert.equal(Number(memory.readU64(mod + 8)), initrd.length);
    const mm = Number(memory.readU64(si + 40));
    const n = memory.readU32(si + 48);
    assert.equal(n, 3);
    assert.deepEqual(
      Array.from({ length: n }, (_, i) => [Number(memory.readU64(mm + i * 24)), Number(memory.readU64(mm + i * 24 + 8)), memory.readU32(mm + i * 24 + 16)]),
      setup.e820.map((e) => [e.addr, e.size, e.type]));
  });
  it('forcing pvh without the note is ERR_KERNEL_FORMAT', () => {
    assert.equal(code(() => load(vmlinux(), { format: 'pvh' })), 'ERR_KERNEL_FORMAT');
  });
});

describe('ELF checks', () => {
  it('other architectures are ERR_KERNEL_ARCH', () => {
    const arm = makeElf({ machine: 183, entry: 0x1000000, segments: [{ paddr: 0x1000000, data: text }] });
    assert.equal(code(() => detectKernelFormat(arm)), 'ERR_KERNEL_ARCH');
    assert.equal(code(() => load(arm, { format: 'elf64' })), 'ERR_KERNEL_ARCH');
    const big = vmlinux();
    big[5] = 2;
    assert.equal(code(() => load(big, { format: 'elf64' })), 'ERR_KERNEL_ARCH');
  });
  it('a segment past the end of the file is ERR_KERNEL_TRUNCATED', () => {
    const img = makeElf({ entry: 0x1000000, segments: [{ paddr: 0x1000000, data: text, filesz: text.length + 1, memsz: 0x4000 }] });
    assert.equal(code(() => load(img)), 'ERR_KERNEL_TRUNCATED');
    const img2 = vmlinux();
    assert.equal(code(() => load(img2.subarray(0, img2.length - 10))), 'ERR_KERNEL_TRUNCATED');
  });
  it('p_filesz > p_memsz is ERR_KERNEL_FORMAT', () => {
    const img = makeElf({ entry: 0x1000000, segments: [{ paddr: 0x1000000, data: text, memsz: 16 }] });
    assert.equal(code(() => load(img)), 'ERR_KERNEL_FORMAT');
  });
  it('a segment outside RAM or over boot data is ERR_KERNEL_ADDRESS, and nothing is written', () => {
    const high = makeElf({ entry: 0x3fff000, segments: [{ paddr: 0x3fff000, data: text }] });
    const memory = fakeGuestMemory(layout);
    assert.equal(code(() => loadKernel(high, { memory, ramLayout: layout })), 'ERR_KERNEL_ADDRESS');
    assert.equal(memory.readU8(0x3fff001), 0);
    const low = makeElf({ entry: 0x7000, segments: [{ paddr: 0x7000, data: text }] });
    assert.equal(code(() => load(low)), 'ERR_KERNEL_ADDRESS');
  });
  it('no program headers is ERR_KERNEL_FORMAT', () => {
    const img = vmlinux();
    new DataView(img.buffer).setUint16(0x38, 0, true);
    assert.equal(code(() => load(img)), 'ERR_KERNEL_FORMAT');
  });
});
