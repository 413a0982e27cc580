// The newc writer: exact header layout, alignment, and that the system cpio reads it back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { gunzipSync } from 'node:zlib';
import { CpioWriter, S_IFCHR, S_IFREG } from '../../lib/images/cpio.js';
import { RootFs } from '../../lib/images/rootfs.js';

const field = (buf: Buffer, off: number, i: number): number => parseInt(buf.toString('ascii', off + 6 + i * 8, off + 14 + i * 8), 16);

test('newc header fields, name padding and data alignment', () => {
  const w = new CpioWriter();
  w.file('hello.txt', Buffer.from('hi!\n'), 0o640);
  const buf = w.finish();
  assert.equal(buf.toString('ascii', 0, 6), '070701');
  assert.equal(field(buf, 0, 0), 1); // ino
  assert.equal(field(buf, 0, 1), S_IFREG | 0o640); // mode
  assert.equal(field(buf, 0, 2), 0); // uid
  assert.equal(field(buf, 0, 4), 1); // nlink
  assert.equal(field(buf, 0, 6), 4); // filesize
  assert.equal(field(buf, 0, 11), 'hello.txt'.length + 1); // namesize includes the NUL
  // 110-byte header + 10-byte name = 120, already 4-aligned: data follows directly
  assert.equal(buf.toString('ascii', 110, 120), 'hello.txt\0');
  assert.equal(buf.toString('ascii', 120, 124), 'hi!\n');
  // trailer entry right after, and the archive length is a multiple of 4
  assert.equal(buf.toString('ascii', 124, 130), '070701');
  assert.equal(buf.toString('ascii', 124 + 110, 124 + 110 + 10), 'TRAILER!!!');
  assert.equal(buf.length % 4, 0);
});

test('odd name and data sizes are padded to 4 bytes; device numbers land in rdev', () => {
  const w = new CpioWriter();
  w.charDevice('dev/console', 5, 1);
  w.file('a', Buffer.from('xyz'));
  const buf = w.finish();
  assert.equal(field(buf, 0, 1), S_IFCHR | 0o600);
  assert.equal(field(buf, 0, 9), 5); // rdevmajor
  assert.equal(field(buf, 0, 10), 1); // rdevminor
  // entry 2 starts at 110 + 12 ("dev/console\0") = 122 -> padded to 124
  assert.equal(buf.toString('ascii', 124, 130), '070701');
  // its name "a\0" ends at 124+112=236 -> data at 236, 3 bytes -> next header at 240
  assert.equal(buf.toString('ascii', 236, 239), 'xyz');
  assert.equal(buf.toString('ascii', 240, 246), '070701');
});

test('rejects duplicate, absolute-escaping and post-finish entries', () => {
  const w = new CpioWriter();
  w.dir('etc');
  assert.throws(() => w.dir('etc'), { code: 'ERR_INVALID_ARG' });
  assert.throws(() => w.file('../x', Buffer.alloc(1)), { code: 'ERR_INVALID_ARG' });
  w.finish();
  assert.throws(() => w.dir('late'), { code: 'ERR_INVALID_ARG' });
});

test('system cpio lists what RootFs wrote (parents created, sorted, gzip)', (t) => {
  if (spawnSync('cpio', ['--version']).error) {
    t.diagnostic('cpio not installed: only the in-process checks ran');
    return;
  }
  const fs = new RootFs();
  fs.file('bin/tool', Buffer.from('#!/bin/sh\n'), 0o755).symlink('bin/sh', '/bin/busybox').charDevice('dev/console', 5, 1).dir('tmp', 0o1777);
  const archive = gunzipSync(fs.toCpioGz());
  const r = spawnSync('cpio', ['-t', '-v', '--quiet'], { input: archive, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  const names = lines.map((l) => l.replace(/^.*? 1970 /, '')); // mtime 0 -> the name follows the year
  assert.deepEqual(names, ['bin', 'bin/sh -> /bin/busybox', 'bin/tool', 'dev', 'dev/console', 'tmp']);
  assert.match(lines[4]!, /^crw------- .* 5,\s+1 /);
  assert.match(lines[5]!, /^drwxrwxrwt /);
  assert.match(lines[2]!, /^-rwxr-xr-x /);
});
