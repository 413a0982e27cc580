import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fakeGuestMemory } from '../../lib/kvm/memory.js';
import { loadKernel, detectKernelFormat } from '../../lib/boot/kernel.js';
import { parseSetupHeader } from '../../lib/boot/setup-header.js';
import { placeInitrd } from '../../lib/boot/boot-params.js';
import { translate } from '../../lib/boot/page-tables.js';
import { CMDLINE_START, GDT_START, PML4_START, ZERO_PAGE_START } from '../../lib/platform/layout.js';
import { MiB, makeBzImage } from './boot-fixtures.js';
import type { BootProtocol } from '../../lib/boot/bzimage.js';

const ram = (size: number): Array<{ guestPhysAddr: number; size: number }> => [{ guestPhysAddr: 0, size }];

function load(img: Uint8Array, extra: { cmdline?: string; initrd?: Uint8Array; size?: number; bootProtocol?: BootProtocol } = {}) {
  const layout = ram(extra.size ?? 64 * MiB);
  const memory = fakeGuestMemory(layout);
  const setup = loadKernel(img, {
    memory, ramLayout: layout,
    ...(extra.cmdline !== undefined ? { cmdline: extra.cmdline } : {}),
    ...(extra.initrd !== undefined ? { initrd: extra.initrd } : {}),
    ...(extra.bootProtocol !== undefined ? { bootProtocol: extra.bootProtocol } : {}),
  });
  return { memory, setup };
}

