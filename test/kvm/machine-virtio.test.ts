// A small guest drives the virtio-console by polling (test/guests/plat-virtio.S): capability
// walk, feature negotiation, queue setup, the multiport control handshake, data both ways
// through a port, and DEVICE_NEEDS_RESET for a descriptor chain that loops. Notifications go
// through KVM_IOEVENTFD here too, so the device runs from the event loop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { requireKvm } from '../helpers/kvm.js';
import { buildGuestFile } from '../guests/build.js';
import { Machine } from '../../lib/machine/index.js';

test('a polling guest driver: handshake, a port both ways, a looping chain sets DEVICE_NEEDS_RESET', { timeout: 180_000 }, async (t) => {
  if (!requireKvm(t)) return;
  const kernel = new Uint8Array(readFileSync(buildGuestFile('plat-virtio.S', { linkAddress: 0x10000, format: 'flat' })));
  await using m = await Machine.create({ kernel, memory: '32M', flat: { mode: 'protected' }, ports: [{ name: 'guest-test' }] });
  const port = m.port('guest-test');
  let fromGuest = '';
  port.on('data', (d: Buffer) => {
    fromGuest += d.toString();
    if (fromGuest.endsWith('\n')) port.write('hi guest');
  });
  m.start();
  // The guest gives up on its own after 2^26 polls (seconds here, tens of seconds in the lab);
  // this bound only catches a guest that stops running, and says what it printed.
  const result = await Promise.race([m.wait(), new Promise<never>((_, reject) => setTimeout(() =>
    reject(new Error(`the guest did not finish; console:\n${m.console.output}\ntransport: ${JSON.stringify(m.platform.virtioPci[0]?.counters)}`)), 150_000).unref())]);
  const out = m.console.output;
  assert.equal(result.reason, 'debug-exit', out);
  assert.equal((result.code - 1) / 2, 1, out);
  assert.match(out, /^status=0000000b$/m, 'FEATURES_OK kept');
  const ctl = [...out.matchAll(/^ctl=([0-9a-f]{8})\nev=([0-9a-f]{8})$/gm)].map((x) => [parseInt(x[1]!, 16), parseInt(x[2]!, 16)]);
  assert.deepEqual(ctl, [[1, 1], [1, 7], [1, 6]], 'DEVICE_ADD, PORT_NAME, PORT_OPEN for port 1');
  assert.match(out, /^name=guest-test$/m);
  assert.equal(fromGuest, 'hello from the guest\n!');
  // INTx through the in-kernel IOAPIC (level, active-low) into a real handler: the interrupt
  // pending from the handshake, then a fresh one for the "!" buffer. (On kvm_pvm each one is
  // delivered a second time after the EOI with ISR already clear, as `irqempty` counts; a
  // driver's handler sees ISR 0 and returns "not mine", as Linux's vp_interrupt does.)
  const hex = (k: string): number => parseInt(new RegExp(`^${k}=([0-9a-f]{8})$`, 'm').exec(out)?.[1] ?? 'x', 16);
  assert.ok(hex('irqs') >= 1, out);
  assert.ok((hex('isrseen') & 1) === 1, 'a queue interrupt seen in ISR');
  assert.ok(hex('irqs2') - hex('irqempty') >= 2, 'two interrupts with ISR bits set');
  assert.match(out, /^rx=hi guest$/m);
  assert.match(out, /^broken=0000004f$/m, 'DEVICE_NEEDS_RESET with the other bits kept');
  // The configuration change (DEVICE_NEEDS_RESET) went to INTx with interrupts off: ISR bit 1,
  // cleared by the read.
  assert.match(out, /^isr=00000002$/m);
  assert.match(out, /^isr2=00000000$/m);
  const fn = m.platform.virtioPci[0]!;
  assert.equal(fn.intxAsserted, false, 'INTx lowered by the ISR read');
  assert.match(fn.lastError ?? '', /longer than the queue size/);
  assert.equal(m.counters.mmioMisses, 0);
  process.stderr.write(`virtio kvm guest: INTx deliveries ${hex('irqs2')} (ISR clear in ${hex('irqempty')}); doorbell rings ${fn.counters.doorbellRings}, MMIO notifies ${fn.counters.mmioNotifies}\n`);
});

test('machine.port(): unknown names and a second open are refused; close releases the doorbell watch', async (t) => {
  if (!requireKvm(t)) return;
  const { native } = await import('../../lib/native.js');
  await new Promise((r) => setImmediate(r)); // handles closed by earlier tests are freed a turn later
  const before = native().eventfdWatchCount();
  const kernel = new Uint8Array(readFileSync(buildGuestFile('plat-virtio.S', { linkAddress: 0x10000, format: 'flat' })));
  const m = await Machine.create({ kernel, memory: '32M', flat: { mode: 'protected' }, ports: [{ name: 'a' }] });
  try {
    assert.equal(native().eventfdWatchCount(), before + 1);
    assert.throws(() => m.port('b'), { code: 'ERR_NO_SUCH_PORT' });
    const s = m.port('a');
    assert.throws(() => m.port('a'), { code: 'ERR_PORT_BUSY' });
    s.destroy();
    m.port('a').destroy();
  } finally {
    await m.close();
  }
  await new Promise((r) => setImmediate(r));
  assert.equal(native().eventfdWatchCount(), before, 'the eventfd watch is freed');
  const plain = await Machine.create({ kernel, memory: '32M', flat: { mode: 'protected' } });
  try {
    assert.throws(() => plain.port('a'), { code: 'ERR_NO_SUCH_PORT' });
    assert.equal(plain.platform.virtioPci.length, 0);
  } finally {
    await plain.close();
  }
});
