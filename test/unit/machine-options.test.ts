// Machine inputs that must be refused with a code before any VM exists (or, for the kernel's
// own limits, before guest RAM is written): the option resolver and the loaders, without
// /dev/kvm. test/kvm/machine-errors.test.ts checks the same through Machine.create.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { totalmem } from 'node:os';
import { resolveOptions, type MachineOptions } from '../../lib/machine/options.js';
import { loadKernel } from '../../lib/boot/kernel.js';
import { fakeGuestMemory } from '../../lib/kvm/memory.js';
import { MiB, makeBzImage, makeElf } from './boot-fixtures.js';

const EM_AARCH64 = 183;
const EM_RISCV = 243;

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof Error, 'throws an Error');
    assert.ok((e as Error).message.length > 10, `message is explanatory: ${(e as Error).message}`);
    return (e as { code?: string }).code ?? 'no code';
  }
  return 'no error';
}

const kernel = makeBzImage();
const resolve = (o: Partial<MachineOptions>, maxVcpus = 8): ReturnType<typeof resolveOptions> =>
  resolveOptions({ kernel, ...o }, maxVcpus);

function load(image: Uint8Array, o: { memory?: number; cmdline?: string; initrd?: Uint8Array } = {}): void {
  const ramLayout = [{ guestPhysAddr: 0, size: o.memory ?? 64 * MiB }];
  loadKernel(image, {
    memory: fakeGuestMemory(ramLayout), ramLayout,
    ...(o.cmdline !== undefined ? { cmdline: o.cmdline } : {}),
    ...(o.initrd !== undefined ? { initrd: o.initrd } : {}),
  });
}

describe('machine options: memory', () => {
  it('accepts 16M, the minimum', () => {
    assert.equal(resolve({ memory: '16M' }).memory, 16 * MiB);
  });
  it('refuses less than 16 MiB', () => {
    assert.equal(codeOf(() => resolve({ memory: '15M' })), 'ERR_INVALID_MEMORY');
    assert.equal(codeOf(() => resolve({ memory: 16 * MiB - 4096 })), 'ERR_INVALID_MEMORY');
  });
  it('refuses more than the host has', () => {
    const gib = Math.ceil(totalmem() / 1024 ** 3) + 1;
    assert.equal(codeOf(() => resolve({ memory: `${gib}G` })), 'ERR_MEMORY_TOO_LARGE');
  });
  it('refuses sizes that are not sizes', () => {
    for (const memory of ['lots', '-1M', '1.5G', 0, -4096, 1.5]) {
      assert.equal(codeOf(() => resolve({ memory })), 'ERR_INVALID_MEMORY', String(memory));
    }
    assert.equal(codeOf(() => resolve({ memory: 32 * MiB + 1 })), 'ERR_INVALID_MEMORY');
  });
});

describe('machine options: cpus', () => {
  it('refuses 0, negatives and fractions', () => {
    for (const cpus of [0, -1, 1.5, Number.NaN]) assert.equal(codeOf(() => resolve({ cpus })), 'ERR_INVALID_CPUS', String(cpus));
  });
  it('refuses more than the KVM limit it is given, and names the limit', () => {
    assert.equal(resolve({ cpus: 4 }, 4).cpus, 4);
    assert.equal(codeOf(() => resolve({ cpus: 5 }, 4)), 'ERR_INVALID_CPUS');
    assert.throws(() => resolve({ cpus: 5 }, 4), /1 to 4/);
  });
});

