// bzImage payload extraction and module dependency resolution, on synthetic inputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { extractVmlinux, parseBzImage } from '../../lib/images/bzimage.js';
import { ModuleTree, assertModulesMatch } from '../../lib/images/modules.js';
import { readModinfo } from '../../lib/images/elf-sections.js';

/** A minimal bzImage: boot sector + header, one setup sector, gzip payload. */
function fakeBzImage(payload: Buffer): Buffer {
  const setupSects = 1;
  const pm = (setupSects + 1) * 512;
  const buf = Buffer.alloc(pm + 16 + payload.length + 4);
  buf[0x1f1] = setupSects;
  buf.writeUInt16LE(0xaa55, 0x1fe);
  buf.write('HdrS', 0x202, 'latin1');
  buf.writeUInt16LE(0x020f, 0x206);
  buf.writeUInt16LE(0x300 - 0x200, 0x20e); // kernel_version string at 0x300
  buf.write('6.1.0-test (fake) #1\0', 0x300, 'latin1');
  buf.writeUInt32LE(16, 0x248); // payload_offset, relative to the protected-mode code
  buf.writeUInt32LE(payload.length, 0x24c);
  payload.copy(buf, pm + 16);
  return buf;
}

test('extractVmlinux finds the payload from the header and checks for ELF', () => {
  const elf = Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46]), Buffer.alloc(100, 7)]);
  const { vmlinux, info } = extractVmlinux(fakeBzImage(gzipSync(elf)));
  assert.equal(info.compression, 'gzip');
  assert.equal(info.version, '6.1.0-test (fake) #1');
  assert.deepEqual(vmlinux, elf);
  assert.throws(() => extractVmlinux(fakeBzImage(gzipSync(Buffer.alloc(100)))), { code: 'ERR_IMAGE_BAD_PAYLOAD' });
});

test('non-bzImages are refused with ERR_IMAGE_NOT_BZIMAGE', () => {
  assert.throws(() => parseBzImage(Buffer.alloc(100)), { code: 'ERR_IMAGE_NOT_BZIMAGE' });
  const b = fakeBzImage(gzipSync(Buffer.from('x')));
  b.write('Nope', 0x202, 'latin1');
  assert.throws(() => parseBzImage(b), { code: 'ERR_IMAGE_NOT_BZIMAGE', message: /HdrS/ });
});

/** ELF64 with sections: null, .modinfo, .shstrtab. */
function fakeKo(modinfo: string[]): Buffer {
  const info = Buffer.from(modinfo.map((s) => s + '\0').join(''));
  const shstr = Buffer.from('\0.modinfo\0.shstrtab\0');
  const infoOff = 64;
  const strOff = infoOff + info.length;
  const shoff = (strOff + shstr.length + 7) & ~7;
  const buf = Buffer.alloc(shoff + 3 * 64);
  buf.writeUInt32BE(0x7f454c46, 0);
  buf[4] = 2; // ELFCLASS64
  buf[5] = 1; // little endian
  buf.writeBigUInt64LE(BigInt(shoff), 0x28);
  buf.writeUInt16LE(64, 0x3a);
  buf.writeUInt16LE(3, 0x3c);
  buf.writeUInt16LE(2, 0x3e);
  info.copy(buf, infoOff);
  shstr.copy(buf, strOff);
  const sh = (i: number, name: number, off: number, size: number): void => {
    const o = shoff + i * 64;
    buf.writeUInt32LE(name, o);
    buf.writeBigUInt64LE(BigInt(off), o + 0x18);
    buf.writeBigUInt64LE(BigInt(size), o + 0x20);
  };
  sh(1, 1, infoOff, info.length);
  sh(2, 10, strOff, shstr.length);
  return buf;
}

function fakeTree(version: string, mods: Record<string, { depends: string; vermagic?: string }>, builtin: string[] = []): string {
  const root = mkdtempSync(join(tmpdir(), 'nkvm-mods-test-'));
  const dir = join(root, version);
  mkdirSync(join(dir, 'kernel', 'drivers'), { recursive: true });
  for (const [file, m] of Object.entries(mods)) {
    writeFileSync(join(dir, 'kernel', 'drivers', `${file}.ko`), fakeKo([`depends=${m.depends}`, `name=${file.replace(/-/g, '_')}`, `vermagic=${m.vermagic ?? version} SMP mod_unload`]));
  }
  writeFileSync(join(dir, 'modules.builtin'), builtin.map((b) => `kernel/net/${b}.ko\n`).join(''));
  return dir;
}

test('modules resolve dependencies first, skip built-ins, fold - and _', () => {
  const dir = fakeTree('6.1.0-test', {
    'kvm-amd': { depends: 'kvm,ccp' }, kvm: { depends: 'irqbypass' }, irqbypass: { depends: '' }, ccp: { depends: '' },
    '8139cp': { depends: 'mii' }, mii: { depends: '' },
  }, ['af_packet']);
  try {
    const tree = new ModuleTree(dir);
    assert.deepEqual(readModinfo(fakeKo(['depends=a,b'])).get('depends'), ['a,b']);
    const order = tree.resolve(['kvm_amd', '8139cp'], ['af_packet', 'not_there']).map((m) => m.name);
    assert.deepEqual(order, ['irqbypass', 'kvm', 'ccp', 'kvm_amd', 'mii', '8139cp']);
    assert.throws(() => tree.resolve(['nope']), { code: 'ERR_IMAGE_MODULE_MISSING' });
    assert.throws(() => assertModulesMatch('6.2.0-other #1', tree), { code: 'ERR_IMAGE_MODULE_MISMATCH' });
    assertModulesMatch('6.1.0-test (x) #1', tree);
  } finally {
    rmSync(join(dir, '..'), { recursive: true, force: true });
  }
});

test('a module built for another kernel is refused', () => {
  const dir = fakeTree('6.1.0-test', { mii: { depends: '', vermagic: '5.10.0-old' } });
  try {
    assert.throws(() => new ModuleTree(dir).resolve(['mii']), { code: 'ERR_IMAGE_MODULE_MISMATCH', message: /5\.10\.0-old/ });
  } finally {
    rmSync(join(dir, '..'), { recursive: true, force: true });
  }
});
