import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fakeGuestMemory } from '../../lib/kvm/memory.js';
import { loadKernel, detectKernelFormat, type LoadOptions } from '../../lib/boot/kernel.js';
import { findMultibootHeader } from '../../lib/boot/multiboot.js';
import { BOOT_INFO_START } from '../../lib/platform/layout.js';
import { MiB, makeElf, multibootHeader } from './boot-fixtures.js';

const layout = [{ guestPhysAddr: 0, size: 32 * MiB }];

function elfKernel(flags = 0x3): Uint8Array {
  const text = new Uint8Array(0x1800);
  text.set(multibootHeader(flags), 0x40);
  text[0x100] = 0xf4; // hlt at the entry
  return makeElf({ elfClass: 32, entry: 0x100100, segments: [{ paddr: 0x100000, data: text, memsz: 0x3000 }] });
}

function aoutKernel(): Uint8Array {
  // A raw binary whose first 32 bytes are the header; loaded at 0x200000, bss to 0x204000.
  const img = new Uint8Array(0x2000);
  img.set(multibootHeader(0x10003, {
    header_addr: 0x200000, load_addr: 0x200000, load_end_addr: 0x202000, bss_end_addr: 0x204000, entry_addr: 0x200020,
  }));
  img[0x20] = 0xf4;
  img[0x1fff] = 0x77;
  return img;
}

function load(img: Uint8Array, extra: Partial<LoadOptions> = {}) {
  const memory = fakeGuestMemory(layout);
  const setup = loadKernel(img, { memory, ramLayout: layout, ...extra });
  return { memory, setup };
}

function cstr(memory: ReturnType<typeof fakeGuestMemory>, addr: number): string {
  let s = '';
  for (let c = memory.readU8(addr); c !== 0; c = memory.readU8(++addr)) s += String.fromCharCode(c);
  return s;
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as { code: string }).code;
  }
  return 'no error';
}

