// A 9P session carried across a snapshot: fids saved by path and reopened beneath the export
// by a second server (as Machine.fromSnapshot does), fids whose file changed coming back stale,
// a saved state that is not one the server wrote refused, and the device's quiescing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { str } from '../../lib/devices/virtio/9p/codec.js';
import { LINUX_ERRNO as E } from '../../lib/devices/virtio/9p/errno.js';
import { Virtio9p } from '../../lib/devices/virtio/9p/device.js';
import { P9Server } from '../../lib/devices/virtio/9p/server.js';
import { DOTL, type Message } from '../../lib/devices/virtio/9p/protocol.js';
import { NodeKvmError } from '../../lib/errors.js';
import { P9TestClient, tempExport } from './p9-client.js';

type M<N extends Message['op']> = Extract<Message, { op: N }>;
const text = (b: Uint8Array): string => Buffer.from(b).toString();

/** What a snapshot stores: the session through JSON, as the snapshot file does. */
function saved(server: P9Server): unknown {
  return JSON.parse(JSON.stringify(server.saveSession()));
}

/** A second server on `dir` with `state` restored; resolves with it, its client and the stale count. */
async function restored(dir: string, state: unknown, readonly = false): Promise<{ server: P9Server; client: P9TestClient; stale: number }> {
  const server = await P9Server.open({ path: dir, tag: 't', readonly });
  try {
    const stale = await server.prepareSession(state)();
    return { server, client: new P9TestClient(server), stale };
  } catch (e) {
    await server.close();
    throw e;
  }
}

test('fids saved by path are reopened by a new server: open files keep their mode and contents, no O_TRUNC again', async () => {
  const t = await tempExport();
  const c = t.client;
  try {
    mkdirSync(join(t.dir, 'sub'));
    writeFileSync(join(t.dir, 'sub', 'f'), 'before');
    writeFileSync(join(t.dir, 'sub', 'g'), 'gee');
    await c.version(256 * 1024);
    await c.attach(0);
    await c.walk(0, 1, 'sub/f');
    await c.ok('Tlopen', { fid: 1, flags: DOTL.RDWR | DOTL.TRUNC });
    await c.ok('Twrite', { fid: 1, offset: 0n, data: str('written') });
    await c.walk(0, 2, 'sub');
    await c.ok('Tlopen', { fid: 2, flags: DOTL.RDONLY | DOTL.DIRECTORY });
    await c.walk(0, 3, 'sub/g'); // walked, not open
    const state = saved(t.server);
    const r = await restored(t.dir, state);
    try {
      assert.equal(r.stale, 0);
      assert.equal(r.server.msize, 256 * 1024);
      const rd = await r.client.ok('Tread', { fid: 1, offset: 0n, count: 100 }) as M<'Rread'>;
      assert.equal(text(rd.data), 'written', 'the restore did not truncate the file again');
      await r.client.ok('Twrite', { fid: 1, offset: 7n, data: str('!') });
      assert.equal(readFileSync(join(t.dir, 'sub', 'f'), 'utf8'), 'written!');
      const dir = await r.client.ok('Treaddir', { fid: 2, offset: 0n, count: 4096 }) as M<'Rreaddir'>;
      assert.ok(dir.data.byteLength > 0);
      assert.equal(await r.client.errno('Tread', { fid: 3, offset: 0n, count: 1 }), E.EBADF, 'a walked fid is not open after the restore either');
      await r.client.ok('Tlopen', { fid: 3, flags: DOTL.RDONLY });
      assert.equal(text((await r.client.ok('Tread', { fid: 3, offset: 0n, count: 10 }) as M<'Rread'>).data), 'gee');
      // the root fid walks on
      assert.equal((await r.client.walk(0, 9, 'sub/g')).op, 'Rwalk');
      // and a saved session saves again the same way
      assert.deepEqual((saved(r.server) as { fids: unknown[] }).fids.length, (state as { fids: unknown[] }).fids.length + 1);
    } finally { await r.server.close(); }
  } finally { await t.done(); }
});

