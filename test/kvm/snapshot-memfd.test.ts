// In-memory snapshots keep guest RAM in a memfd and a restore maps it copy-on-write over the RAM
// slots: restored RAM equals the snapshot, writes after the restore (guest or host) never reach
// the snapshot, one snapshot restores any number of times, close() releases the memfd at once,
// and a closed snapshot refuses with ERR_SNAPSHOT_CLOSED.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireKvm } from '../helpers/kvm.js';
import { buildGuestFile } from '../guests/build.js';
import { Machine } from '../../lib/machine/index.js';
import { loadSnapshot, type MachineSnapshot } from '../../lib/machine/snapshot.js';
import { MemfdRam } from '../../lib/kvm/memfd-ram.js';
import { NodeKvmError } from '../../lib/errors.js';

const MiB = 1024 * 1024;
const fdCount = (): number => readdirSync('/proc/self/fd').length;
/** Open memfds of snapshots (their /proc link reads "/memfd:node-kvm-snapshot (deleted)"). */
const memfdCount = (): number =>
  readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).includes('node-kvm-snapshot');
    } catch {
      return false; // the fd readdir itself used, already closed
    }
  }).length;

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

function kernel(): Uint8Array {
  return new Uint8Array(readFileSync(buildGuestFile('snap-count.S', { linkAddress: 0x10000, format: 'flat' })));
}

/** A 32M machine running the counting guest, with host-written marks at a few places in RAM. */
async function countingMachine(): Promise<Machine> {
  const m = await Machine.create({ kernel: kernel(), memory: '32M', flat: { mode: 'long' } });
  m.vm.memory.write(0x40_0000, new TextEncoder().encode('mark at 4M'));
  m.vm.memory.write(32 * MiB - 4096, new TextEncoder().encode('mark in the last page'));
  return m;
}

const ramOf = (m: Machine): Uint8Array => m.vm.memory.view(0, 32 * MiB);

test('MemfdRam: holds a copy (zero pages as holes), private mappings and views never change it, close releases the fd', () => {
  const a = new Uint8Array(64 * 1024);
  a.fill(0x5a, 8192, 12288); // pages 0-1 zero, page 2 data, the rest zero
  a[a.length - 1] = 7; // and the last byte of the last page
  const b = new Uint8Array(4096).fill(1);
  const fds = fdCount();
  const ram = MemfdRam.capture([a, b]);
  assert.ok(ram !== undefined, 'memfd_create works on this kernel');
  assert.equal(fdCount(), fds + 1);
  a.fill(9); // the source changes after the capture
  const want = new Uint8Array(64 * 1024);
  want.fill(0x5a, 8192, 12288);
  want[want.length - 1] = 7;
  assert.deepEqual(ram.view(0), want);
  assert.deepEqual(ram.view(1), new Uint8Array(4096).fill(1));
  const cow = new Uint8Array(ram.mapPrivate(0));
  assert.deepEqual(cow, want);
  cow.fill(3);
  ram.view(0)[0] = 0xee; // a view's writes are private to it too
  assert.deepEqual(new Uint8Array(ram.mapPrivate(0)), want);
  ram.close();
  assert.equal(fdCount(), fds);
  assert.equal(cow[100], 3, 'a mapping made before close() stays valid');
  ram.close(); // idempotent
});

test('capture → restore: guest RAM equals the snapshot, later writes leave the snapshot alone', async (t) => {
  if (!requireKvm(t)) return;
  await using m = await countingMachine();
  m.start();
  await m.console.waitFor(/n=0000000000000002/, { timeout: 60_000 });
  const fds = fdCount();
  const memfds = memfdCount();
  const snap = await m.snapshot();
  assert.equal(fdCount(), fds + 1, 'the snapshot holds one fd');
  assert.equal(memfdCount(), memfds + 1, 'a memfd');
  const at = sha(snap.regionBytes(0));

  // The guest runs on (its counter in RAM changes) and the host scribbles over RAM.
  await m.console.waitFor(/n=0000000000000006/, { timeout: 60_000 });
  await m.pause();
  const before = ramOf(m);
  before.fill(0xcc, 0x40_0000, 0x80_0000);
  assert.equal(sha(snap.regionBytes(0)), at, 'the snapshot did not follow the machine');

  await m.restore(snap);
  assert.equal(m.state, 'paused');
  assert.equal(before.length, 32 * MiB, 'views of RAM stay attached: the slot keeps its address');
  assert.equal(sha(before.slice()), at, 'and show the restored RAM');
  assert.equal(sha(ramOf(m).slice()), at, 'restored RAM equals the snapshot');
  assert.equal(new TextDecoder().decode(m.vm.memory.read(0x40_0000, 10)), 'mark at 4M');

  // Writes after the restore go to private pages.
  ramOf(m).fill(0xdd, 0x40_0000, 0x40_1000);
  m.resume();
  await m.console.waitFor(/n=000000000000000[4-9]/, { timeout: 60_000 });
  await m.pause();
  assert.notEqual(sha(ramOf(m).slice()), at);
  assert.equal(sha(snap.regionBytes(0)), at, 'guest and host writes after the restore did not reach the snapshot');
  snap.close();
  assert.equal(memfdCount(), memfds, 'close() released the memfd');
  assert.ok(fdCount() <= fds, 'and no other fd is left behind');
});

