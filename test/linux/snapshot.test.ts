// Snapshots of a real Linux guest (the default image, vmlinux, 256M): boot to the shell,
// snapshot, run a command, restore, and the shell still answers; the snapshot saved to a file
// starts a clone whose shell answers too (RAM mapped copy-on-write from the file).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getDefaultImage, GUEST_PROMPT, READY_MARKER } from '../../lib/images/index.js';
import { DEFAULT_CMDLINE } from '../../lib/machine/cmdline.js';
import { Machine } from '../../lib/machine/index.js';
import { loadSnapshot } from '../../lib/machine/snapshot.js';
import { requireKvm } from '../helpers/kvm.js';

/** An L2 Linux takes 8-16 s to userspace inside the nested lab. */
const BOOT_TIMEOUT_MS = 180_000;
const COMMAND_TIMEOUT_MS = 60_000;

/** Type `expr` as $((expr)) and wait for `want` on its own line, then the prompt. */
async function calc(m: Machine, expr: string, want: number): Promise<void> {
  m.console.write(`echo $((${expr}))\n`);
  await m.console.waitFor(new RegExp(`\\n${want}\\r?\\n`), { timeout: COMMAND_TIMEOUT_MS });
  await m.console.waitFor(GUEST_PROMPT, { timeout: COMMAND_TIMEOUT_MS });
}

test('snapshot at the shell, run a command, restore: the shell still works; a clone from the file works', async (t) => {
  if (!requireKvm(t)) return;
  const img = await getDefaultImage({ build: true, verify: process.env.NODE_KVM_LAB === '1' ? 'size' : 'full' });
  const dir = mkdtempSync(join(tmpdir(), 'nkvm-linux-snap-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  await using m = await Machine.create({ kernel: img.vmlinux, initrd: img.initrd, cmdline: `${DEFAULT_CMDLINE} quiet`, memory: '256M' });
  m.start();
  await m.console.waitFor(READY_MARKER, { timeout: BOOT_TIMEOUT_MS });
  await m.console.waitFor(GUEST_PROMPT, { timeout: COMMAND_TIMEOUT_MS });

  const snap = await m.snapshot();
  t.after(() => snap.close());
  assert.equal(m.state, 'running');
  assert.equal(snap.state.vcpus.length, 1);
  await calc(m, '1+2', 3);

  // Leave a mark after the snapshot point: it must be gone after the restore.
  m.console.write('touch /tmp/after-snapshot; echo marked\n');
  await m.console.waitFor(/\nmarked\r?\n/, { timeout: COMMAND_TIMEOUT_MS });
  await m.console.waitFor(GUEST_PROMPT, { timeout: COMMAND_TIMEOUT_MS });

  const t0 = performance.now();
  await m.restore(snap);
  await calc(m, '40+2', 42);
  t.diagnostic(`restore to a shell answer: ${(performance.now() - t0).toFixed(0)} ms`);
  m.console.write('test -e /tmp/after-snapshot && echo still-there || echo gone\n');
  await m.console.waitFor(/\ngone\r?\n/, { timeout: COMMAND_TIMEOUT_MS });
  await m.console.waitFor(GUEST_PROMPT, { timeout: COMMAND_TIMEOUT_MS });

  const path = join(dir, 'shell.nkvm');
  snap.save(path);
  await m.stop();
  const loaded = loadSnapshot(path, { verify: 'state' });
  t.after(() => loaded.close());
  await using clone = await Machine.fromSnapshot(loaded);
  clone.start();
  await calc(clone, '6*7', 42);
  await calc(clone, '1+2', 3);
  clone.console.write('poweroff\n');
  const r = await clone.wait();
  assert.equal(r.reason, 'poweroff', `${r.reason}: ${r.detail ?? ''}\n${clone.console.tail()}`);
});
