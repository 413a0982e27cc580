// The fast checksum paths against plain byte-by-byte references, on random frames of every
// length and offset a NIC sees (odd tails, unaligned starts, views into larger buffers).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { crc32, crc32Table, foldChecksum, internetChecksum, sum16 } from '../../lib/net/checksum.js';

function sum16Reference(b: Uint8Array, start: number, end: number): number {
  let s = 0;
  for (let i = start; i < end; i += 2) s += (b[i]! << 8) | (i + 1 < end ? b[i + 1]! : 0);
  return s;
}

test('crc32 (zlib where Node has it) equals the table CRC; the check value of "123456789" is cbf43926', () => {
  assert.equal(crc32(new TextEncoder().encode('123456789')), 0xcbf43926);
  assert.equal(crc32Table(new TextEncoder().encode('123456789')), 0xcbf43926);
  for (let n = 0; n < 200; n++) {
    const b = randomBytes(1 + ((n * 37) % 1600));
    const start = n % 7;
    const end = Math.max(start, b.length - (n % 5));
    assert.equal(crc32(b, start, end), crc32Table(b, start, end), `length ${b.length} [${start}, ${end})`);
  }
  assert.equal(crc32(new Uint8Array(0)), 0);
});

test('sum16 folds to the same checksum as a 16-bit word loop, for any length and offset', () => {
  for (let n = 0; n < 400; n++) {
    const backing = randomBytes(1700);
    const view = new Uint8Array(backing.buffer, backing.byteOffset + (n % 3), 1600);
    const start = n % 11;
    const end = Math.min(view.length, start + (n * 13) % 1590);
    assert.equal(foldChecksum(sum16(view, start, end)), foldChecksum(sum16Reference(view, start, end)), `[${start}, ${end})`);
    assert.equal(foldChecksum(sum16(view, start, end, 0x1234)), foldChecksum(sum16Reference(view, start, end) + 0x1234));
  }
  // The 32-bit middle at every alignment of the view and of the start, near its 64-byte floor.
  for (let viewOffset = 0; viewOffset < 4; viewOffset++) {
    const backing = randomBytes(400);
    const view = new Uint8Array(backing.buffer, backing.byteOffset + viewOffset, 390);
    for (let start = 0; start < 8; start++) {
      for (const len of [62, 63, 64, 65, 66, 67, 68, 69, 71, 127, 128, 301]) {
        assert.equal(foldChecksum(sum16(view, start, start + len)), foldChecksum(sum16Reference(view, start, start + len)),
          `view +${viewOffset} [${start}, +${len})`);
      }
    }
  }
  // Data whose word sum is a non-zero multiple of 0xffff folds to 0, all-zero data to 0xffff.
  for (const at of [0, 1, 2, 3]) {
    const b = new Uint8Array(80);
    b[at] = 0x12; b[at + 1] = 0x34; b[at + 2] = 0xed; b[at + 3] = 0xcb;
    assert.equal(foldChecksum(sum16(b, at & ~1, 80)), foldChecksum(sum16Reference(b, at & ~1, 80)), `pair at ${at}`);
    assert.equal(foldChecksum(sum16(new Uint8Array(80), at, 80)), 0xffff);
  }
  // All-ones words: the sum passes 2^32 many times over and still folds right.
  const ones = new Uint8Array(65536).fill(0xff);
  assert.equal(internetChecksum(ones), foldChecksum(sum16Reference(ones, 0, ones.length)));
});