test('a restore into another directory (a fork\'s own share) reopens the fids there', async () => {
  const t = await tempExport();
  const copy = mkdtempSync(join(tmpdir(), 'nkvm-9p-copy-'));
  try {
    writeFileSync(join(t.dir, 'f'), 'template');
    await t.client.version();
    await t.client.attach(0);
    await t.client.walk(0, 1, 'f');
    await t.client.ok('Tlopen', { fid: 1, flags: DOTL.RDWR });
    cpSync(t.dir, copy, { recursive: true });
    const r = await restored(copy, saved(t.server));
    try {
      await r.client.ok('Twrite', { fid: 1, offset: 0n, data: str('FORK') });
      assert.equal(readFileSync(join(copy, 'f'), 'utf8'), 'FORKlate');
      assert.equal(readFileSync(join(t.dir, 'f'), 'utf8'), 'template', 'the template\'s directory is untouched');
    } finally { await r.server.close(); }
  } finally {
    await t.done();
    rmSync(copy, { recursive: true, force: true });
  }
});

test('fids whose file is gone, changed kind, or sits behind a symlink now come back stale (ESTALE), never reaching outside', async () => {
  const t = await tempExport();
  const outside = mkdtempSync(join(tmpdir(), 'nkvm-9p-outside-'));
  const c = t.client;
  try {
    mkdirSync(join(t.dir, 'd'));
    writeFileSync(join(t.dir, 'd', 'x'), 'x');
    writeFileSync(join(t.dir, 'gone'), 'gone');
    writeFileSync(join(t.dir, 'kind'), 'kind');
    writeFileSync(join(outside, 'x'), 'secret');
    await c.version();
    await c.attach(0);
    await c.walk(0, 1, 'gone');
    await c.ok('Tlopen', { fid: 1, flags: DOTL.RDONLY });
    await c.walk(0, 2, 'kind');
    await c.walk(0, 3, 'd/x');
    await c.ok('Tlopen', { fid: 3, flags: DOTL.RDONLY });
    const state = saved(t.server);
    unlinkSync(join(t.dir, 'gone'));
    unlinkSync(join(t.dir, 'kind'));
    mkdirSync(join(t.dir, 'kind'));
    renameSync(join(t.dir, 'd'), join(t.dir, 'd.old'));
    symlinkSync(outside, join(t.dir, 'd'));
    const r = await restored(t.dir, state);
    try {
      assert.equal(r.stale, 3);
      assert.equal(await r.client.errno('Tread', { fid: 1, offset: 0n, count: 10 }), E.ESTALE);
      assert.equal(await r.client.errno('Tgetattr', { fid: 2, requestMask: 0x7ffn }), E.ESTALE);
      assert.equal(await r.client.errno('Tread', { fid: 3, offset: 0n, count: 10 }), E.ESTALE, 'not the file behind the symlink');
      assert.equal(await r.client.errno('Twalk', { fid: 3, newfid: 7, wnames: [] }), E.ESTALE);
      // a stale fid's number is taken until it is clunked; then it can be used again
      assert.equal(await r.client.errno('Twalk', { fid: 0, newfid: 1, wnames: [] }), E.EBADF);
      await r.client.ok('Tclunk', { fid: 1 });
      assert.equal(await r.client.errno('Twalk', { fid: 0, newfid: 1, wnames: [str('d.old'), str('x')] }), 0);
      // a stale fid is saved as stale again
      const again = saved(r.server) as { fids: Array<{ id: number; stale?: string }> };
      assert.ok(again.fids.find((f) => f.id === 2)?.stale);
    } finally { await r.server.close(); }
  } finally {
    await t.done();
    rmSync(outside, { recursive: true, force: true });
  }
});

