// The loaders against a real Debian kernel: its bzImage and the vmlinux extracted from it.
// Paths: NODE_KVM_TEST_KERNEL (bzImage) and NODE_KVM_TEST_VMLINUX, else the image cache
// ($XDG_CACHE_HOME/node-kvm/<image>/{bzImage,vmlinux}, or ~/.cache/node-kvm). Missing files
// fail the test in CI and skip it loudly elsewhere.
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fakeGuestMemory } from '../../lib/kvm/memory.js';
import { loadKernel, detectKernelFormat } from '../../lib/boot/kernel.js';
import { parseSetupHeader } from '../../lib/boot/setup-header.js';
import { parseElf, pvhEntry, PT_LOAD } from '../../lib/boot/elf.js';
import { BOOT_INFO_START, ZERO_PAGE_START } from '../../lib/platform/layout.js';

const inCI = process.env.CI === 'true' || process.env.CI === '1';
const MiB = 1024 * 1024;

function cacheRoot(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg && xdg.startsWith('/') ? xdg : join(process.env.HOME || homedir(), '.cache'), 'node-kvm');
}

/** The env path, else the cached image ('default' first, then by name) that has `file`. */
function findImage(envVar: string, file: string): string | undefined {
  const fromEnv = process.env[envVar];
  if (fromEnv) return fromEnv;
  const root = cacheRoot();
  if (!existsSync(root)) return undefined;
  if (existsSync(join(root, file))) return join(root, file);
  const dirs = readdirSync(root, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort();
  // The images helper's default image first, then any other.
  for (const d of ['default', ...dirs.filter((n) => n !== 'default')]) {
    if (existsSync(join(root, d, file))) return join(root, d, file);
  }
  return undefined;
}

function need(t: TestContext, envVar: string, file: string): Uint8Array | undefined {
  const path = findImage(envVar, file);
  if (path === undefined || !existsSync(path)) {
    const why = `no real kernel ${file}: set ${envVar} or build the default images into ${cacheRoot()}`;
    if (inCI) throw new Error(`CI requires a real kernel: ${why}`);
    process.stderr.write(`\n*** SKIPPING "${t.name}": ${why} ***\n`);
    t.skip(why);
    return undefined;
  }
  return new Uint8Array(readFileSync(path));
}

const layout = [{ guestPhysAddr: 0, size: 256 * MiB }];

describe('real Debian kernel', () => {
  it('bzImage: header and loading into 256 MiB', (t) => {
    const img = need(t, 'NODE_KVM_TEST_KERNEL', 'bzImage');
    if (img === undefined) return;
    assert.equal(detectKernelFormat(img), 'bzimage');
    const h = parseSetupHeader(img);
    assert.ok(h.version >= 0x020f, `protocol ${h.version.toString(16)}`);
    assert.equal(h.pref_address, 0x1000000);
    assert.equal(h.relocatable_kernel, 1);
    const memory = fakeGuestMemory(layout);
    const initrd = new Uint8Array(4 * MiB).fill(7);
    const s = loadKernel(img, { memory, ramLayout: layout, cmdline: 'console=ttyS0 panic=-1', initrd });
    assert.equal(s.kernelRange.start, 0x1000000);
    assert.equal(s.regs.rip, 0x1000200n);
    assert.ok(s.initrdRange!.start >= s.kernelRange.end);
    assert.ok(s.initrdRange!.end <= 256 * MiB);
    assert.equal(memory.readU32(ZERO_PAGE_START + 0x218), s.initrdRange!.start);
    const setupSize = (h.setup_sects + 1) * 512;
    assert.deepEqual([...memory.read(0x1000000, 64)], [...img.subarray(setupSize, setupSize + 64)]);
  });

  it('vmlinux: PVH note found, entry inside the loaded segments', (t) => {
    const img = need(t, 'NODE_KVM_TEST_VMLINUX', 'vmlinux');
    if (img === undefined) return;
    assert.equal(detectKernelFormat(img), 'pvh');
    const elf = parseElf(img);
    const entry = pvhEntry(img, elf)!;
    const loads = elf.segments.filter((s) => s.type === PT_LOAD);
    assert.ok(loads.some((s) => entry >= s.paddr && entry < s.paddr + s.filesz), `PVH entry 0x${entry.toString(16)} in a segment`);
    // Debian's e_entry is the physical startup_64 (ENTRY(phys_startup_64) in vmlinux.lds).
    assert.equal(elf.entry, 0x1000000);
    const memory = fakeGuestMemory(layout);
    const s = loadKernel(img, { memory, ramLayout: layout, cmdline: 'console=ttyS0', initrd: new Uint8Array(MiB) });
    assert.equal(s.format, 'pvh');
    assert.equal(s.regs.rip, BigInt(entry));
    assert.equal(memory.readU32(BOOT_INFO_START), 0x336ec578);
    const seg = loads.find((x) => entry >= x.paddr && entry < x.paddr + x.filesz)!;
    const off = seg.offset + (entry - seg.paddr);
    assert.deepEqual([...memory.read(entry, 16)], [...img.subarray(off, off + 16)]);
    const l64 = loadKernel(img, { memory: fakeGuestMemory(layout), ramLayout: layout, format: 'elf64' });
    assert.equal(l64.regs.rip, 0x1000000n);
  });
});

// memtest86+ 6.10 (Debian package memtest86+, in scripts/apt-packages.txt): bzImages that
// GRUB and QEMU boot, and that are 8 bytes short of setup + syssize*16 (syssize rounds up).
function needFile(t: TestContext, path: string): Uint8Array | undefined {
  if (existsSync(path)) return new Uint8Array(readFileSync(path));
  const why = `no ${path}: apt-get install memtest86+`;
  if (inCI) throw new Error(`CI requires ${path}: ${why}`);
  process.stderr.write(`\n*** SKIPPING "${t.name}": ${why} ***\n`);
  t.skip(why);
  return undefined;
}

describe('real memtest86+ bzImages', () => {
  const memtestDir = process.env.NODE_KVM_TEST_MEMTEST_DIR ?? '/boot';
  for (const [file, bits] of [['memtest86+x64.bin', 64], ['memtest86+ia32.bin', 32]] as const) {
    it(`${file}: loaded whole, entered through the ${bits}-bit protocol`, (t) => {
      const img = needFile(t, join(memtestDir, file));
      if (img === undefined) return;
      const h = parseSetupHeader(img);
      const setupSize = (h.setup_sects + 1) * 512;
      assert.ok(img.length < setupSize + h.syssize * 16, 'the file ends inside the last syssize paragraph');
      const memory = fakeGuestMemory(layout);
      const s = loadKernel(img, { memory, ramLayout: layout, cmdline: 'console=ttyS0,115200' });
      assert.equal(s.kernelRange.start, 0x100000, 'not relocatable: at pref_address');
      assert.equal(s.entry, bits === 64 ? 0x100200 : 0x100000);
      assert.equal(s.sregs.cs?.l, bits === 64 ? 1 : 0);
      assert.deepEqual([...memory.read(0x100000 + img.length - setupSize - 16, 16)], [...img.subarray(img.length - 16)]);
    });
  }
});
