// virtio-9p with Debian's real v9fs client: shares mounted in the guest, 64 MiB each way with
// matching sha256, a tree of 2,000 files listed identically, the file operations a shell
// uses, a shared writable mmap under cache=mmap, two writers on one file, a read-only export
// answering every change with EROFS, and escape attempts that never reach the host outside the
// export.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { requireKvm } from '../helpers/kvm.js';
import { bootVm } from '../../lib/testing/index.js';

const MIB = 1024 * 1024;
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** A static program that maps a file MAP_SHARED, writes through the mapping and msyncs. */
const MMAP_WRITER_C = `
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
int main(int argc, char **argv) {
  int fd = open(argv[1], O_RDWR | O_CREAT, 0644);
  if (fd < 0 || ftruncate(fd, 8192) < 0) return 2;
  char *p = mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return 3;
  for (int i = 0; i < 8192; i++) p[i] = (char)('a' + i % 26);
  if (msync(p, 8192, MS_SYNC) < 0) return 4;
  munmap(p, 8192);
  close(fd);
  return 0;
}
`;

/** Every path under `dir`, relative, sorted as `find . | sort` prints them (C locale). */
function hostFind(dir: string): string {
  const out: string[] = ['.'];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      out.push(`./${relative(dir, p)}`);
      if (e.isDirectory()) walk(p);
    }
  };
  walk(dir);
  out.sort((a, b) => (Buffer.compare(Buffer.from(a), Buffer.from(b))));
  return `${out.join('\n')}\n`;
}

