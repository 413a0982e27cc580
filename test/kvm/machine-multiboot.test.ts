// A Multiboot v1 ELF32 kernel (test/guests/mb-info.S) booted through Machine.create with the
// kernel given as a path (so its name is known) and an initrd that becomes module 0. The kernel
// checks EAX/EBX and the multiboot_info itself, reports what it read on COM1 and ends through
// debug-exit with its failure bits; the test compares every value with what the host computes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { basename } from 'node:path';
import { requireKvm } from '../helpers/kvm.js';
import { buildGuestFile } from '../guests/build.js';
import { Machine } from '../../lib/machine/index.js';
import { EBDA_START, HIMEM_START } from '../../lib/platform/layout.js';

/** FNV-1a, 32-bit: what the guest computes over module 0. */
function fnv1a(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h;
}

/** A deterministic, non-trivial module payload (xorshift32), length not a multiple of a page. */
function payload(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0;
  for (let i = 0; i < length; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** Parse "key=XXXXXXXX" hex fields and "key=[text]" strings from the guest's report. */
function fields(output: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of output.split('\n')) {
    const s = /^([a-z_0-9]+)=\[(.*)\]$/.exec(line);
    if (s) { m.set(s[1]!, s[2]!); continue; }
    const h = /^([a-z_0-9]+)=([0-9a-f]{8}(?:-[0-9a-f]{8})?)$/.exec(line);
    if (h) m.set(h[1]!, h[2]!);
  }
  return m;
}

const hexField = (f: Map<string, string>, k: string): number => {
  const v = f.get(k);
  assert.ok(v !== undefined, `guest reported ${k}`);
  return parseInt(v, 16);
};

for (const { memory, bytes } of [{ memory: '64M', bytes: 64 << 20 }, { memory: '40M', bytes: 40 << 20 }]) {
  test(`Multiboot v1 ELF kernel sees magic, info, memory (${memory}), cmdline and module 0`, async (t) => {
    if (!requireKvm(t)) return;
    const kernel = buildGuestFile('mb-info.S', { linkAddress: 0x10_0000, format: 'elf32' });
    const initrd = payload(10_000 + (bytes >> 20), 0x1234_5678 + bytes);
    const cmdline = 'console=ttyS0 answer=42 quoted="a b"';
    await using m = await Machine.create({ kernel, initrd, cmdline, memory });
    assert.equal(m.boot.format, 'multiboot');
    m.start();
    await m.console.waitFor('multiboot done\n', { timeout: 30_000 });
    const result = await m.wait();
    const f = fields(m.console.output);

    assert.equal(hexField(f, 'magic'), 0x2badb002);
    const mbi = hexField(f, 'mbi');
    assert.ok(mbi >= 0x1000, `multiboot info at 0x${mbi.toString(16)} is not in page 0`);
    const flags = hexField(f, 'flags');
    for (const bit of [0, 2, 3, 6]) assert.ok(flags & (1 << bit), `flags bit ${bit} (0x${flags.toString(16)})`);
    assert.equal(hexField(f, 'mem_lower'), EBDA_START / 1024);
    assert.equal(hexField(f, 'mem_upper'), (bytes - HIMEM_START) / 1024);
    assert.equal(hexField(f, 'mmap_lower'), hexField(f, 'mem_lower'), 'mem_lower agrees with the mmap');
    assert.equal(hexField(f, 'mmap_upper'), hexField(f, 'mem_upper'), 'mem_upper agrees with the mmap');
    assert.equal(f.get('cmdline'), `${basename(kernel)} ${cmdline}`);
    assert.equal(f.get('loader'), 'node-kvm');

    assert.equal(hexField(f, 'mods'), 1);
    const [start, end] = f.get('mod0')!.split('-').map((x) => parseInt(x, 16)) as [number, number];
    assert.equal(end - start, initrd.length);
    assert.equal(start % 0x1000, 0, 'module 0 is page aligned');
    assert.ok(start >= hexField(f, 'kernel_end'), 'module 0 lies above the kernel');
    assert.equal(f.get('mod0name'), 'initrd');
    assert.equal(hexField(f, 'mod0fnv'), fnv1a(initrd), 'module 0 bytes as the guest read them');

    // The guest's own verdict: no failure bit set.
    assert.deepEqual({ reason: result.reason, code: result.code }, { reason: 'debug-exit', code: 1 }, m.console.output);
  });
}