test('restore twice from one snapshot; the restored machine runs on after close()', async (t) => {
  if (!requireKvm(t)) return;
  await using m = await countingMachine();
  m.start();
  await m.console.waitFor(/n=0000000000000001/, { timeout: 60_000 });
  await m.pause();
  const snap = await m.snapshot();
  const at = sha(snap.regionBytes(0));
  // Pages the guest never touched are left out of the memfd without being read: still equal.
  assert.equal(sha(ramOf(m).slice()), at, 'the snapshot holds the paused RAM');
  for (let round = 0; round < 2; round++) {
    m.resume();
    await m.console.waitFor(/n=0000000000000005/, { timeout: 60_000 });
    await m.pause();
    ramOf(m).fill(round + 1, 0x100_0000, 0x110_0000);
    await m.restore(snap);
    assert.equal(sha(ramOf(m).slice()), at, `round ${round}: RAM equals the snapshot`);
  }
  snap.close();
  const from = m.console.output.length;
  m.resume();
  await m.console.waitFor(/n=0000000000000004/, { timeout: 60_000 });
  assert.ok(m.console.output.length > from);
  await m.stop();
});

test("memory: 'copy' copies into the current RAM (views stay attached) and equals the snapshot", async (t) => {
  if (!requireKvm(t)) return;
  await using m = await countingMachine();
  const snap = await m.snapshot();
  const view = ramOf(m);
  view.fill(0xab, 0x40_0000, 0x40_2000);
  await m.restore(snap, { memory: 'copy' });
  assert.equal(view.length, 32 * MiB, 'the old view is still attached');
  assert.equal(sha(view.slice()), sha(snap.regionBytes(0)));
  view.fill(0x11, 0x40_0000, 0x40_2000);
  assert.notEqual(sha(view.slice()), sha(snap.regionBytes(0)));
  snap.close();
});

test('save() writes the memfd RAM into the file format; clones and fds are released', async (t) => {
  if (!requireKvm(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'nkvm-memfd-'));
  try {
    await using m = await countingMachine();
    m.start();
    await m.console.waitFor(/n=0000000000000001/, { timeout: 60_000 });
    const snap = await m.snapshot();
    const path = join(dir, 'memfd.nkvm');
    snap.save(path);
    const loaded = loadSnapshot(path, { verify: 'full' });
    assert.equal(sha(loaded.regionBytes(0)), sha(snap.regionBytes(0)));
    loaded.close();
    // Machine.fromSnapshot maps the memfd too.
    await using clone = await Machine.fromSnapshot(snap);
    assert.equal(sha(clone.vm.memory.view(0, 32 * MiB).slice()), sha(snap.regionBytes(0)));
    snap.close();
    clone.start();
    await clone.console.waitFor(/n=0000000000000004/, { timeout: 60_000 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a closed snapshot refuses restore, fromSnapshot, save and regionBytes with ERR_SNAPSHOT_CLOSED', async (t) => {
  if (!requireKvm(t)) return;
  await using m = await countingMachine();
  const snap: MachineSnapshot = await m.snapshot();
  const view = snap.regionBytes(0);
  snap.close();
  assert.equal(view.length, 0, 'views handed out before close() are detached, not dangling');
  const closed = (e: unknown): boolean => e instanceof NodeKvmError && e.code === 'ERR_SNAPSHOT_CLOSED';
  await assert.rejects(m.restore(snap), closed);
  await assert.rejects(m.restore(snap, { memory: 'copy' }), closed);
  await assert.rejects(Machine.fromSnapshot(snap), closed);
  assert.throws(() => snap.save('/nonexistent/x.nkvm'), closed);
  assert.throws(() => snap.regionBytes(0), closed);
  assert.equal(memfdCount(), 0);
});

/** 200 on the host; 50 inside the nested lab, where every ioctl is emulated. */
const SNAPSHOT_CYCLES = process.env.NODE_KVM_LAB === '1' ? 50 : 200;

test(`${SNAPSHOT_CYCLES} snapshot/restore/close cycles leak no fds`, async (t) => {
  if (!requireKvm(t)) return;
  await using m = await Machine.create({ kernel: kernel(), memory: '16M', flat: { mode: 'long' } });
  (await m.snapshot()).close();
  const fds = fdCount();
  for (let i = 0; i < SNAPSHOT_CYCLES; i++) {
    const s = await m.snapshot();
    await m.restore(s);
    s.close();
  }
  assert.equal(memfdCount(), 0);
  assert.equal(fdCount(), fds);
});
