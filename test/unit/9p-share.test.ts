// Share options: checked before any VM exists, each mistake a coded error; the CLI's
// --share HOSTDIR[=TAG][:ro] syntax.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseShareArg, resolveShares } from '../../lib/devices/virtio/9p/share.js';
import { Virtio9p } from '../../lib/devices/virtio/9p/device.js';
import { P9Server } from '../../lib/devices/virtio/9p/server.js';

const code = (c: string) => (e: { code?: string }): boolean => e.code === c;

test('shares: path must exist, be a directory and be readable; tags unique, 1..31 bytes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nkvm-share-'));
  try {
    writeFileSync(join(dir, 'file'), '');
    assert.deepEqual(resolveShares([{ path: dir, tag: 'a' }]), [{ path: dir, tag: 'a', readonly: false }]);
    assert.deepEqual(resolveShares(undefined), []);
    assert.throws(() => resolveShares([{ path: join(dir, 'missing'), tag: 'a' }]), code('ERR_SHARE_PATH'));
    assert.throws(() => resolveShares([{ path: join(dir, 'file'), tag: 'a' }]), code('ERR_SHARE_PATH'));
    assert.throws(() => resolveShares([{ path: dir, tag: 'a' }, { path: dir, tag: 'a' }]), code('ERR_INVALID_SHARE'));
    assert.throws(() => resolveShares([{ path: dir, tag: 'x'.repeat(32) }]), code('ERR_INVALID_SHARE'));
    assert.doesNotThrow(() => resolveShares([{ path: dir, tag: 'x'.repeat(31) }]));
    assert.throws(() => resolveShares([{ path: dir, tag: 'é'.repeat(16) }]), code('ERR_INVALID_SHARE'), '32 bytes of UTF-8');
    assert.throws(() => resolveShares([{ path: dir, tag: '' }]), code('ERR_INVALID_SHARE'));
    assert.throws(() => resolveShares([{ path: dir, tag: 'a b' }]), code('ERR_INVALID_SHARE'));
    assert.throws(() => resolveShares([{ path: '', tag: 'a' }]), code('ERR_INVALID_SHARE'));
    assert.throws(() => resolveShares([{ path: dir, tag: 'a', readonly: 'yes' as unknown as boolean }]), code('ERR_INVALID_SHARE'));
    assert.throws(() => resolveShares({} as never), code('ERR_INVALID_SHARE'));
    if (process.getuid?.() !== 0) {
      // root reads everything: the unreadable case only means something for other users
      const closed = join(dir, 'closed');
      rmSync(closed, { force: true });
      (await import('node:fs')).mkdirSync(closed, { mode: 0o000 });
      assert.throws(() => resolveShares([{ path: closed, tag: 'a' }]), code('ERR_SHARE_PATH'));
      chmodSync(closed, 0o700);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--share HOSTDIR[=TAG][:ro]', () => {
  assert.deepEqual(parseShareArg('/srv/data'), { path: '/srv/data', tag: 'data', readonly: false });
  assert.deepEqual(parseShareArg('/srv/data=d:ro'), { path: '/srv/data', tag: 'd', readonly: true });
  assert.deepEqual(parseShareArg('./x:ro'), { path: './x', tag: 'x', readonly: true });
  assert.deepEqual(parseShareArg('/a=b=c'), { path: '/a=b', tag: 'c', readonly: false });
  assert.equal(parseShareArg('/').tag, 'root');
  assert.ok(Buffer.byteLength(parseShareArg(`/tmp/${'y'.repeat(40)}`).tag) <= 31);
  assert.throws(() => parseShareArg(':ro'), code('ERR_INVALID_SHARE'));
});

test('virtio-9p config space: tag_len then the tag, little-endian, no NUL', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nkvm-share-'));
  const server = await P9Server.open({ path: dir, tag: 'hostfs', readonly: false });
  try {
    const dev = new Virtio9p(server);
    assert.equal(dev.deviceType, 9);
    assert.equal(dev.features, 1n);
    assert.equal(dev.configSize, 8);
    assert.equal(dev.readConfig(0, 2), 6);
    assert.equal(dev.readConfig(2, 4), Buffer.from('host').readUInt32LE(0));
    assert.equal(dev.readConfig(6, 1), 'f'.charCodeAt(0));
    assert.equal(dev.readConfig(8, 4), 0, 'past the end reads zero');
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('CLI: bad --share and exec arguments are coded errors before any boot', async () => {
  const { main } = await import('../../lib/cli/main.js');
  const { Writable } = await import('node:stream');
  let err = '';
  const sink = new Writable({ write(c, _e, cb) { err += String(c); cb(); } });
  const io = { stdout: sink, stderr: sink, env: process.env };
  assert.equal(await main(['run', '--share', '/nonexistent-nkvm-dir'], io), 1);
  assert.match(err, /ERR_SHARE_PATH/);
  err = '';
  assert.equal(await main(['run', '--share', '/tmp=a', '--share', '/var=a'], io), 1);
  assert.match(err, /ERR_INVALID_SHARE/);
  err = '';
  assert.equal(await main(['exec', '--rw', '/nonexistent-nkvm-dir', '--', 'true'], io), 1);
  assert.match(err, /ERR_SHARE_PATH/);
  err = '';
  assert.equal(await main(['exec', 'true'], io), 64);
  assert.match(err, /after --/);
});
