// The NODE_KVM_DEBUG path without a guest: the attach client's key handling (Ctrl-A x detaches,
// Ctrl-A Ctrl-A sends one Ctrl-A), `node-kvm attach` to a socket nobody serves (a VM that has
// ended: a clear coded message, exit 1), the variable's parsing, socket paths that fit
// sun_path, and a failing test without the variable or with no VM left running.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { main } from '../../lib/cli/main.js';
import { scanKeys } from '../../lib/cli/attach.js';
import { debugEnabled, debugSocketPath, debugTimeoutMs, holdForDebug } from '../../lib/testing/debug.js';
import { withVms } from '../../lib/testing/scope.js';

function io(): { stdout: Writable; stderr: Writable; env: NodeJS.ProcessEnv; err: () => string } {
  let e = '';
  const sink = (add: (s: string) => void): Writable => new Writable({ write(c: Buffer, _enc, cb) { add(c.toString()); cb(); } });
  return { stdout: sink(() => {}), stderr: sink((s) => (e += s)), env: {}, err: () => e };
}

test('scanKeys: Ctrl-A x detaches, Ctrl-A Ctrl-A is one Ctrl-A, a split Ctrl-A carries over', () => {
  const st = { pending: false };
  assert.deepEqual(scanKeys(Buffer.from('ls\n'), st), { send: Buffer.from('ls\n'), detach: false });
  assert.deepEqual(scanKeys(Buffer.from('a\x01\x01b'), st), { send: Buffer.from('a\x01b'), detach: false });
  assert.deepEqual(scanKeys(Buffer.from('q\x01'), st), { send: Buffer.from('q'), detach: false });
  assert.equal(st.pending, true);
  assert.deepEqual(scanKeys(Buffer.from('x'), st), { send: Buffer.alloc(0), detach: true });
  assert.deepEqual(scanKeys(Buffer.from('\x01c'), { pending: false }), { send: Buffer.from('\x01c'), detach: false });
});

test('attach to a VM that has ended (nobody on the socket): a clear message, ERR_ATTACH, exit 1', async () => {
  const c = io();
  assert.equal(await main(['attach', '/tmp/nkvm-no-such-vm.sock'], c), 1);
  assert.match(c.err(), /no VM is listening on \/tmp\/nkvm-no-such-vm\.sock \(ENOENT\): its test has ended.*\[ERR_ATTACH\]/);
  const u = io();
  assert.equal(await main(['attach'], u), 64);
});

test('NODE_KVM_DEBUG parsing and socket paths', () => {
  assert.equal(debugEnabled({}), false);
  assert.equal(debugEnabled({ NODE_KVM_DEBUG: '0' }), false);
  assert.equal(debugEnabled({ NODE_KVM_DEBUG: '1' }), true);
  assert.equal(debugTimeoutMs({}), 600_000);
  assert.equal(debugTimeoutMs({ NODE_KVM_DEBUG_TIMEOUT: '5' }), 5000);
  assert.equal(debugTimeoutMs({ NODE_KVM_DEBUG_TIMEOUT: 'soon' }), 600_000);
  const p = debugSocketPath('a very long test name: with "odd" chars/and slashes '.repeat(4), 3, '/tmp');
  assert.ok(Buffer.byteLength(p) <= 107, p);
  assert.match(p, /^\/tmp\/nkvm-\d+-3-[A-Za-z0-9._-]+\.sock$/);
});

test('a failing test with no VM running holds nothing; without NODE_KVM_DEBUG nothing is printed', async () => {
  const printed: string[] = [];
  await holdForDebug('t', [], (s) => printed.push(s), 10);
  assert.match(printed.join(''), /none of its VMs is still running/);
  const old = process.env.NODE_KVM_DEBUG;
  delete process.env.NODE_KVM_DEBUG;
  const write = process.stderr.write;
  let err = '';
  process.stderr.write = ((s: string) => { err += s; return true; }) as typeof process.stderr.write;
  try {
    await assert.rejects(withVms('plain failure', async () => { throw new Error('boom'); }), /boom/);
  } finally {
    process.stderr.write = write;
    if (old !== undefined) process.env.NODE_KVM_DEBUG = old;
  }
  assert.doesNotMatch(err, /node-kvm attach/);
});
