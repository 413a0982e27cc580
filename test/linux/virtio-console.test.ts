// virtio-console ports with the real Debian kernel: Linux binds virtio_pci and virtio_console,
// the ports appear by name, 64 MiB go each way with matching sha256, and a host that stops
// reading pauses the guest writer without losing a byte. Interrupts by MSI-X (KVM_SIGNAL_MSI)
// and notifications by KVM_IOEVENTFD; then the same over INTx with the guest told pci=nomsi.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { requireKvm } from '../helpers/kvm.js';
import { shell } from './helpers.js';
import { boot, MIB, PORT, TRANSFER_TIMEOUT_MS } from './virtio-helpers.js';

/** Write `total` random bytes to `s` in 1 MiB chunks, honouring backpressure; returns the sha256. */
async function writeRandom(s: Duplex, total: number): Promise<string> {
  const h = createHash('sha256');
  for (let done = 0; done < total; done += MIB) {
    const chunk = randomBytes(Math.min(MIB, total - done));
    h.update(chunk);
    if (!s.write(chunk)) await new Promise((r) => s.once('drain', r));
  }
  await new Promise<void>((resolve, reject) => s.end((err?: Error | null) => (err ? reject(err) : resolve())));
  return h.digest('hex');
}

/** The sha256 sum in a shell command's output (kernel messages may be interleaved on the console). */
function shaIn(output: string): string | undefined {
  return /\b([0-9a-f]{64})\b/.exec(output)?.[1];
}

