// A cached image is used only when every file matches its manifest; partial writes never land.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IMAGE_FILES, MANIFEST_FORMAT, sha256, verifyImage, type ImageManifest } from '../../lib/images/manifest.js';
import { writeAtomically, cacheRoot } from '../../lib/images/cache.js';
import { listImages } from '../../lib/images/build.js';

function fakeImage(dir: string): void {
  const files: Record<string, Buffer> = {
    [IMAGE_FILES.kernel]: Buffer.from('kernel bytes'),
    [IMAGE_FILES.vmlinux]: Buffer.from('\x7fELF vmlinux bytes'),
    [IMAGE_FILES.initrd]: Buffer.from('initrd bytes'),
  };
  for (const [f, d] of Object.entries(files)) writeFileSync(join(dir, f), d);
  const m: ImageManifest = {
    formatVersion: MANIFEST_FORMAT, name: 'default', createdAt: new Date(0).toISOString(),
    kernel: { source: 'file', release: '6.1.0-test', compression: 'xz' }, busybox: { version: 'v1.35.0' },
    modules: [], added: [],
    files: Object.fromEntries(Object.entries(files).map(([f, d]) => [f, { sha256: sha256(d), size: d.length }])),
  };
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(m));
}

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'nkvm-manifest-test-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a complete image verifies and names its files', () => withDir((dir) => {
  fakeImage(dir);
  const v = verifyImage(dir);
  assert.ok(v.ok);
  assert.equal(v.image.initrd, join(dir, 'initramfs.cpio.gz'));
  assert.equal(v.image.manifest.kernel.release, '6.1.0-test');
}));

test('a flipped byte is detected', () => withDir((dir) => {
  fakeImage(dir);
  const p = join(dir, IMAGE_FILES.initrd);
  const b = readFileSync(p);
  b[3]! ^= 0x01;
  writeFileSync(p, b);
  const v = verifyImage(dir);
  assert.equal(v.ok, false);
  assert.match(!v.ok ? v.reason : '', /sha256 mismatch/);
}));

test('a missing or truncated file, or a missing manifest, is detected', () => withDir((dir) => {
  fakeImage(dir);
  writeFileSync(join(dir, IMAGE_FILES.kernel), 'kernel');
  let v = verifyImage(dir);
  assert.match(!v.ok ? v.reason : '', /size/);
  fakeImage(dir);
  unlinkSync(join(dir, IMAGE_FILES.vmlinux));
  v = verifyImage(dir);
  assert.match(!v.ok ? v.reason : '', /vmlinux missing/);
  unlinkSync(join(dir, 'manifest.json'));
  v = verifyImage(dir);
  assert.match(!v.ok ? v.reason : '', /manifest.json missing/);
  writeFileSync(join(dir, 'manifest.json'), '{"formatVersion": 1, "files"');
  assert.match((verifyImage(dir) as { reason: string }).reason, /unreadable/);
}));

test('writeAtomically: a failing build leaves the old image and no temp dirs', async () => {
  const root = mkdtempSync(join(tmpdir(), 'nkvm-atomic-test-'));
  try {
    const target = join(root, 'default');
    await writeAtomically(target, (tmp) => fakeImage(tmp));
    assert.ok(verifyImage(target).ok);
    const before = readFileSync(join(target, 'manifest.json'), 'utf8');
    await assert.rejects(writeAtomically(target, (tmp) => {
      writeFileSync(join(tmp, IMAGE_FILES.kernel), 'half');
      throw Object.assign(new Error('no space'), { code: 'ENOSPC' });
    }), /no space/);
    assert.equal(readFileSync(join(target, 'manifest.json'), 'utf8'), before);
    assert.deepEqual(readdirSync(root), ['default']);
    // listImages reports broken images instead of using them
    unlinkSync(join(target, IMAGE_FILES.initrd));
    const [entry] = listImages(root);
    assert.equal(entry?.ok, false);
    assert.ok(!existsSync(join(target, IMAGE_FILES.initrd)));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('cache root follows XDG_CACHE_HOME, else ~/.cache', () => {
  assert.equal(cacheRoot({ XDG_CACHE_HOME: '/x/cache', HOME: '/home/u' }), '/x/cache/node-kvm');
  assert.equal(cacheRoot({ HOME: '/home/u' }), '/home/u/.cache/node-kvm');
  assert.equal(cacheRoot({ XDG_CACHE_HOME: 'relative', HOME: '/home/u' }), '/home/u/.cache/node-kvm');
});

test("verify level 'size' skips hashing but still catches missing or resized files", () => withDir((dir) => {
  fakeImage(dir);
  const p = join(dir, IMAGE_FILES.initrd);
  const b = readFileSync(p);
  b[0]! ^= 0xff;
  writeFileSync(p, b);
  assert.equal(verifyImage(dir, 'size').ok, true);
  assert.equal(verifyImage(dir, 'full').ok, false);
  writeFileSync(p, 'x');
  assert.equal(verifyImage(dir, 'size').ok, false);
}));
