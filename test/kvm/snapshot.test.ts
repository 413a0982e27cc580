// Snapshots on small guests: test/guests/snap-count.S counts in a register, in guest RAM and
// in an SSE register and prints each step on COM1. A snapshot taken mid-run, restored after the
// guest went on, must replay exactly the same lines from the snapshot point; a snapshot saved to
// a file must start a clone (Machine.fromSnapshot) that prints the same lines too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireKvm } from '../helpers/kvm.js';
import { buildGuestFile } from '../guests/build.js';
import { Machine } from '../../lib/machine/index.js';
import { loadSnapshot } from '../../lib/machine/snapshot.js';
import { NodeKvmError } from '../../lib/errors.js';

const LINE = /n=([0-9a-f]{16}) s=([0-9a-f]{16}) x=([0-9a-f]{16})\n/g;

function kernel(): Uint8Array {
  return new Uint8Array(readFileSync(buildGuestFile('snap-count.S', { linkAddress: 0x10000, format: 'flat' })));
}

const hex = (n: number): string => n.toString(16).padStart(16, '0');

/** The line the guest prints at step n (sum 1..n, 3n). */
const expected = (n: number): string => `n=${hex(n)} s=${hex((n * (n + 1)) / 2)} x=${hex(3 * n)}\n`;

/** The last complete step in `text`. */
const lastStep = (text: string): number => Number.parseInt([...text.matchAll(LINE)].pop()?.[1] ?? '0', 16);

/** `text` up to and including the line of step `n`. */
function upTo(text: string, n: number): string {
  const i = text.indexOf(expected(n));
  assert.ok(i >= 0, `step ${n} in the output`);
  return text.slice(0, i + expected(n).length);
}

test('restore replays the guest exactly from the snapshot point', async (t) => {
  if (!requireKvm(t)) return;
  await using m = await Machine.create({ kernel: kernel(), memory: '32M', flat: { mode: 'long' } });
  m.start();
  await m.console.waitFor(expected(2), { timeout: 60_000 });
  const snap = await m.snapshot();
  assert.equal(m.state, 'running', 'a running machine resumes after the snapshot');
  const mark = snap.state.consoleBytes;
  const until = lastStep(m.console.output.slice(0, mark)) + 3;
  await m.console.waitFor(expected(until), { timeout: 60_000 });
  const before = upTo(m.console.output.slice(mark), until);

  const restoredAt = m.console.output.length;
  await m.restore(snap);
  assert.equal(m.state, 'running');
  await m.console.waitFor(expected(until), { timeout: 60_000 });
  const after = upTo(m.console.output.slice(restoredAt), until);
  // Byte for byte, including a line the snapshot cut in half.
  assert.equal(after, before);
  assert.ok(before.includes(expected(until - 1)));
  snap.close();
});

test('restore into a paused machine, and twice from one snapshot', async (t) => {
  if (!requireKvm(t)) return;
  await using m = await Machine.create({ kernel: kernel(), memory: '32M', flat: { mode: 'long' } });
  m.start();
  await m.console.waitFor(expected(1), { timeout: 60_000 });
  await m.pause();
  const snap = await m.snapshot();
  assert.equal(m.state, 'paused', 'a paused machine stays paused');
  const at = lastStep(m.console.output);
  const replays: string[] = [];
  for (let round = 0; round < 2; round++) {
    m.resume();
    await m.console.waitFor(expected(at + 4 + round), { timeout: 60_000 });
    await m.restore(snap);
    const from = m.console.output.length;
    assert.equal(m.state, 'running');
    await m.console.waitFor(expected(at + 3), { timeout: 60_000 });
    replays.push(upTo(m.console.output.slice(from), at + 3));
  }
  assert.equal(replays[1], replays[0]);
  snap.close();
});