/** Read `s` to its end; returns the byte count and sha256. */
async function readAll(s: Duplex): Promise<{ bytes: number; sha: string }> {
  const h = createHash('sha256');
  let bytes = 0;
  for await (const chunk of s) {
    h.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { bytes, sha: h.digest('hex') };
}

test('virtio-console: ports by name, 64 MiB each way with matching sha256, a paused host reader pauses the guest', { timeout: 1_500_000 }, async (t) => {
  if (!requireKvm(t)) return;
  const m = await boot();
  try {
    const fn = m.platform.virtioPci[0]!;
    const con = m.platform.virtioConsole!;
    t.after(() => process.stderr.write(`virtio diagnostics: ${JSON.stringify({ status: fn.status, counters: fn.counters, msix: fn.msix.counters,
      lastError: fn.lastError, queues: fn.queues.map((q) => ({ ready: q.ready, ...q.counters })), console: con.counters,
      ports: con.portNames.map((n) => con.port(n)!.counters), exits: m.counters })}\n`));
    // Bound by the drivers, named as asked.
    const names = await shell(m, 'for p in /sys/class/virtio-ports/*; do echo "$(basename $p)=$(cat $p/name)"; done; ls -1 /dev/vport*; '
      + 'basename $(readlink /sys/bus/pci/devices/*/driver) | sort -u');
    assert.equal(names.status, 0, names.output);
    assert.match(names.output, new RegExp(`^vport(\\d+)p1=${PORT.replace(/\./g, '\\.')}$`, 'm'));
    assert.match(names.output, /^vport\d+p2=second-port$/m);
    assert.match(names.output, /^virtio-pci$/m);
    const dev = /^vport(\d+)p1=/m.exec(names.output)![1]!;
    const vport = `/dev/vport${dev}p1`;
    assert.match(names.output, new RegExp(`^${vport}$`, 'm'));
    // MSI-X: one vector per queue, delivered with KVM_SIGNAL_MSI.
    const irqs = await shell(m, 'grep -c "virtio.*PCI-MSI\\|PCI-MSI.*virtio" /proc/interrupts');
    assert.ok(Number(irqs.output.trim()) >= 2, `MSI-X vectors for virtio in /proc/interrupts: ${irqs.output}`);
    assert.ok(fn.msix.enabled, 'the driver enabled MSI-X');

    // Host → guest: 64 MiB; the guest hashes what it reads until the host ends the stream.
    const down = m.port(PORT);
    const guestDown = shell(m, `sha256sum < ${vport}`, TRANSFER_TIMEOUT_MS);
    const t0 = Date.now();
    const hostSha = await writeRandom(down, 64 * MIB);
    const gd = await guestDown;
    const downMs = Date.now() - t0;
    process.stderr.write(`virtio-console: 64 MiB host->guest in ${downMs} ms (guest: sha256sum of the port)\n`);
    assert.equal(gd.status, 0, gd.output);
    assert.equal(shaIn(gd.output), hostSha, `guest read exactly what the host wrote: ${gd.output}`);
    down.destroy();

    // Guest → host: 64 MiB; the guest hashes what it writes (tee), the host what it reads.
    // The host reads nothing for a while first: the guest must stop, and nothing may be lost.
    const up = m.port(PORT);
    const port = con.port(PORT)!;
    const before = port.counters.fromGuest;
    const guestUp = shell(m, `dd if=/dev/urandom bs=1M count=64 2>/dev/null | tee ${vport} | sha256sum`, TRANSFER_TIMEOUT_MS);
    let settled = false;
    void guestUp.then(() => { settled = true; });
    // Wait until the stream's buffer is full and the device holds back.
    const deadline = Date.now() + 120_000;
    while (port.counters.guestHeld === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    assert.ok(port.counters.guestHeld > 0, 'the device held the guest back once the host stream was full');
    const held = port.counters.fromGuest - before;
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal(port.counters.fromGuest - before, held, 'no guest data taken while the host does not read');
    assert.ok(held < 4 * MIB, `bounded: ${held} bytes taken before the pause`);
    assert.equal(settled, false, 'the guest writer is blocked, not finished');
    const t1 = Date.now();
    const got = await readAll(up);
    const gu = await guestUp;
    const upMs = Date.now() - t1;
    process.stderr.write(`virtio-console: 64 MiB guest->host in ${upMs} ms after the host resumed reading (guest: dd from urandom | tee port | sha256sum)\n`);
    assert.equal(gu.status, 0, gu.output);
    assert.equal(got.bytes, 64 * MIB);
    assert.equal(got.sha, shaIn(gu.output), `host read exactly what the guest wrote: ${gu.output}`);
    up.destroy();

    // Notifications came through KVM_IOEVENTFD (no MMIO exit for a kick), no queue broke.
    assert.ok(fn.counters.doorbellRings > 0, JSON.stringify(fn.counters));
    assert.equal(fn.counters.needsReset, 0, fn.lastError);
    process.stderr.write(`virtio-console: 64 MiB host->guest ${downMs} ms, guest->host ${upMs} ms (incl. guest urandom+sha256); `
      + `doorbell rings ${fn.counters.doorbellRings}, MMIO notifies ${fn.counters.mmioNotifies}, `
      + `MSI-X sent ${fn.msix.counters.sent}; exits ${JSON.stringify(m.counters)}\n`);
  } finally {
    await m.close();
  }
});

test('virtio-console over INTx (pci=nomsi): ports by name, 4 MiB each way with matching sha256', { timeout: 900_000 }, async (t) => {
  if (!requireKvm(t)) return;
  const m = await boot('pci=nomsi');
  try {
    const fn = m.platform.virtioPci[0]!;
    t.after(() => process.stderr.write(`virtio INTx diagnostics: ${JSON.stringify({ status: fn.status, counters: fn.counters,
      lastError: fn.lastError, queues: fn.queues.map((q) => ({ ready: q.ready, ...q.counters })), exits: m.counters })}\n`));
    const names = await shell(m, 'for p in /sys/class/virtio-ports/*; do echo "$(basename $p)=$(cat $p/name)"; done; grep virtio /proc/interrupts');
    assert.equal(names.status, 0, names.output);
    const dev = new RegExp(`^vport(\\d+)p1=${PORT.replace(/\./g, '\\.')}$`, 'm').exec(names.output)?.[1];
    assert.ok(dev !== undefined, names.output);
    assert.match(names.output, /IO-APIC.*virtio/, 'the driver took the INTx line');
    assert.equal(fn.msix.enabled, false, 'MSI-X stays off');
    const vport = `/dev/vport${dev}p1`;

    const down = m.port(PORT);
    const guestDown = shell(m, `sha256sum < ${vport}`, TRANSFER_TIMEOUT_MS);
    const hostSha = await writeRandom(down, 4 * MIB);
    const gd = await guestDown;
    assert.equal(gd.status, 0, gd.output);
    assert.equal(shaIn(gd.output), hostSha, gd.output);
    down.destroy();

    const up = m.port(PORT);
    const guestUp = shell(m, `head -c ${4 * MIB} /dev/urandom | tee ${vport} | sha256sum`, TRANSFER_TIMEOUT_MS);
    const got = await readAll(up);
    const gu = await guestUp;
    assert.equal(gu.status, 0, gu.output);
    assert.equal(got.bytes, 4 * MIB);
    assert.equal(got.sha, shaIn(gu.output), gu.output);
    up.destroy();
    // The shell still answers after the transfers (the stall seen before: a kworker spinning).
    const after = await shell(m, 'echo alive');
    assert.match(after.output, /alive/);
    assert.equal(fn.counters.needsReset, 0, fn.lastError);
  } finally {
    await m.close();
  }
});