test('a read-only export refuses to reopen a fid that was open for writing: it comes back stale', async () => {
  const t = await tempExport();
  try {
    writeFileSync(join(t.dir, 'w'), 'w');
    await t.client.version();
    await t.client.attach(0);
    await t.client.walk(0, 1, 'w');
    await t.client.ok('Tlopen', { fid: 1, flags: DOTL.WRONLY });
    await t.client.walk(0, 2, 'w');
    await t.client.ok('Tlopen', { fid: 2, flags: DOTL.RDONLY });
    const r = await restored(t.dir, saved(t.server), true);
    try {
      assert.equal(r.stale, 1);
      assert.equal(await r.client.errno('Tgetattr', { fid: 1, requestMask: 0x7ffn }), E.ESTALE);
      assert.equal(await r.client.errno('Twrite', { fid: 1, offset: 0n, data: str('x') }), E.EROFS, 'changes are EROFS first, on any fid');
      assert.equal(text((await r.client.ok('Tread', { fid: 2, offset: 0n, count: 4 }) as M<'Rread'>).data), 'w');
    } finally { await r.server.close(); }
  } finally { await t.done(); }
});

test('a saved session that is not one the server wrote is ERR_SNAPSHOT_CORRUPT, checked before anything is opened', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nkvm-9p-bad-'));
  const server = await P9Server.open({ path: dir, tag: 't', readonly: false });
  try {
    const fid = (over: Record<string, unknown>): unknown => ({ msize: 8192, devIndex: [], fids: [{ id: 1, path: [], kind: 'dir', ...over }] });
    const b64 = (s: string): string => Buffer.from(s).toString('base64');
    const bad: Array<[string, unknown]> = [
      ['not an object', 'x'],
      ['msize below a page', { msize: 12, devIndex: [], fids: [] }],
      ['a name that climbs', fid({ path: [b64('..')] })],
      ['a name with a slash', fid({ path: [b64('a/b')] })],
      ['an empty name', fid({ path: [''] })],
      ['an unknown kind', fid({ kind: 'device' })],
      ['NOFID as an id', fid({ id: 0xffffffff })],
      ['a duplicate id', { msize: 8192, devIndex: [], fids: [{ id: 1, path: [], kind: 'dir' }, { id: 1, path: [], kind: 'dir' }] }],
      ['open flags not a number', fid({ open: { dotl: 'rw', readable: true, writable: true } })],
      ['a qid.path not hex', fid({ qidPath: 'zz' })],
    ];
    for (const [why, state] of bad) {
      assert.throws(() => server.prepareSession(state), (e: unknown) => e instanceof NodeKvmError && e.code === 'ERR_SNAPSHOT_CORRUPT', why);
    }
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the device: hold() keeps chains in the ring, drain() waits for requests under way, saveState() refuses while any is', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nkvm-9p-hold-'));
  const server = await P9Server.open({ path: dir, tag: 'hold', readonly: false });
  const dev = new Virtio9p(server);
  let popped = 0;
  let scheduled = 0;
  // A queue that always has one more chain: counts pops; each request is a Tversion.
  const chainBytes = (await import('../../lib/devices/virtio/9p/codec.js')).encode({ op: 'Tversion', tag: 0xffff, msize: 8192, version: str('9P2000.L') });
  const q = {
    pop: () => (popped++ < 1 ? { readableViews: () => [chainBytes], writableViews: () => [new Uint8Array(64)] } : undefined),
    push() {}, notify() {}, drop() {},
  };
  dev.attach({ queue: () => q as never, negotiatedFeatures: 1n, driverOk: true, configChanged() {}, needsReset() {}, schedule() { scheduled++; }, scheduleAfter() {} });
  dev.activate();
  try {
    dev.hold();
    assert.equal(dev.queueNotify(0), false);
    assert.equal(popped, 0, 'nothing popped while held');
    dev.release();
    assert.equal(scheduled, 1, 'release asks the transport to run the queue');
    dev.queueNotify(0);
    assert.equal(dev.pending, 1);
    assert.throws(() => dev.saveState(), (e: unknown) => e instanceof NodeKvmError && e.code === 'ERR_SNAPSHOT_BUSY');
    await dev.drain(5000);
    assert.equal(dev.pending, 0);
    const s = dev.saveState();
    assert.equal(s.tag, 'hold');
    assert.equal(s.session?.msize, 8192);
    assert.throws(() => dev.loadState({ tag: 'other' }), (e: unknown) => e instanceof NodeKvmError && e.code === 'ERR_SNAPSHOT_MISMATCH');
  } finally {
    await dev.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
