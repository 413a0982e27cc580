// The snapshot file format: round trip, page-aligned sections, and every kind of damage refused
// with its code (ERR_SNAPSHOT_CORRUPT / ERR_SNAPSHOT_VERSION).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeKvmError } from '../../lib/errors.js';
import {
  SnapshotFile, SNAPSHOT_FORMAT_VERSION, SNAPSHOT_PAGE_SIZE, writeSnapshotFile, type VerifyLevel,
} from '../../lib/machine/snapshot-file.js';
import { loadSnapshot } from '../../lib/machine/snapshot.js';

const dir = mkdtempSync(join(tmpdir(), 'nkvm-snapfile-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

function sample(name: string): { path: string; state: Uint8Array; ram: Uint8Array } {
  const path = join(dir, name);
  const state = new TextEncoder().encode(JSON.stringify({ hello: 'world' }));
  const ram = new Uint8Array(3 * SNAPSHOT_PAGE_SIZE + 123);
  for (let i = 0; i < ram.length; i++) ram[i] = (i * 7) & 0xff;
  writeSnapshotFile(path, { note: 'unit' }, [
    { name: 'state', kind: 'state', data: state },
    { name: 'memory:0', kind: 'memory', data: [ram.subarray(0, 5000), ram.subarray(5000)] },
  ]);
  return { path, state, ram };
}

function refusal(path: string, verify: VerifyLevel = 'full'): string {
  try {
    SnapshotFile.open(path, { verify }).close();
  } catch (e) {
    assert.ok(e instanceof NodeKvmError, String(e));
    return e.code;
  }
  return 'accepted';
}

function damage(path: string, at: number, f: (b: number) => number = (b) => b ^ 0xff): void {
  const bytes = readFileSync(path);
  bytes[at] = f(bytes[at]!);
  writeFileSync(path, bytes);
}

test('round trip: header, meta, sections (written in pieces) come back, memory is page-aligned', () => {
  const { path, state, ram } = sample('ok.nkvm');
  const f = SnapshotFile.open(path);
  try {
    assert.deepEqual(f.meta, { note: 'unit' });
    assert.equal(f.formatVersion, SNAPSHOT_FORMAT_VERSION);
    assert.deepEqual(f.read('state'), state);
    assert.deepEqual(f.read('memory:0'), ram);
    for (const s of f.header.sections) assert.equal(s.offset % SNAPSHOT_PAGE_SIZE, 0, `${s.name} is page-aligned`);
    const into = new Uint8Array(ram.length);
    f.readInto('memory:0', into);
    assert.deepEqual(into, ram);
    assert.throws(() => f.section('nope'), (e: unknown) => e instanceof NodeKvmError && e.code === 'ERR_SNAPSHOT_CORRUPT');
  } finally {
    f.close();
  }
  assert.equal(readFileSync(path).length, SnapshotFile.open(path).header.fileSize);
});

test('bad magic is refused as corrupt', () => {
  const { path } = sample('magic.nkvm');
  damage(path, 0);
  assert.equal(refusal(path), 'ERR_SNAPSHOT_CORRUPT');
});

test('another format version is refused with ERR_SNAPSHOT_VERSION', () => {
  const { path } = sample('version.nkvm');
  damage(path, 8, (b) => b + 1);
  assert.equal(refusal(path), 'ERR_SNAPSHOT_VERSION');
  try {
    SnapshotFile.open(path);
  } catch (e) {
    assert.match((e as Error).message, /format version 2 .*reads version 1/);
  }
});

test('a damaged header fails its checksum', () => {
  const { path } = sample('header.nkvm');
  damage(path, 70);
  assert.equal(refusal(path), 'ERR_SNAPSHOT_CORRUPT');
});

test('a damaged state section is refused even without hashing RAM', () => {
  const { path } = sample('state.nkvm');
  const f = SnapshotFile.open(path);
  const off = f.section('state').offset;
  f.close();
  damage(path, off + 2);
  assert.equal(refusal(path, 'state'), 'ERR_SNAPSHOT_CORRUPT');
});

test('a damaged memory section is refused by a full verify, not by a state-only one', () => {
  const { path } = sample('mem.nkvm');
  const f = SnapshotFile.open(path);
  const off = f.section('memory:0').offset;
  f.close();
  damage(path, off + 4096 + 17);
  assert.equal(refusal(path, 'full'), 'ERR_SNAPSHOT_CORRUPT');
  assert.equal(refusal(path, 'state'), 'accepted');
});

test('truncated files are refused: in RAM, in the header, in the preamble', () => {
  for (const [name, keep] of [['trunc-ram.nkvm', -1], ['trunc-hdr.nkvm', 80], ['trunc-pre.nkvm', 20], ['empty.nkvm', 0]] as const) {
    const { path } = sample(name);
    const size = readFileSync(path).length;
    truncateSync(path, keep < 0 ? size - 100 : keep);
    assert.equal(refusal(path, 'state'), 'ERR_SNAPSHOT_CORRUPT', name);
  }
});

test('a file that is not a snapshot is refused', () => {
  const path = join(dir, 'text.nkvm');
  writeFileSync(path, 'just some text that is longer than the sixty-four byte preamble of the format....');
  assert.equal(refusal(path), 'ERR_SNAPSHOT_CORRUPT');
});

test('loadSnapshot refuses a valid file that holds no machine state', () => {
  const { path } = sample('nomachine.nkvm');
  assert.throws(() => loadSnapshot(path), (e: unknown) => e instanceof NodeKvmError && e.code === 'ERR_SNAPSHOT_CORRUPT');
});