test('a saved snapshot file starts a clone with Machine.fromSnapshot (RAM copy-on-write)', async (t) => {
  if (!requireKvm(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'nkvm-snap-'));
  try {
    const path = join(dir, 'count.nkvm');
    let at: number;
    {
      await using m = await Machine.create({ kernel: kernel(), memory: '32M', flat: { mode: 'long' } });
      m.start();
      await m.console.waitFor(expected(1), { timeout: 60_000 });
      const snap = await m.snapshot();
      at = lastStep(m.console.output.slice(0, snap.state.consoleBytes));
      snap.save(path);
      snap.close();
    }
    const loaded = loadSnapshot(path);
    assert.equal(loaded.path, path);
    assert.equal(loaded.config.memory, 32 * 1024 * 1024);
    await using clone = await Machine.fromSnapshot(loaded);
    assert.equal(clone.state, 'created');
    clone.start();
    // The snapshot may cut a line: the first whole line the clone prints is step at + 2.
    for (let n = at + 2; n <= at + 4; n++) await clone.console.waitFor(expected(n), { timeout: 60_000 });
    // The guest's writes stay private: the file still verifies.
    await clone.stop();
    loaded.close();
    loadSnapshot(path, { verify: 'full' }).close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a snapshot only restores into a machine built alike', async (t) => {
  if (!requireKvm(t)) return;
  await using a = await Machine.create({ kernel: kernel(), memory: '32M', flat: { mode: 'long' } });
  await using b = await Machine.create({ kernel: kernel(), memory: '48M', flat: { mode: 'long' } });
  const snap = await a.snapshot();
  await assert.rejects(b.restore(snap), (e: unknown) => e instanceof NodeKvmError && e.code === 'ERR_SNAPSHOT_MISMATCH');
  await a.stop();
  await assert.rejects(a.snapshot(), (e: unknown) => e instanceof NodeKvmError && e.code === 'ERR_MACHINE_STATE');
  snap.close();
});

test('a machine with shares snapshots: the clone exports the snapshot\'s directory or, by tag, another', async (t) => {
  if (!requireKvm(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'nkvm-snap-share-'));
  try {
    const [a, b, other] = ['a', 'b', 'other'].map((d) => join(dir, d));
    for (const d of [a!, b!, other!]) mkdirSync(d);
    const shares = [{ path: a!, tag: 'a' }, { path: b!, tag: 'b', readonly: true }];
    await using m = await Machine.create({ kernel: kernel(), memory: '32M', flat: { mode: 'long' }, shares });
    m.start();
    await m.console.waitFor(expected(1), { timeout: 60_000 });
    const snap = await m.snapshot();
    const at = lastStep(m.console.output.slice(0, snap.state.consoleBytes));
    assert.deepEqual(snap.config.shares, [{ tag: 'a', path: a, readonly: false }, { tag: 'b', path: b, readonly: true }]);
    {
      await using same = await Machine.fromSnapshot(snap);
      assert.deepEqual(same.platform.virtio9p.map((d) => [d.tag, d.server.share.path, d.server.share.readonly]), [['a', a, false], ['b', b, true]]);
    }
    {
      await using moved = await Machine.fromSnapshot(snap, { shares: [{ tag: 'b', path: other! }] });
      assert.deepEqual(moved.platform.virtio9p.map((d) => [d.tag, d.server.share.path, d.server.share.readonly]), [['a', a, false], ['b', other, true]]);
      moved.start();
      await moved.console.waitFor(expected(at + 2), { timeout: 60_000 });
    }
    await assert.rejects(Machine.fromSnapshot(snap, { shares: [{ tag: 'c', path: other! }] }),
      (e: unknown) => e instanceof NodeKvmError && e.code === 'ERR_SNAPSHOT_MISMATCH' && /no share tagged "c"/.test(e.message));
    await assert.rejects(Machine.fromSnapshot(snap, { shares: [{ tag: 'a', path: join(dir, 'missing') }] }),
      (e: unknown) => e instanceof NodeKvmError && e.code === 'ERR_SHARE_PATH');
    // A machine with other shares (or none) does not take the snapshot.
    await using plain = await Machine.create({ kernel: kernel(), memory: '32M', flat: { mode: 'long' } });
    await assert.rejects(plain.restore(snap), (e: unknown) => e instanceof NodeKvmError && e.code === 'ERR_SNAPSHOT_MISMATCH' && /shares \[a,b\]/.test(e.message));
    snap.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
