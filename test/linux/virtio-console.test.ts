// virtio-console ports with the real Debian kernel: Linux binds virtio_pci and virtio_console,
// the ports appear by name, 64 MiB go each way with matching sha256, and a host that stops
// reading pauses the guest writer without losing a byte. Interrupts by MSI-X (KVM_SIGNAL_MSI)
// and notifications by KVM_IOEVENTFD; a second boot with pci=nomsi proves the INTx fallback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { requireKvm } from '../helpers/kvm.js';
import { GUEST_PROMPT } from '../../lib/images/index.js';
import { DEFAULT_CMDLINE } from '../../lib/machine/cmdline.js';
import { Machine } from '../../lib/machine/index.js';
import { BOOT_TIMEOUT_MS, defaultImage, shell } from './helpers.js';

const PORT = 'org.nodekvm.agent.0';
const OTHER = 'second-port';
const MIB = 1024 * 1024;
const TRANSFER_TIMEOUT_MS = 600_000;

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

async function boot(extraCmdline = ''): Promise<Machine> {
  const img = await defaultImage();
  const m = await Machine.create({
    kernel: img.vmlinux, initrd: img.initrd, cmdline: `${DEFAULT_CMDLINE} quiet ${extraCmdline}`, memory: '256M',
    ports: [{ name: PORT }, { name: OTHER }],
  });
  m.start();
  await m.console.waitFor(GUEST_PROMPT, { timeout: BOOT_TIMEOUT_MS });
  return m;
}

test('virtio-console: ports by name, 64 MiB each way with matching sha256, a paused host reader pauses the guest', { timeout: 1_500_000 }, async (t) => {
  if (!requireKvm(t)) return;
  const m = await boot();
  try {
    const fn = m.platform.virtioPci[0]!;
    const con = m.platform.virtioConsole!;
    // Bound by the drivers, named as asked.
    const names = await shell(m, 'for p in /sys/class/virtio-ports/*; do echo "$(basename $p)=$(cat $p/name)"; done; ls /dev/vport*; '
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
    assert.equal(gd.status, 0, gd.output);
    assert.equal(gd.output.trim().split(/\s+/)[0], hostSha, 'guest read exactly what the host wrote');
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
    assert.equal(gu.status, 0, gu.output);
    assert.equal(got.bytes, 64 * MIB);
    assert.equal(got.sha, gu.output.trim().split(/\s+/)[0], 'host read exactly what the guest wrote');
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

test('virtio-console over INTx (pci=nomsi): a port still works both ways', { timeout: 600_000 }, async (t) => {
  if (!requireKvm(t)) return;
  const m = await boot('pci=nomsi');
  try {
    const fn = m.platform.virtioPci[0]!;
    const r = await shell(m, 'cat /sys/class/virtio-ports/vport*p2/name; grep -c "IO-APIC.*virtio\\|virtio.*IO-APIC" /proc/interrupts');
    assert.match(r.output, /^second-port$/m);
    assert.equal(fn.msix.enabled, false);
    const s = m.port(OTHER);
    // One open file for both directions: a guest close is the host stream's end.
    const guest = shell(m, 'exec 3<>/dev/vport*p2; read line <&3; echo "got:$line"; echo pong >&3; exec 3>&-');
    s.write('ping\n');
    const reply = await new Promise<string>((resolve) => s.once('data', (d: Buffer) => resolve(d.toString())));
    assert.equal(reply, 'pong\n');
    const g = await guest;
    assert.match(g.output, /got:ping/);
    s.destroy();
  } finally {
    await m.close();
  }
});