/** Nothing the loader writes (low structures, cmdline, kernel at 1 and 16 MiB) was written. */
function assertUntouched(memory: ReturnType<typeof fakeGuestMemory>): void {
  for (const [at, len] of [[0, 0x30000], [0x100000, 0x4000], [0x1000000, 0x4000]] as const) {
    assert.ok(memory.read(at, len).every((b) => b === 0), `guest RAM at 0x${at.toString(16)} was written`);
  }
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
  it('refuses protocol < 2.00 with ERR_KERNEL_TOO_OLD', () => {
    assert.equal(code(() => load(makeBzImage({ version: 0x01ff }))), 'ERR_KERNEL_TOO_OLD');
    assert.match(String((() => { try { load(makeBzImage({ version: 0x0104 })); } catch (e) { return (e as Error).message; } return ''; })()), /1\.04 is older than 2\.00/);
  });
  it('accepts protocols 2.00-2.05: fields they predate take their documented defaults', () => {
    // A 2.03 header ends at 0x230 (kernel_alignment and later do not exist yet).
    const img = makeBzImage({ version: 0x0203, headerEnd: 0x230, xloadflags: 0 });
    const h = parseSetupHeader(img);
    assert.equal(h.cmdline_size, 255, 'cmdline_size before 2.06');
    assert.equal(h.pref_address, 0);
    assert.equal(h.init_size, 0);
    const { setup } = load(img, { cmdline: 'x'.repeat(255) });
    assert.equal(setup.kernelRange.start, 0x100000, '1 MiB before pref_address existed');
    assert.equal(setup.sregs.cs?.l, 0, 'no xloadflags: the 32-bit entry');
    assert.equal(code(() => load(img, { cmdline: 'x'.repeat(256) })), 'ERR_CMDLINE_TOO_LONG');
    assert.doesNotThrow(() => load(makeBzImage({ version: 0x0200, headerEnd: 0x214 + 4, xloadflags: 0 })));
  });
  it('before 2.04 syssize is 16 bits and not trusted for a bzImage', () => {
    const img = makeBzImage({ version: 0x0203, headerEnd: 0x230 });
    new DataView(img.buffer).setUint32(0x1f4, 0xffff0001, true); // upper half: the old swap_dev
    assert.equal(parseSetupHeader(img).syssize, 1);
    new DataView(img.buffer).setUint16(0x1f4, 0xffff, true); // more than the file has: untrusted
    assert.doesNotThrow(() => load(img));
  });
  it('refuses a zImage (LOADED_HIGH clear)', () => {
    assert.equal(code(() => load(makeBzImage({ loadflags: 0 }))), 'ERR_KERNEL_TOO_OLD');
  });
  it('refuses a bad boot_flag when the format is forced', () => {
    const img = makeBzImage({ bootFlag: 0x1234 });
    assert.equal(code(() => parseSetupHeader(img)), 'ERR_KERNEL_FORMAT');
    assert.equal(code(() => detectKernelFormat(img)), 'ERR_KERNEL_FORMAT');
  });
  it('loads the protected-mode part by the file size: syssize may round up to 15 bytes past the end', () => {
    const payload = new Uint8Array(0x3000 - 15 + 16).map((_, i) => (i * 7) & 0xff); // 0x3001 bytes: 0x301 paragraphs
    const img = makeBzImage({ payload, syssize: 0x301 });
    const { memory, setup } = load(img);
    assert.equal(memory.readU8(0x1000000 + payload.length - 1), payload[payload.length - 1]);
    assert.equal(setup.kernelRange.start, 0x1000000);
    // Bytes after setup + syssize*16 (a signature, padding) are the file's and are loaded too.
    const longer = makeBzImage({ payload: new Uint8Array(0x3000 + 100).fill(0x5a), syssize: 0x300 });
    assert.equal(load(longer).memory.readU8(0x1000000 + 0x3000 + 99), 0x5a);
  });
  it('refuses a file cut inside the kernel with ERR_KERNEL_TRUNCATED, before writing RAM', () => {
    const img = makeBzImage(); // 0x3000 payload bytes, syssize 0x300
    assert.doesNotThrow(() => load(img.subarray(0, img.length - 15)));
    const layout = ram(64 * MiB);
    const memory = fakeGuestMemory(layout);
    assert.equal(code(() => loadKernel(img.subarray(0, img.length - 16), { memory, ramLayout: layout, cmdline: 'x' })), 'ERR_KERNEL_TRUNCATED');
    assertUntouched(memory);
    assert.equal(code(() => load(makeBzImage({ syssize: 0x1000 }))), 'ERR_KERNEL_TRUNCATED');
    assert.equal(code(() => parseSetupHeader(img.subarray(0, 0x210))), 'ERR_KERNEL_TRUNCATED');
    assert.match(String((() => { try { load(img.subarray(0, 0x1000)); } catch (e) { return (e as Error).message; } return ''; })()), /syssize says 768 paragraphs/);
  });
  it('refuses a header claiming more setup sectors than the file has', () => {
    const img = makeBzImage({ payload: new Uint8Array(0x400) });
    new DataView(img.buffer).setUint8(0x1f1, 60); // 61 sectors = 31232 bytes; the file has 0xe00
    const layout = ram(64 * MiB);
    const memory = fakeGuestMemory(layout);
    assert.equal(code(() => loadKernel(img, { memory, ramLayout: layout })), 'ERR_KERNEL_TRUNCATED');
    assertUntouched(memory);
  });
  it('refuses syssize 0 with ERR_KERNEL_FORMAT, before writing RAM', () => {
    const layout = ram(64 * MiB);
    const memory = fakeGuestMemory(layout);
    assert.equal(code(() => loadKernel(makeBzImage({ syssize: 0 }), { memory, ramLayout: layout })), 'ERR_KERNEL_FORMAT');
    assertUntouched(memory);
  });
  it('a 64-bit entry needs more than 0x200 bytes of kernel', () => {
    assert.equal(code(() => load(makeBzImage({ payload: new Uint8Array(0x200) }))), 'ERR_KERNEL_TRUNCATED');
    assert.doesNotThrow(() => load(makeBzImage({ payload: new Uint8Array(0x200), xloadflags: 0 })));
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
  it('loads at the first kernel_alignment boundary above 1 MiB when pref_address does not fit and the kernel is relocatable', () => {
    const { setup } = load(makeBzImage({ prefAddress: 0x10000000 }), { size: 32 * MiB });
    assert.equal(setup.kernelRange.start, 0x200000, 'kernel_alignment 2 MiB');
    assert.equal(setup.regs.rip, BigInt(0x200000 + 0x200));
    // No room at the aligned address: 1 MiB (the kernel realigns itself if it can).
    const tight = load(makeBzImage({ prefAddress: 0x10000000, initSize: 16 * MiB - 0x100000 - 0x9000 }), { size: 16 * MiB + 0x1000 }).setup;
    assert.equal(tight.kernelRange.start, 0x100000);
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

describe('bzImage 32-bit boot protocol entry', () => {
  // A kernel without XLF_KERNEL_64, linked at 1 MiB like memtest86+ ia32: not relocatable.
  const img32 = makeBzImage({ xloadflags: 0, relocatable: 0, prefAddress: 0x100000, code32Start: 0x100000 });
  const { memory, setup } = load(img32, { cmdline: 'console=ttyS0,115200' });

  it('enters flat 32-bit protected mode at code32_start with ESI = zero page, paging and interrupts off', () => {
    assert.equal(setup.entry, 0x100000);
    assert.equal(setup.regs.rip, 0x100000n);
    assert.equal(setup.regs.rsi, BigInt(ZERO_PAGE_START));
    assert.equal(setup.regs.rflags, 2n, 'IF clear');
    assert.equal(setup.sregs.cr0, 0x11n, 'PE, no PG');
    assert.equal(setup.sregs.efer, 0n);
    assert.equal(setup.sregs.cr4, 0n);
    for (const s of ['ds', 'es', 'ss'] as const) assert.equal(setup.sregs[s]?.selector, 0x18, s);
    const cs = setup.sregs.cs!;
    assert.deepEqual([cs.selector, cs.l, cs.db, cs.base, cs.limit], [0x10, 0, 1, 0n, 0xffffffff]);
    assert.equal(setup.sregs.ds?.limit, 0xffffffff);
  });
  it('GDT: __BOOT_CS a flat 32-bit code segment, __BOOT_DS a flat data segment', () => {
    assert.equal(memory.readU64(GDT_START + 0x10), 0x00cf9b000000ffffn);
    assert.equal(memory.readU64(GDT_START + 0x18), 0x00cf93000000ffffn);
  });
  it('the zero page says where the kernel went and where the cmdline is', () => {
    assert.equal(memory.readU32(ZERO_PAGE_START + 0x214), 0x100000, 'code32_start');
    assert.equal(memory.readU32(ZERO_PAGE_START + 0x228), CMDLINE_START);
    assert.equal(memory.readU8(0x100000 + 0x123), 0x23, 'kernel at 1 MiB');
  });
  it('a relocated kernel: code32_start (the default 0x100000) follows the kernel', () => {
    const { setup: s, memory: m } = load(makeBzImage({ xloadflags: 0 })); // relocatable, pref 16 MiB
    assert.equal(s.entry, 0x1000000);
    assert.equal(m.readU32(ZERO_PAGE_START + 0x214), 0x1000000);
    const hooked = load(makeBzImage({ xloadflags: 0, code32Start: 0x100040 })).setup;
    assert.equal(hooked.entry, 0x1000040, 'an entry inside the kernel keeps its offset');
  });
  it('asked for: a 64-bit kernel entered through its 32-bit entry', () => {
    const { setup: s } = load(makeBzImage(), { bootProtocol: '32-bit' });
    assert.equal(s.regs.rip, 0x1000000n);
    assert.equal(s.sregs.cs?.l, 0);
    assert.equal(s.sregs.cr0, 0x11n);
  });
  it('asked for 64-bit on a 2.12+ kernel without XLF_KERNEL_64: ERR_KERNEL_ARCH', () => {
    assert.equal(code(() => load(img32, { bootProtocol: '64-bit' })), 'ERR_KERNEL_ARCH');
    // Before 2.12 the header cannot say; the caller knows best.
    const old = makeBzImage({ version: 0x020a, headerEnd: 0x264, xloadflags: 0 });
    assert.equal(load(old, { bootProtocol: '64-bit' }).setup.sregs.cs?.l, 1);
    assert.equal(code(() => load(makeBzImage(), { bootProtocol: 'x86' as BootProtocol })), 'ERR_INVALID_ARG');
  });
  it('refuses a code32_start outside RAM or the loaded kernel with ERR_KERNEL_ADDRESS, before writing RAM', () => {
    for (const c of [0xfff00000, 0x40000000, 0x10000, 0x100000 + 0x3000]) {
      const layout = ram(64 * MiB);
      const mem = fakeGuestMemory(layout);
      const bad = makeBzImage({ xloadflags: 0, relocatable: 0, prefAddress: 0x100000, code32Start: c });
      assert.equal(code(() => loadKernel(bad, { memory: mem, ramLayout: layout })), 'ERR_KERNEL_ADDRESS', `code32_start 0x${c.toString(16)}`);
      assertUntouched(mem);
    }
  });
});
