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

test('a polling guest driver: handshake, a port both ways, a looping chain sets DEVICE_NEEDS_RESET', { timeout: 120_000 }, async (t) => {
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
  const result = await m.wait();
  const out = m.console.output;
  assert.equal(result.reason, 'debug-exit', out);
  assert.equal((result.code - 1) / 2, 1, out);
  assert.match(out, /^status=0000000b$/m, 'FEATURES_OK kept');
  const ctl = [...out.matchAll(/^ctl=([0-9a-f]{8})\nev=([0-9a-f]{8})$/gm)].map((x) => [parseInt(x[1]!, 16), parseInt(x[2]!, 16)]);
  assert.deepEqual(ctl, [[1, 1], [1, 7], [1, 6]], 'DEVICE_ADD, PORT_NAME, PORT_OPEN for port 1');
  assert.match(out, /^name=guest-test$/m);
  assert.equal(fromGuest, 'hello from the guest\n');
  assert.match(out, /^rx=hi guest$/m);
  assert.match(out, /^broken=0000004f$/m, 'DEVICE_NEEDS_RESET with the other bits kept');
  const fn = m.platform.virtioPci[0]!;
  assert.match(fn.lastError ?? '', /longer than the queue size/);
  assert.equal(m.counters.mmioMisses, 0);
  process.stderr.write(`virtio kvm guest: doorbell rings ${fn.counters.doorbellRings}, MMIO notifies ${fn.counters.mmioNotifies}\n`);
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
