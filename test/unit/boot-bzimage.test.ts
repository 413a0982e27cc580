import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fakeGuestMemory } from '../../lib/kvm/memory.js';
import { loadKernel, detectKernelFormat } from '../../lib/boot/kernel.js';
import { parseSetupHeader } from '../../lib/boot/setup-header.js';
import { placeInitrd } from '../../lib/boot/boot-params.js';
import { translate } from '../../lib/boot/page-tables.js';
import { CMDLINE_START, GDT_START, PML4_START, ZERO_PAGE_START } from '../../lib/platform/layout.js';
import { MiB, makeBzImage } from './boot-fixtures.js';

const ram = (size: number): Array<{ guestPhysAddr: number; size: number }> => [{ guestPhysAddr: 0, size }];

function load(img: Uint8Array, extra: { cmdline?: string; initrd?: Uint8Array; size?: number } = {}) {
  const layout = ram(extra.size ?? 64 * MiB);
  const memory = fakeGuestMemory(layout);
  const setup = loadKernel(img, {
    memory, ramLayout: layout,
    ...(extra.cmdline !== undefined ? { cmdline: extra.cmdline } : {}),
    ...(extra.initrd !== undefined ? { initrd: extra.initrd } : {}),
  });
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

describe('bzImage setup header checks', () => {
  it('detects a bzImage by boot_flag + HdrS', () => {
    assert.equal(detectKernelFormat(makeBzImage()), 'bzimage');
  });
  it('refuses protocol < 2.06 with ERR_KERNEL_TOO_OLD', () => {
    assert.equal(code(() => load(makeBzImage({ version: 0x0205 }))), 'ERR_KERNEL_TOO_OLD');
    assert.match(String((() => { try { load(makeBzImage({ version: 0x0204 })); } catch (e) { return (e as Error).message; } return ''; })()), /2\.04/);
  });
  it('refuses a zImage (LOADED_HIGH clear)', () => {
    assert.equal(code(() => load(makeBzImage({ loadflags: 0 }))), 'ERR_KERNEL_TOO_OLD');
  });
  it('refuses a kernel without XLF_KERNEL_64', () => {
    assert.equal(code(() => load(makeBzImage({ xloadflags: 0 }))), 'ERR_KERNEL_ARCH');
  });
  it('refuses a bad boot_flag when the format is forced', () => {
    const img = makeBzImage({ bootFlag: 0x1234 });
    assert.equal(code(() => parseSetupHeader(img)), 'ERR_KERNEL_FORMAT');
    assert.equal(code(() => detectKernelFormat(img)), 'ERR_KERNEL_FORMAT');
  });
  it('refuses a truncated image (shorter than setup + syssize*16)', () => {
    const img = makeBzImage();
    assert.equal(code(() => load(img.subarray(0, img.length - 17))), 'ERR_KERNEL_TRUNCATED');
    assert.equal(code(() => load(makeBzImage({ syssize: 0x1000 }))), 'ERR_KERNEL_TRUNCATED');
    assert.equal(code(() => parseSetupHeader(img.subarray(0, 0x210))), 'ERR_KERNEL_TRUNCATED');
  });
  it('setup_sects 0 means 4', () => {
    const a = makeBzImage({ setupSects: 0 });
    assert.equal(parseSetupHeader(a).setup_sects, 4);
    const { memory } = load(a);
    // payload byte i is i & 0xff; loaded at pref_address
    assert.equal(memory.readU8(0x1000000 + 0x123), 0x23);
  });
  it('refuses a kernel whose init_size does not fit RAM', () => {
    assert.equal(code(() => load(makeBzImage({ initSize: 60 * MiB }), { size: 32 * MiB })), 'ERR_KERNEL_TOO_LARGE');
  });
  it('loads at 1 MiB when pref_address does not fit and the kernel is relocatable', () => {
    const { setup } = load(makeBzImage({ prefAddress: 0x10000000 }), { size: 32 * MiB });
    assert.equal(setup.kernelRange.start, 0x100000);
    assert.equal(setup.regs.rip, BigInt(0x100000 + 0x200));
    assert.equal(code(() => load(makeBzImage({ prefAddress: 0x10000000, relocatable: 0 }), { size: 32 * MiB })), 'ERR_KERNEL_TOO_LARGE');
  });
  it('refuses a command line longer than cmdline_size', () => {
    assert.equal(code(() => load(makeBzImage({ cmdlineSize: 10 }), { cmdline: 'x'.repeat(11) })), 'ERR_CMDLINE_TOO_LONG');
    assert.doesNotThrow(() => load(makeBzImage({ cmdlineSize: 10 }), { cmdline: 'x'.repeat(10) }));
    assert.equal(code(() => load(makeBzImage(), { cmdline: 'a\0b' })), 'ERR_CMDLINE_INVALID');
  });
});

describe('bzImage zero page and entry state', () => {
  const initrd = new Uint8Array(3 * 4096 + 5).fill(0xab);
  const img = makeBzImage();
  const { memory, setup } = load(img, { cmdline: 'console=ttyS0 quiet', initrd });
  const zp = ZERO_PAGE_START;

  it('copies the setup header at 0x1f1 and fills the loader fields', () => {
    for (let o = 0x1f1; o < 0x210; o++) assert.equal(memory.readU8(zp + o), img[o], `byte 0x${o.toString(16)}`);
    assert.equal(memory.readU32(zp + 0x202), 0x53726448);
    assert.equal(memory.readU8(zp + 0x210), 0xff, 'type_of_loader');
    assert.equal(memory.readU8(zp + 0x211) & 0x81, 0x81, 'LOADED_HIGH | CAN_USE_HEAP');
    assert.equal(memory.readU16(zp + 0x224), 0xfe00, 'heap_end_ptr');
    assert.equal(memory.readU32(zp + 0x214), 0x1000000, 'code32_start = load address');
  });
  it('cmd_line_ptr (0x228) points at the NUL-terminated cmdline', () => {
    assert.equal(memory.readU32(zp + 0x228), CMDLINE_START);
    assert.equal(memory.readU32(zp + 0xc8), 0, 'ext_cmd_line_ptr');
    const s = memory.read(CMDLINE_START, 20);
    assert.equal(new TextDecoder().decode(s.subarray(0, 19)), 'console=ttyS0 quiet');
    assert.equal(s[19], 0);
  });
  it('ramdisk_image (0x218) / ramdisk_size (0x21c) describe the initrd, page aligned, high, clear of the kernel', () => {
    const start = memory.readU32(zp + 0x218);
    assert.equal(memory.readU32(zp + 0x21c), initrd.length);
    assert.equal(memory.readU32(zp + 0xc0), 0);
    assert.equal(memory.readU32(zp + 0xc4), 0);
    assert.equal(start % 4096, 0);
    assert.deepEqual(setup.initrdRange, { start, end: start + initrd.length });
    assert.ok(start >= setup.kernelRange.end || start + initrd.length <= setup.kernelRange.start);
    assert.ok(start + initrd.length <= 64 * MiB);
    assert.ok(64 * MiB - (start + initrd.length) < 4096, 'as high as possible');
    assert.equal(memory.readU8(start), 0xab);
    assert.equal(memory.readU8(start + initrd.length - 1), 0xab);
  });
  it('e820_entries (0x1e8) and e820_table (0x2d0)', () => {
    const n = memory.readU8(zp + 0x1e8);
    assert.equal(n, setup.e820.length);
    assert.equal(n, 3);
    const entry = (i: number) => ({
      addr: Number(memory.readU64(zp + 0x2d0 + i * 20)),
      size: Number(memory.readU64(zp + 0x2d0 + i * 20 + 8)),
      type: memory.readU32(zp + 0x2d0 + i * 20 + 16),
    });
    assert.deepEqual(entry(0), { addr: 0, size: 0x9fc00, type: 1 });
    assert.deepEqual(entry(1), { addr: 0x9fc00, size: 0x100000 - 0x9fc00, type: 2 });
    assert.deepEqual(entry(2), { addr: 0x100000, size: 63 * MiB, type: 1 });
  });
  it('enters startup_64 in long mode with RSI = zero page', () => {
    assert.equal(setup.format, 'bzimage');
    assert.equal(setup.regs.rip, 0x1000200n);
    assert.equal(setup.regs.rsi, BigInt(zp));
    assert.equal(setup.regs.rflags, 2n);
    assert.equal(setup.sregs.cs?.selector, 0x10);
    assert.equal(setup.sregs.cs?.l, 1);
    assert.equal(setup.sregs.cs?.db, 0);
    assert.equal(setup.sregs.ds?.selector, 0x18);
    assert.equal(setup.sregs.cr0, 0x80000011n);
    assert.equal(setup.sregs.cr4, 0x20n);
    assert.equal(setup.sregs.efer, 0x500n);
    assert.equal(setup.sregs.cr3, BigInt(PML4_START));
    assert.equal(setup.sregs.gdt?.base, BigInt(GDT_START));
  });
  it('GDT has a 64-bit code descriptor at 0x10 and a data descriptor at 0x18', () => {
    assert.equal(memory.readU64(GDT_START), 0n);
    assert.equal(memory.readU64(GDT_START + 0x10), 0x00af9b000000ffffn);
    assert.equal(memory.readU64(GDT_START + 0x18), 0x00cf93000000ffffn);
  });
  it('page tables identity-map 0..4 GiB with 2 MiB pages', () => {
    for (const a of [0n, 0x1000200n, 0x12345678n, 0xbfffffffn, 0xfee00000n, 0xffffffffn]) {
      assert.equal(translate(memory, PML4_START, a), a);
    }
    assert.equal(translate(memory, PML4_START, 0x1_0000_0000n), undefined);
  });
});

describe('initrd placement', () => {
  it('stays below initrd_addr_max', () => {
    const { setup } = load(makeBzImage({ initrdAddrMax: 0x2000000 - 1 }), { initrd: new Uint8Array(8192) });
    assert.deepEqual(setup.initrdRange, { start: 0x2000000 - 8192, end: 0x2000000 });
  });
  it('moves below the kernel when the space above is too small', () => {
    const r = placeInitrd(ram(64 * MiB), 4 * MiB, 0x80000000, { start: 16 * MiB, end: 62 * MiB });
    assert.deepEqual(r, { start: 12 * MiB, end: 16 * MiB });
  });
  it('ERR_INITRD_TOO_LARGE when it fits nowhere', () => {
    assert.equal(code(() => load(makeBzImage(), { initrd: new Uint8Array(60 * MiB) })), 'ERR_INITRD_TOO_LARGE');
  });
});
