import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GuestMemory, fakeGuestMemory } from '../../lib/kvm/memory.js';
import { GuestMemoryError, NodeKvmError } from '../../lib/errors.js';

const MiB = 1024 * 1024;

function guestError(fn: () => unknown): GuestMemoryError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof GuestMemoryError, `expected GuestMemoryError, got ${String(e)}`);
    assert.equal(e.code, 'ERR_GUEST_ADDRESS');
    return e;
  }
  assert.fail('no error thrown');
}

function twoRegions(): GuestMemory {
  return fakeGuestMemory([
    { guestPhysAddr: 0, size: MiB },
    { guestPhysAddr: MiB, size: MiB },
    { guestPhysAddr: 0x1_0000_0000, size: 0x1000 },
  ]);
}

test('regions and size', () => {
  const m = twoRegions();
  assert.equal(m.regions.length, 3);
  assert.equal(m.size, 2 * MiB + 0x1000);
  assert.deepEqual(m.regions.map((r) => r.guestPhysAddr), [0, MiB, 0x1_0000_0000]);
});

test('U8..U64 round-trip little-endian', () => {
  const m = twoRegions();
  m.writeU32(0x100, 0x11223344);
  assert.deepEqual([...m.read(0x100, 4)], [0x44, 0x33, 0x22, 0x11]);
  assert.equal(m.readU8(0x100), 0x44);
  assert.equal(m.readU16(0x100), 0x3344);
  assert.equal(m.readU32(0x100), 0x11223344);
  m.writeU16(0x200, 0xbeef);
  assert.deepEqual([...m.read(0x200, 2)], [0xef, 0xbe]);
  m.writeU8(0x300, 0x1ff); // Uint8Array truncates
  assert.equal(m.readU8(0x300), 0xff);
  m.writeU64(0x400, 0x0102030405060708n);
  assert.deepEqual([...m.read(0x400, 8)], [8, 7, 6, 5, 4, 3, 2, 1]);
  assert.equal(m.readU64(0x400), 0x0102030405060708n);
  m.writeU64(0x400, -1n);
  assert.equal(m.readU64(0x400), 0xffff_ffff_ffff_ffffn);
  m.writeU32(0x500, -1);
  assert.equal(m.readU32(0x500), 0xffff_ffff);
  // Above 4 GiB.
  m.writeU32(0x1_0000_0ffc, 0xcafef00d);
  assert.equal(m.readU32(0x1_0000_0ffc), 0xcafef00d);
});

test('read copies, view aliases, write and fill', () => {
  const m = twoRegions();
  m.write(MiB + 10, new Uint8Array([1, 2, 3]));
  const copy = m.read(MiB + 10, 3);
  const view = m.view(MiB + 10, 3);
  m.fill(MiB + 10, 3, 9);
  assert.deepEqual([...copy], [1, 2, 3]);
  assert.deepEqual([...view], [9, 9, 9]);
  view[0] = 7;
  assert.equal(m.readU8(MiB + 10), 7);
  m.fill(MiB + 10, 1);
  assert.equal(m.readU8(MiB + 10), 0);
});

test('bounds: last byte of a region is fine, one past is refused', () => {
  const m = twoRegions();
  m.writeU8(2 * MiB - 1, 1);
  assert.equal(m.readU8(2 * MiB - 1), 1);
  m.writeU32(2 * MiB - 4, 5);
  const e = guestError(() => m.readU8(2 * MiB));
  assert.equal(e.address, 2 * MiB);
  assert.equal(e.length, 1);
  guestError(() => m.readU32(2 * MiB - 3));
  guestError(() => m.readU64(0x1_0000_0ffc));
  guestError(() => m.write(0x1_0000_1000, new Uint8Array(1)));
  guestError(() => m.fill(0x1_0000_0000, 0x1001));
});

test('accesses straddling two adjacent regions are refused', () => {
  const m = twoRegions();
  guestError(() => m.readU32(MiB - 2));
  guestError(() => m.writeU16(MiB - 1, 0));
  guestError(() => m.read(MiB - 1, 2));
  guestError(() => m.view(MiB - 8, 16));
  assert.equal(m.contains(MiB - 2, 4), false);
  assert.equal(m.contains(MiB - 4, 4), true);
  assert.equal(m.contains(MiB, 4), true);
});

test('contains', () => {
  const m = twoRegions();
  assert.equal(m.contains(0, 2 * MiB), false);
  assert.equal(m.contains(0, MiB), true);
  assert.equal(m.contains(0, 0), true);
  assert.equal(m.contains(3 * MiB, 1), false);
  assert.equal(m.contains(-1, 1), false);
  assert.equal(m.contains(0.5, 1), false);
  assert.equal(m.contains(0, -1), false);
  assert.equal(m.contains(Number.NaN, 1), false);
});

test('bad addresses and lengths throw ERR_GUEST_ADDRESS, never touch memory', () => {
  const m = twoRegions();
  guestError(() => m.readU8(-1));
  guestError(() => m.readU8(1.5));
  guestError(() => m.readU8(Number.NaN));
  guestError(() => m.readU8(Number.POSITIVE_INFINITY));
  guestError(() => m.read(0, -1));
  guestError(() => m.read(0x10, Number.NaN));
  guestError(() => m.readU8(2 ** 60));
  guestError(() => m.readU32(0x5000_0000));
});

test('last-hit cache does not leak across regions', () => {
  const m = twoRegions();
  m.writeU8(MiB + 1, 0xaa); // caches region 1
  m.writeU8(1, 0xbb);
  assert.equal(m.readU8(MiB + 1), 0xaa);
  assert.equal(m.readU8(1), 0xbb);
  m.removeRegion(1);
  guestError(() => m.readU8(MiB + 1));
  assert.equal(m.regions.length, 2);
});

test('overlapping regions are rejected with ERR_REGION_OVERLAP', () => {
  const m = new GuestMemory();
  m.addRegion({ slot: 0, guestPhysAddr: 0x1000, size: 0x1000, readonly: false, bytes: new Uint8Array(0x1000) });
  assert.throws(
    () => m.addRegion({ slot: 1, guestPhysAddr: 0x1800, size: 0x1000, readonly: false, bytes: new Uint8Array(0x1000) }),
    (e: unknown) => e instanceof NodeKvmError && e.code === 'ERR_REGION_OVERLAP');
  m.addRegion({ slot: 1, guestPhysAddr: 0x2000, size: 0x1000, readonly: false, bytes: new Uint8Array(0x1000) });
});
