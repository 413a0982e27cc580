// The one opener of user-named files: regular files only, refused before any read or write,
// a FIFO never blocks, every failure an ERR_FILE naming the path, and no fd left open.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkReplaceable, createUserFile, readUserFile, UserFileError } from '../../lib/user-file.js';
import { resolveOptions } from '../../lib/machine/options.js';
import { PcapWriter } from '../../lib/net/pcap.js';
import { SnapshotFile, writeSnapshotFile } from '../../lib/machine/snapshot-file.js';

const fds = (): number => readdirSync('/proc/self/fd').length;

function fileError(fn: () => unknown, path: string, re: RegExp): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof Error, `expected an error for ${path}`);
  assert.equal((err as { code?: string }).code, 'ERR_FILE', (err as Error).message);
  assert.ok((err as Error).message.includes(path), `message names ${path}: ${(err as Error).message}`);
  assert.match((err as Error).message, re);
}

function scratch(t: { after: (fn: () => void) => void }): { dir: string; fifo: string } {
  const dir = mkdtempSync(join(tmpdir(), 'nkvm-userfile-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const fifo = join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  return { dir, fifo };
}

test('readUserFile: missing, directory, FIFO, device, too large: ERR_FILE naming path and fix; no fd kept', (t) => {
  const { dir, fifo } = scratch(t);
  const before = fds();
  fileError(() => readUserFile(join(dir, 'nope'), 'kernel'), join(dir, 'nope'), /ENOENT.*does not exist: check the path/);
  fileError(() => readUserFile(dir, 'kernel'), dir, /is a directory; name a regular file/);
  // O_NONBLOCK open + fstat: a FIFO nobody writes to is refused at once instead of hanging.
  const t0 = Date.now();
  fileError(() => readUserFile(fifo, 'kernel'), fifo, /is a FIFO.*regular files/);
  assert.ok(Date.now() - t0 < 5000, 'a FIFO is refused without waiting for a writer');
  fileError(() => readUserFile('/dev/zero', 'initrd'), '/dev/zero', /character device/);
  fileError(() => readUserFile(join(dir, 'nope', 'x'), 'kernel'), join(dir, 'nope', 'x'), /ENOENT/);
  writeFileSync(join(dir, 'f'), 'x');
  fileError(() => readUserFile(join(dir, 'f', 'x'), 'kernel'), join(dir, 'f', 'x'), /ENOTDIR/);
  writeFileSync(join(dir, 'big'), Buffer.alloc(100));
  fileError(() => readUserFile(join(dir, 'big'), 'kernel', { maxBytes: 99 }), join(dir, 'big'), /100 bytes, more than the 99/);
  assert.throws(() => readUserFile('', 'kernel'), { code: 'ERR_FILE' });
  assert.throws(() => readUserFile('a\0b', 'kernel'), { code: 'ERR_FILE' });
  assert.equal(fds(), before, 'no fd left open by a refused file');
});

test('readUserFile reads regular files whole (empty, small, larger than one read)', (t) => {
  const { dir } = scratch(t);
  const data = Buffer.alloc(3 * 1024 * 1024 + 7);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
  writeFileSync(join(dir, 'k'), data);
  writeFileSync(join(dir, 'e'), '');
  assert.ok(readUserFile(join(dir, 'k'), 'kernel').equals(data));
  assert.equal(readUserFile(join(dir, 'e'), 'kernel').length, 0);
  assert.ok(readUserFile(join(dir, 'k'), 'kernel', { maxBytes: data.length }).equals(data));
});

test('createUserFile: refuses FIFO, device, directory, missing dir before writing; truncates only regular files', (t) => {
  const { dir, fifo } = scratch(t);
  const before = fds();
  fileError(() => createUserFile(join(dir, 'no', 'such', 'x'), 'console file'), join(dir, 'no', 'such', 'x'), /directory .* does not exist; create it/);
  fileError(() => createUserFile(dir, 'pcap file'), dir, /EISDIR|directory/);
  // No reader: O_NONBLOCK makes the open fail (ENXIO) instead of waiting for one.
  fileError(() => createUserFile(fifo, 'pcap file'), fifo, /ENXIO|FIFO/);
  fileError(() => createUserFile('/dev/null', 'console file'), '/dev/null', /character device/);
  assert.equal(fds(), before);
  const p = join(dir, 'out');
  writeFileSync(p, 'old contents');
  const fd = createUserFile(p, 'console file');
  assert.equal(readFileSync(p, 'utf8'), '', 'a regular file is truncated');
  writeFileSync(fd, 'new');
  closeSync(fd);
  assert.equal(readFileSync(p, 'utf8'), 'new');
});


test('every user-named path goes through the opener: Machine options, pcap, snapshot', (t) => {
  const { dir, fifo } = scratch(t);
  const before = fds();
  const resolve = (o: Parameters<typeof resolveOptions>[0]): unknown => resolveOptions(o, 4);
  fileError(() => resolve({ kernel: fifo }), fifo, /FIFO/);
  fileError(() => resolve({ kernel: dir }), dir, /directory/);
  fileError(() => resolve({ kernel: new Uint8Array(16), initrd: '/dev/zero' }), '/dev/zero', /character device/);
  fileError(() => new PcapWriter(join(dir, 'no', 'p.pcap')), join(dir, 'no', 'p.pcap'), /does not exist/);
  fileError(() => new PcapWriter(fifo), fifo, /ENXIO|FIFO/);
  fileError(() => SnapshotFile.open(fifo), fifo, /FIFO/);
  fileError(() => SnapshotFile.open(join(dir, 'none.nkvm')), join(dir, 'none.nkvm'), /does not exist/);
  fileError(() => writeSnapshotFile(fifo, {}, []), fifo, /FIFO/);
  fileError(() => writeSnapshotFile(dir, {}, []), dir, /directory/);
  fileError(() => checkReplaceable('/dev/null', 'snapshot'), '/dev/null', /character device/);
  assert.equal(fds(), before);
  assert.ok(new UserFileError('/x', 'kernel', 'ENOENT', 'm') instanceof Error);
});