test('virtio-9p: mounts, 64 MiB both ways, 2,000 files, file operations, mmap, read-only, escapes', { timeout: 1_800_000 }, async (t) => {
  if (!requireKvm(t)) return;
  const base = mkdtempSync(join(tmpdir(), 'nkvm-9p-linux-'));
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const rw = join(base, 'rw');
  const ro = join(base, 'ro');
  const outside = join(base, 'outside');
  for (const d of [rw, ro, outside]) mkdirSync(d);
  writeFileSync(join(outside, 'secret'), 'SECRET\n');
  writeFileSync(join(ro, 'keep'), 'read only\n');
  mkdirSync(join(ro, 'dir'));
  symlinkSync(outside, join(rw, 'abs-out'));
  symlinkSync('../outside/secret', join(rw, 'rel-secret'));
  execFileSync('gcc', ['-static', '-O2', '-o', join(rw, 'mmap-writer'), '-x', 'c', '-'], { input: MMAP_WRITER_C });

  let mark = performance.now();
  const lap = (): string => { const now = performance.now(); const d = ((now - mark) / 1000).toFixed(1); mark = now; return `${d} s`; };
  const vm = await bootVm({
    t, memory: '512M',
    // Linux mounts one virtio-9p device once at a time (EBUSY): the cache=mmap mount of the same
    // directory is a second share.
    shares: [{ path: rw, tag: 'rw', mount: '/mnt/rw' }, { path: ro, tag: 'ro-share', readonly: true, mount: '/mnt/ro' },
      { path: rw, tag: 'rw-mmap' }],
  });
  t.diagnostic(`booted: ${lap()}`);
  const sh = async (cmd: string, timeout = 300_000): Promise<string> => (await vm.execOk(cmd, { timeout })).stdout;

  // a file the host writes is seen at once (cache=none)
  writeFileSync(join(rw, 'hello'), 'hello from the host\n');
  assert.equal(await sh('cat /mnt/rw/hello'), 'hello from the host\n');
  const mounts = await sh('grep 9p /proc/mounts');
  assert.match(mounts, /^rw \/mnt\/rw 9p .*trans=virtio/m);
  assert.match(mounts, /msize=512000/);

  // 64 MiB host -> guest -> host: the guest copies a random file the host wrote, and the host
  // checks the copy's sha256. The copy equals the original only if the guest read every byte
  // right and wrote every byte right. (Hashing in the guest proves no more and, under the lab's
  // TCG, busybox's sha256 alone takes minutes; /dev/urandom makes a few hundred KB/s.)
  const big = randomBytes(64 * MIB);
  writeFileSync(join(rw, 'big'), big);
  await sh('dd if=/mnt/rw/big of=/mnt/rw/gen bs=512k 2>/dev/null');
  assert.equal(statSync(join(rw, 'gen')).size, 64 * MIB);
  assert.equal(sha(readFileSync(join(rw, 'gen'))), sha(big));
  t.diagnostic(`64 MiB copied by the guest (read + write): ${lap()}`);
  rmSync(join(rw, 'big'));
  rmSync(join(rw, 'gen'));

  // a tree of 2,000 files: listed identically by the guest's find and the host
  for (let d = 0; d < 20; d++) {
    mkdirSync(join(rw, 'tree', `dir${d}`), { recursive: true });
    for (let f = 0; f < 100; f++) writeFileSync(join(rw, 'tree', `dir${d}`, `file-${f}.txt`), `${d}/${f}`);
  }
  const guestList = await sh('cd /mnt/rw/tree && find . | LC_ALL=C sort | sha256sum');
  assert.equal(guestList.split(' ')[0], sha(Buffer.from(hostFind(join(rw, 'tree')))));
  assert.equal((await sh('find /mnt/rw/tree -type f | wc -l')).trim(), '2000');
  t.diagnostic(`2,000-file tree listed: ${lap()}`);
  // Removed by the host: `rm -r` by the guest is proven on a small tree below (thousands of
  // requests each a round trip through the lab's emulated CPU took minutes there).
  rmSync(join(rw, 'tree'), { recursive: true });
  assert.equal(await sh('ls /mnt/rw/tree 2>&1 || true'), 'ls: /mnt/rw/tree: No such file or directory\n');

  // file operations as a shell does them
  await sh([
    'cd /mnt/rw', 'mkdir -p a/b/c', 'echo content > a/b/c/f', 'mv a/b/c/f a/g', 'ln a/g a/h', 'ln -s g a/s',
    'chmod 600 a/g', 'truncate -s 3 a/h', 'dd if=/dev/zero of=a/synced bs=4k count=4 conv=fsync 2>/dev/null', 'rm -r a/b',
    'mkfifo a/fifo',
  ].join(' && '));
  assert.equal(readFileSync(join(rw, 'a/g'), 'utf8'), 'con');
  assert.equal(statSync(join(rw, 'a/g')).ino, statSync(join(rw, 'a/h')).ino);
  assert.equal(statSync(join(rw, 'a/g')).mode & 0o777, 0o600);
  assert.equal(readlinkSync(join(rw, 'a/s')), 'g');
  assert.equal(statSync(join(rw, 'a/synced')).size, 16384);
  assert.equal(existsSync(join(rw, 'a/b')), false);
  assert.ok(lstatSync(join(rw, 'a/fifo')).isFIFO());
  assert.equal(await sh('cat /mnt/rw/a/s'), 'con');
  assert.equal(await sh('stat -c %a /mnt/rw/a/g'), '600\n');

  // two guest writers on one file, each its own region
  await sh('cd /mnt/rw && (dd if=/dev/zero bs=64k count=16 2>/dev/null | tr "\\0" A | dd of=two bs=64k conv=notrunc 2>/dev/null &'
    + ' dd if=/dev/zero bs=64k count=16 2>/dev/null | tr "\\0" B | dd of=two bs=64k seek=16 conv=notrunc 2>/dev/null; wait)');
  const two = readFileSync(join(rw, 'two'));
  assert.equal(two.length, 2 * MIB);
  assert.ok(two.subarray(0, MIB).every((b) => b === 0x41) && two.subarray(MIB).every((b) => b === 0x42));

  // cache=mmap: a shared writable mapping reaches the host file
  await vm.mount('rw-mmap', '/mnt/mm', { cache: 'mmap' });
  await sh('/mnt/mm/mmap-writer /mnt/mm/mapped');
  const mapped = readFileSync(join(rw, 'mapped'));
  assert.equal(mapped.length, 8192);
  assert.ok(mapped.every((b, i) => b === 0x61 + (i % 26)));

  t.diagnostic(`file operations, two writers, mmap: ${lap()}`);
  // the read-only export refuses every change with EROFS
  for (const cmd of ['touch /mnt/ro/new', 'echo x > /mnt/ro/keep', 'rm /mnt/ro/keep', 'mkdir /mnt/ro/d2', 'rmdir /mnt/ro/dir',
    'mv /mnt/ro/keep /mnt/ro/moved', 'chmod 777 /mnt/ro/keep', 'ln -s x /mnt/ro/l', 'ln /mnt/ro/keep /mnt/ro/h', 'truncate -s 0 /mnt/ro/keep']) {
    const r = await vm.exec(cmd);
    assert.notEqual(r.exitCode, 0, cmd);
    assert.match(r.stderr, /Read-only file system/, cmd);
  }
  assert.deepEqual(readdirSync(ro).sort(), ['dir', 'keep']);
  assert.equal(readFileSync(join(ro, 'keep'), 'utf8'), 'read only\n');
  assert.equal(await sh('cat /mnt/ro/keep'), 'read only\n');

  // escapes: symlinks are resolved by the guest in the guest, `..` stops at the guest's mount
  assert.notEqual((await vm.exec('cat /mnt/rw/rel-secret')).stdout, 'SECRET\n');
  assert.notEqual((await vm.exec('cat /mnt/rw/abs-out/secret')).stdout, 'SECRET\n');
  assert.notEqual((await vm.exec('cat /mnt/rw/../outside/secret')).stdout, 'SECRET\n');
  await sh('ln -s / /mnt/rw/root-link && ln -s ../../../.. /mnt/rw/up-link');
  assert.equal(readlinkSync(join(rw, 'up-link')), '../../../..');
  // the rename race from the guest: a swapper loop against a reader loop
  mkdirSync(join(rw, 'race/real'), { recursive: true });
  writeFileSync(join(rw, 'race/real/secret'), 'INSIDE\n');
  symlinkSync(outside, join(rw, 'race/evil'));
  t.diagnostic(`read-only and escapes: ${lap()}`);
  const race = await sh(`cd /mnt/rw/race && end=$(($(date +%s) + 30));
    ( while [ $(date +%s) -lt $end ]; do mv real tmp; mv evil real; mv real evil; mv tmp real; done ) 2>/dev/null &
    n=0; while [ $(date +%s) -lt $end ]; do cat real/secret 2>/dev/null; n=$((n+1)); done | sort | uniq -c; wait`, 600_000);
  assert.doesNotMatch(race, /SECRET/);
  assert.match(race, /INSIDE/);
  assert.equal(readFileSync(join(outside, 'secret'), 'utf8'), 'SECRET\n');
  assert.deepEqual(readdirSync(outside), ['secret']);
  await vm.close();
});
