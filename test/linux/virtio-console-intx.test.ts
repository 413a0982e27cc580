// virtio-console with INTx instead of MSI-X (pci=nomsi): Linux falls back to the shared
// level-triggered line and reads the ISR register; a port still works both ways.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requireKvm } from '../helpers/kvm.js';
import { shell } from './helpers.js';
import { boot, OTHER } from './virtio-helpers.js';

test('virtio-console over INTx (pci=nomsi): a port still works both ways', { timeout: 600_000 }, async (t) => {
  if (!requireKvm(t)) return;
  const m = await boot('pci=nomsi');
  try {
    const fn = m.platform.virtioPci[0]!;
    const diag = (): string => JSON.stringify({ status: fn.status, counters: fn.counters, intx: fn.intxAsserted, lastError: fn.lastError,
      queues: fn.queues.map((q) => ({ ready: q.ready, ...q.counters })), exits: m.counters });
    t.after(() => process.stderr.write(`virtio INTx diagnostics: ${diag()}\n`));
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
