// The fid table and fd lifetime: a live fid cannot be taken again, a clunked one is gone, and
// an fd shared by fids and operations in flight is closed only when the last one lets go.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fstatSync, openSync } from 'node:fs';
import { FdRef, FidTable, type Fid } from '../../lib/devices/virtio/9p/fids.js';
import { P9Error, LINUX_ERRNO, toLinuxErrno } from '../../lib/devices/virtio/9p/errno.js';
import { NOFID } from '../../lib/devices/virtio/9p/protocol.js';
import { native } from '../../lib/native.js';

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 20));
const isOpen = (fd: number): boolean => { try { fstatSync(fd); return true; } catch { return false; } };

function fid(id: number, ref: FdRef): Fid {
  return { id, path: [], handle: ref, kind: 'dir' };
}

test('a live or claimed fid cannot be claimed again; NOFID never', () => {
  const t = new FidTable();
  t.reserve(1);
  assert.throws(() => t.reserve(1), (e: P9Error) => e.errno === LINUX_ERRNO.EBADF);
  t.set(fid(1, new FdRef(openSync('/dev/null', 'r'))));
  assert.throws(() => t.reserve(1), (e: P9Error) => e.errno === LINUX_ERRNO.EBADF);
  assert.throws(() => t.reserve(NOFID), (e: P9Error) => e.errno === LINUX_ERRNO.EINVAL);
  t.reserve(2);
  t.unreserve(2);
  t.reserve(2);
  t.clear();
  assert.equal(t.size, 0);
});

test('clunk removes the fid and closes its fd; a second clunk is EBADF', async () => {
  const t = new FidTable();
  const fd = openSync('/dev/null', 'r');
  t.reserve(5);
  t.set(fid(5, new FdRef(fd)));
  assert.equal(t.get(5).handle.fd, fd);
  t.clunk(5);
  await tick();
  assert.equal(isOpen(fd), false);
  assert.throws(() => t.clunk(5), (e: P9Error) => e.errno === LINUX_ERRNO.EBADF);
  assert.throws(() => t.get(5), (e: P9Error) => e.errno === LINUX_ERRNO.EBADF);
});

test('an fd shared by a clone and an operation in flight outlives the clunk of one user', async () => {
  const t = new FidTable();
  const fd = openSync('/dev/null', 'r');
  const ref = new FdRef(fd);
  t.reserve(1);
  t.set(fid(1, ref));
  t.reserve(2);
  t.set(fid(2, ref.acquire()));
  const op = ref.acquire(); // a read in flight
  t.clunk(1);
  t.clunk(2);
  await tick();
  assert.equal(isOpen(fd), true, 'still used by the operation');
  op.release();
  await tick();
  assert.equal(isOpen(fd), false);
  assert.throws(() => ref.acquire(), /after close/);
  op.release(); // a double release does nothing
});

test('replacing a fid (walk in place) releases the old one\'s fd', async () => {
  const t = new FidTable();
  const a = openSync('/dev/null', 'r');
  const b = openSync('/dev/null', 'r');
  t.reserve(1);
  t.set(fid(1, new FdRef(a)));
  t.set(fid(1, new FdRef(b)));
  await tick();
  assert.equal(isOpen(a), false);
  assert.equal(isOpen(b), true);
  t.clear();
  await tick();
  assert.equal(isOpen(b), false);
});

test('host errors map to Linux errnos by name; unknown ones to EIO', async () => {
  assert.equal(toLinuxErrno(Object.assign(new Error(), { code: 'ENOENT' })), 2);
  assert.equal(toLinuxErrno(Object.assign(new Error(), { code: 'ENOTEMPTY' })), 39);
  assert.equal(toLinuxErrno(Object.assign(new Error(), { code: 'ELOOP' })), 40);
  assert.equal(toLinuxErrno(Object.assign(new Error(), { code: 'EOPNOTSUPP' })), 95);
  assert.equal(toLinuxErrno(Object.assign(new Error(), { code: 'ENOTSUP' })), 95);
  assert.equal(toLinuxErrno(Object.assign(new Error(), { code: 'EXDEV' })), 18);
  assert.equal(toLinuxErrno(Object.assign(new Error(), { code: 'ERR_SOMETHING' })), LINUX_ERRNO.EIO);
  assert.equal(toLinuxErrno(new TypeError('bug')), LINUX_ERRNO.EIO);
  assert.equal(toLinuxErrno(null), LINUX_ERRNO.EIO);
  assert.equal(toLinuxErrno(new P9Error('EROFS')), 30);
  // a real rejection from the native shim carries the errno name
  const c = native().fsConstants;
  await assert.rejects(native().openat2(c.AT_FDCWD, '/nonexistent-nkvm', c.O_RDONLY, 0, 0),
    (e: { code: string; syscall: string }) => toLinuxErrno(e) === 2 && e.syscall === 'openat2');
  const tmp = new FdRef(await native().openat2(c.AT_FDCWD, '/tmp', c.O_PATH, 0, 0));
  await assert.rejects(native().openat2(tmp.fd, '../etc', c.O_PATH, 0, c.RESOLVE_BENEATH),
    (e: { code: string }) => e.code === 'EXDEV' && toLinuxErrno(e) === 18);
  tmp.release();
});

test('a session holds at most maxFids fids: the next walk is EMFILE and opens no fd; a clunk makes room', async () => {
  const { tempExport } = await import('./p9-client.js');
  const { readdirSync } = await import('node:fs');
  const fds = (): number => readdirSync('/proc/self/fd').length;
  const ex = await tempExport({ maxFids: 64 });
  try {
    await ex.client.version();
    await ex.client.attach(0);
    for (let id = 1; id < 64; id++) assert.equal((await ex.client.walk(0, id, '')).op, 'Rwalk');
    const before = fds();
    for (let id = 64; id < 200; id++) {
      const m = await ex.client.walk(0, id, '');
      assert.equal(m.op === 'Rlerror' ? m.ecode : 0, LINUX_ERRNO.EMFILE, `walk to fid ${id}`);
    }
    assert.equal(fds(), before, 'refused walks opened nothing');
    assert.equal(ex.server.refusedFids, 136);
    assert.equal((await ex.client.call('Tclunk', { fid: 5 })).op, 'Rclunk');
    assert.equal((await ex.client.walk(0, 500, '')).op, 'Rwalk', 'a clunk made room');
  } finally {
    await ex.done();
  }
});