describe('Multiboot v1', () => {
  it('finds the header in the first 8 KiB and detects the format', () => {
    const img = elfKernel();
    const h = findMultibootHeader(img);
    assert.ok(h);
    assert.equal(h.flags, 3);
    assert.equal(detectKernelFormat(img), 'multiboot');
    assert.equal(detectKernelFormat(aoutKernel()), 'multiboot');
    const bad = aoutKernel();
    bad[8] ^= 1; // checksum broken
    assert.equal(findMultibootHeader(bad), undefined);
  });

  it('ELF32: entry state and info structure', () => {
    const mods = [
      { name: 'initrd.cpio', bytes: new Uint8Array(5000).fill(1) },
      { name: 'extra arg=1', bytes: new Uint8Array(10).fill(2) },
    ];
    const { memory, setup } = load(elfKernel(), { cmdline: 'debug loglevel=3', kernelName: '/boot/kern.elf', initrds: mods });
    assert.equal(setup.format, 'multiboot');
    assert.equal(setup.regs.rax, 0x2badb002n);
    assert.equal(setup.regs.rbx, BigInt(BOOT_INFO_START));
    assert.equal(setup.regs.rip, 0x100100n);
    assert.equal(setup.sregs.cr0, 0x11n);
    assert.equal(setup.sregs.cs?.db, 1);
    assert.notEqual(BOOT_INFO_START, 0);
    assert.equal(memory.readU8(0x100100), 0xf4);
    assert.equal(memory.readU8(0x102fff), 0, 'bss zeroed');

    const mbi = BOOT_INFO_START;
    const flags = memory.readU32(mbi);
    assert.equal(flags & 0x1, 0x1, 'mem_*');
    assert.equal(flags & 0x4, 0x4, 'cmdline');
    assert.equal(flags & 0x8, 0x8, 'mods');
    assert.equal(flags & 0x40, 0x40, 'mmap');
    assert.equal(flags & 0x200, 0x200, 'boot_loader_name');
    assert.equal(memory.readU32(mbi + 4), 639, 'mem_lower KiB');
    assert.equal(memory.readU32(mbi + 8), 31 * 1024, 'mem_upper KiB');
    assert.equal(cstr(memory, memory.readU32(mbi + 16)), '/boot/kern.elf debug loglevel=3');
    assert.equal(cstr(memory, memory.readU32(mbi + 64)), 'node-kvm');

    // mmap: entries with the size field before each
    const mmapLen = memory.readU32(mbi + 44);
    const mmapAddr = memory.readU32(mbi + 48);
    assert.equal(mmapLen, setup.e820.length * 24);
    setup.e820.forEach((e, i) => {
      const o = mmapAddr + i * 24;
      assert.equal(memory.readU32(o), 20);
      assert.equal(Number(memory.readU64(o + 4)), e.addr);
      assert.equal(Number(memory.readU64(o + 12)), e.size);
      assert.equal(memory.readU32(o + 20), e.type);
    });

    // modules: page aligned, above the kernel, each with its name
    assert.equal(memory.readU32(mbi + 20), 2);
    const modsAddr = memory.readU32(mbi + 24);
    let prevEnd = setup.kernelRange.end;
    mods.forEach((m, i) => {
      const start = memory.readU32(modsAddr + i * 16);
      const end = memory.readU32(modsAddr + i * 16 + 4);
      assert.equal(start % 4096, 0);
      assert.ok(start >= prevEnd);
      assert.equal(end - start, m.bytes.length);
      assert.equal(memory.readU8(start), m.bytes[0]);
      assert.equal(cstr(memory, memory.readU32(modsAddr + i * 16 + 8)), m.name);
      prevEnd = end;
    });
    assert.equal(setup.initrdRange?.start, memory.readU32(modsAddr));
  });

  it('cmdline is just the kernel name when there are no args; one initrd becomes module "initrd"', () => {
    const { memory } = load(elfKernel(), { initrd: new Uint8Array(4) });
    assert.equal(cstr(memory, memory.readU32(BOOT_INFO_START + 16)), 'kernel');
    assert.equal(cstr(memory, memory.readU32(memory.readU32(BOOT_INFO_START + 24) + 8)), 'initrd');
  });

  it('a.out kludge: loads load_addr..load_end_addr, zeroes to bss_end_addr, enters at entry_addr', () => {
    const memory = fakeGuestMemory(layout);
    memory.fill(0x202000, 0x2000, 0xcc);
    const setup = loadKernel(aoutKernel(), { memory, ramLayout: layout });
    assert.equal(setup.regs.rip, 0x200020n);
    assert.equal(memory.readU32(0x200000), 0x1badb002);
    assert.equal(memory.readU8(0x201fff), 0x77);
    assert.equal(memory.readU8(0x202000), 0);
    assert.equal(memory.readU8(0x203fff), 0);
    assert.deepEqual(setup.kernelRange, { start: 0x200000, end: 0x204000 });
  });

  it('unsupported requirement flags are ERR_MULTIBOOT_FLAGS', () => {
    assert.equal(code(() => load(elfKernel(0x3 | 0x8))), 'ERR_MULTIBOOT_FLAGS');
  });

  it('modules that do not fit are ERR_INITRD_TOO_LARGE', () => {
    assert.equal(code(() => load(elfKernel(), { initrds: [{ name: 'big', bytes: new Uint8Array(32 * MiB) }] })), 'ERR_INITRD_TOO_LARGE');
  });

  it('a.out kludge with addresses before the file start is ERR_KERNEL_FORMAT', () => {
    const img = new Uint8Array(0x1000);
    img.set(multibootHeader(0x10000, {
      header_addr: 0x201000, load_addr: 0x200000, load_end_addr: 0, bss_end_addr: 0, entry_addr: 0x201000,
    }));
    assert.equal(code(() => load(img)), 'ERR_KERNEL_FORMAT');
  });
});
