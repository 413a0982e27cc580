import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fakeGuestMemory } from '../../lib/kvm/memory.js';
import { loadKernel, detectKernelFormat } from '../../lib/boot/kernel.js';
import { buildE820 } from '../../lib/boot/e820.js';
import { encodeCmdline } from '../../lib/boot/cmdline.js';
import { translate } from '../../lib/boot/page-tables.js';
import { FLAT_LOAD_START, PML4_START } from '../../lib/platform/layout.js';
import { MiB } from './boot-fixtures.js';

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as { code: string }).code;
  }
  return 'no error';
}

describe('format detection', () => {
  it('names what unknown bytes look like', () => {
    const gz = new Uint8Array(1024);
    gz.set([0x1f, 0x8b, 8]);
    assert.throws(() => detectKernelFormat(gz), (e: Error & { code: string }) => e.code === 'ERR_KERNEL_FORMAT' && /gzip/.test(e.message));
    assert.throws(() => detectKernelFormat(new Uint8Array(0)), /empty/);
    assert.throws(() => detectKernelFormat(new Uint8Array(4096)), /00 00 00/);
  });
  it('a 32-bit ELF without Multiboot header is refused', () => {
    const elf = new Uint8Array(64);
    elf.set([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1]);
    new DataView(elf.buffer).setUint16(18, 3, true);
    assert.equal(code(() => detectKernelFormat(elf)), 'ERR_KERNEL_FORMAT');
  });
});

describe('e820', () => {
  it('reserves EBDA..1 MiB (MP table, ACPI, BIOS) and skips the PCI hole', () => {
    const e = buildE820([
      { guestPhysAddr: 0, size: 0xc000_0000 },
      { guestPhysAddr: 0x1_0000_0000, size: 0x8000_0000 },
      { guestPhysAddr: 0x1_8000_0000, size: 0x8000_0000 },
    ]);
    assert.deepEqual(e, [
      { addr: 0, size: 0x9fc00, type: 1 },
      { addr: 0x9fc00, size: 0x60400, type: 2 },
      { addr: 0x100000, size: 0xc000_0000 - 0x100000, type: 1 },
      { addr: 0x1_0000_0000, size: 0x1_0000_0000, type: 1 },
    ]);
  });
  it('refuses bad layouts with ERR_RAM_LAYOUT', () => {
    assert.equal(code(() => buildE820([])), 'ERR_RAM_LAYOUT');
    assert.equal(code(() => buildE820([{ guestPhysAddr: 0x100000, size: MiB }])), 'ERR_RAM_LAYOUT');
    assert.equal(code(() => buildE820([{ guestPhysAddr: 0, size: 0xd000_0000 }])), 'ERR_RAM_LAYOUT');
    assert.equal(code(() => buildE820([{ guestPhysAddr: 0, size: 4 * MiB }, { guestPhysAddr: 2 * MiB, size: MiB }])), 'ERR_RAM_LAYOUT');
    assert.equal(code(() => buildE820([{ guestPhysAddr: 0, size: 4 * MiB + 1 }])), 'ERR_RAM_LAYOUT');
  });
});

describe('cmdline', () => {
  it('accepts up to the limit, refuses beyond', () => {
    assert.equal(encodeCmdline('abc', 3).length, 4);
    assert.equal(code(() => encodeCmdline('abcd', 3)), 'ERR_CMDLINE_TOO_LONG');
    assert.equal(code(() => encodeCmdline('x'.repeat(0x10000))), 'ERR_CMDLINE_TOO_LONG');
  });
});

describe('flat binaries', () => {
  const layout = [{ guestPhysAddr: 0, size: 16 * MiB }];
  const bin = new Uint8Array([0xf4, 0x90, 0x90]);
  it('real mode: CS = load >> 4, IP = entry offset', () => {
    const memory = fakeGuestMemory(layout);
    const s = loadKernel(bin, { memory, ramLayout: layout, format: 'flat', flatEntry: FLAT_LOAD_START + 1 });
    assert.equal(memory.readU8(FLAT_LOAD_START), 0xf4);
    assert.equal(s.sregs.cs?.selector, FLAT_LOAD_START >> 4);
    assert.equal(s.sregs.cs?.base, BigInt(FLAT_LOAD_START));
    assert.equal(s.regs.rip, 1n);
    assert.equal(s.sregs.cr0, 0x10n);
  });
  it('protected and long mode', () => {
    const memory = fakeGuestMemory(layout);
    const p = loadKernel(bin, { memory, ramLayout: layout, format: 'flat', flatMode: 'protected', flatLoadAddress: 0x200000 });
    assert.equal(p.regs.rip, 0x200000n);
    assert.equal(p.sregs.cs?.db, 1);
    const l = loadKernel(bin, { memory, ramLayout: layout, format: 'flat', flatMode: 'long', flatLoadAddress: 0x200000 });
    assert.equal(l.sregs.cs?.l, 1);
    assert.equal(translate(memory, PML4_START, 0x200000n), 0x200000n);
  });
  it('refuses bad placements', () => {
    const memory = fakeGuestMemory(layout);
    const base = { memory, ramLayout: layout, format: 'flat' as const };
    assert.equal(code(() => loadKernel(bin, { ...base, flatLoadAddress: 0x200000 })), 'ERR_KERNEL_ADDRESS'); // real mode above 1 MiB
    assert.equal(code(() => loadKernel(bin, { ...base, flatLoadAddress: 0x7000 })), 'ERR_KERNEL_ADDRESS'); // over the zero page
    assert.equal(code(() => loadKernel(bin, { ...base, flatLoadAddress: 32 * MiB, flatMode: 'long' })), 'ERR_KERNEL_ADDRESS');
    assert.equal(code(() => loadKernel(bin, { ...base, flatEntry: 0 })), 'ERR_INVALID_ARG');
  });
});