describe('machine options: kernel', () => {
  it('refuses a missing, empty or unreadable kernel', () => {
    assert.equal(codeOf(() => resolveOptions({} as MachineOptions, 1)), 'ERR_NO_KERNEL');
    assert.equal(codeOf(() => resolve({ kernel: new Uint8Array(0) })), 'ERR_KERNEL_FORMAT');
    assert.equal(codeOf(() => resolve({ kernel: '/nonexistent/bzImage' })), 'ERR_FILE');
    assert.equal(codeOf(() => resolve({ kernel: '/' })), 'ERR_FILE');
  });
  it('refuses an ELF kernel for another architecture', () => {
    for (const machine of [EM_AARCH64, EM_RISCV]) {
      const elf = makeElf({ machine, entry: 0x1000000, segments: [{ paddr: 0x1000000, data: new Uint8Array(64) }] });
      assert.equal(codeOf(() => load(elf)), 'ERR_KERNEL_ARCH', `e_machine ${machine}`);
    }
    const elf32arm = makeElf({ elfClass: 32, machine: 40, entry: 0x100000, segments: [{ paddr: 0x100000, data: new Uint8Array(64) }] });
    assert.equal(codeOf(() => load(elf32arm)), 'ERR_KERNEL_ARCH');
  });
  it('refuses a truncated bzImage', () => {
    assert.equal(codeOf(() => load(kernel.subarray(0, kernel.length - 4096))), 'ERR_KERNEL_TRUNCATED');
    assert.equal(codeOf(() => load(kernel.subarray(0, 0x210))), 'ERR_KERNEL_TRUNCATED');
  });
  it('refuses a bootProtocol other than 32-bit or 64-bit', () => {
    assert.equal(codeOf(() => resolve({ bootProtocol: '16-bit' as '32-bit' })), 'ERR_INVALID_ARG');
    assert.equal(resolve({ bootProtocol: '32-bit' }).bootProtocol, '32-bit');
  });
  it('refuses bytes that are no kernel, saying what they look like', () => {
    assert.throws(() => load(Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3])), (e: Error & { code?: string }) =>
      e.code === 'ERR_KERNEL_FORMAT' && /gzip/.test(e.message));
  });
});

describe('machine options: initrd', () => {
  it('refuses an initrd as large as RAM before a VM exists', () => {
    assert.equal(codeOf(() => resolve({ memory: '16M', initrd: new Uint8Array(16 * MiB) })), 'ERR_INITRD_TOO_LARGE');
  });
  it('refuses an initrd smaller than RAM that does not fit beside the kernel', () => {
    // 32 MiB RAM, the kernel at 16 MiB: 20 MiB fits neither above nor below it.
    assert.equal(codeOf(() => load(kernel, { memory: 32 * MiB, initrd: new Uint8Array(20 * MiB) })), 'ERR_INITRD_TOO_LARGE');
    load(kernel, { memory: 32 * MiB, initrd: new Uint8Array(8 * MiB) });
  });
});

describe('machine options: kernel command line', () => {
  it('refuses a cmdline longer than the kernel\'s cmdline_size', () => {
    const small = makeBzImage({ cmdlineSize: 255 });
    load(small, { cmdline: 'x'.repeat(255) });
    assert.equal(codeOf(() => load(small, { cmdline: 'x'.repeat(256) })), 'ERR_CMDLINE_TOO_LONG');
    assert.throws(() => load(small, { cmdline: 'x'.repeat(300) }), /300 bytes.*at most 255/);
  });
  it('refuses a cmdline longer than 2047 bytes for a vmlinux', () => {
    const elf = makeElf({ entry: 0x1000000, segments: [{ paddr: 0x1000000, data: new Uint8Array(64) }] });
    load(elf, { cmdline: 'y'.repeat(2047) });
    assert.equal(codeOf(() => load(elf, { cmdline: 'y'.repeat(2048) })), 'ERR_CMDLINE_TOO_LONG');
  });
  it('refuses a NUL inside the cmdline', () => {
    assert.equal(codeOf(() => load(kernel, { cmdline: 'console=ttyS0\0quiet' })), 'ERR_CMDLINE_INVALID');
  });
});

describe('virtio-console ports', () => {
  it('refuses empty, too long, duplicate or malformed port names with codes', () => {
    assert.equal(codeOf(() => resolve({ ports: [{ name: '' }] })), 'ERR_INVALID_PORT');
    assert.equal(codeOf(() => resolve({ ports: [{ name: 'p'.repeat(256) }] })), 'ERR_INVALID_PORT');
    assert.equal(codeOf(() => resolve({ ports: [{ name: 'a' }, { name: 'a' }] })), 'ERR_DUPLICATE_PORT');
    assert.equal(codeOf(() => resolve({ ports: 'a' as never })), 'ERR_INVALID_PORT');
    assert.deepEqual(resolve({ ports: [{ name: 'org.nodekvm.agent.0' }] }).ports, [{ name: 'org.nodekvm.agent.0' }]);
    assert.deepEqual(resolve({}).ports, []);
  });
});
