// virtio-console multiport, driven as Linux's virtio_console drives it: control messages
// (DEVICE_READY → DEVICE_ADD, PORT_READY → PORT_NAME + PORT_OPEN, PORT_OPEN from the guest),
// data both ways with flow control, bad control input, a reset mid-transfer, port options.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { VirtioConsole, validatePorts, VIRTIO_CONSOLE_DEVICE_ADD, VIRTIO_CONSOLE_DEVICE_READY, VIRTIO_CONSOLE_PORT_NAME,
  VIRTIO_CONSOLE_PORT_OPEN, VIRTIO_CONSOLE_PORT_READY } from '../../lib/devices/virtio/console.js';
import { bit, TRANSPORT_FEATURES } from '../../lib/devices/virtio/features.js';
import * as C from '../../lib/devices/virtio/common-cfg.js';
import { plug, settle } from './virtio-pci-driver.js';
import type { TestDriver } from './virtio-driver.js';

const FEATURES = TRANSPORT_FEATURES | bit(1);
const PAGE = 4096;

interface Guest {
  con: VirtioConsole;
  drv: ReturnType<typeof plug>['drv'];
  mem: ReturnType<typeof plug>['mem'];
  fn: ReturnType<typeof plug>['fn'];
  q: TestDriver[];
  /** Control messages the device sent, decoded. */
  control(): Array<{ id: number; event: number; value: number; extra: string }>;
  send(id: number, event: number, value: number): Promise<void>;
  /** Give port `id`'s receive queue `n` page buffers (and notify, unless `notify` is false). */
  rxBuffers(id: number, n: number, notify?: boolean): void;
  /** Bytes the device put in port `id`'s receive buffers since the last call. */
  received(id: number): Buffer;
  /** Queue `data` on port `id`'s transmit queue (one chain per 4 KiB). */
  transmit(id: number, data: Buffer): Promise<void>;
  txUsed(id: number): number;
}

const rxq = (id: number): number => (id === 0 ? 0 : 2 * id + 2);
const txq = (id: number): number => (id === 0 ? 1 : 2 * id + 3);

async function boot(names = ['org.nodekvm.agent.0', 'second']): Promise<Guest> {
  const con = new VirtioConsole(names.map((name) => ({ name })));
  const { drv, mem, fn } = plug(con);
  assert.equal(drv.negotiate(FEATURES), true);
  assert.equal(drv.r(0x2004, 4), names.length + 1, 'max_nr_ports');
  const q: TestDriver[] = [];
  const n = drv.r(C.VIRTIO_PCI_COMMON_NUMQ, 2);
  assert.equal(n, 2 * (names.length + 2));
  for (let i = 0; i < n; i++) q[i] = drv.setupQueue(i, i === 2 || i === 3 ? 64 : 256);
  drv.driverOk();
  // Control receive buffers, as fill_queue does.
  const ctlBufs = new Map<number, number>();
  for (let i = 0; i < 32; i++) {
    const a = drv.alloc(PAGE, PAGE);
    ctlBufs.set(i, a);
    q[2]!.publish(q[2]!.chain(i, [{ addr: a, len: PAGE, write: true }]));
  }
  drv.notify(2);
  let ctlNext = 0;
  const rxBufs = new Map<number, Map<number, number>>();
  const rxNext = new Map<number, number>();
  let txSlot = 0;
  const g: Guest = {
    con, drv, mem, fn, q,
    control() {
      const out: Array<{ id: number; event: number; value: number; extra: string }> = [];
      for (const u of q[2]!.takeUsed()) {
        const a = ctlBufs.get(u.id)!;
        const b = Buffer.from(mem.read(a, u.len));
        out.push({ id: b.readUInt32LE(0), event: b.readUInt16LE(4), value: b.readUInt16LE(6), extra: b.subarray(8).toString() });
        // Recycle the buffer, as the driver does.
        const slot = ctlNext++ % 32;
        q[2]!.publish(q[2]!.chain(u.id, [{ addr: a, len: PAGE, write: true }]));
        void slot;
      }
      drv.notify(2);
      return out;
    },
    async send(id, event, value) {
      const a = drv.alloc(8, 8);
      const m = Buffer.alloc(8);
      m.writeUInt32LE(id, 0);
      m.writeUInt16LE(event, 4);
      m.writeUInt16LE(value, 6);
      mem.write(a, m);
      const slot = txSlot++ % 64;
      q[3]!.publish(q[3]!.chain(slot, [{ addr: a, len: 8 }]));
      drv.notify(3);
      await settle();
    },
    rxBuffers(id, n, notify = true) {
      const qi = rxq(id);
      let m = rxBufs.get(id);
      if (m === undefined) rxBufs.set(id, (m = new Map()));
      for (let i = 0; i < n; i++) {
        const slot = (rxNext.get(id) ?? 0) % 256;
        rxNext.set(id, slot + 1);
        const a = m.get(slot) ?? drv.alloc(PAGE, PAGE);
        m.set(slot, a);
        q[qi]!.publish(q[qi]!.chain(slot, [{ addr: a, len: PAGE, write: true }]));
      }
      if (notify) drv.notify(qi);
    },
    received(id) {
      const parts = q[rxq(id)]!.takeUsed().map((u) => Buffer.from(mem.read(rxBufs.get(id)!.get(u.id)!, u.len)));
      return Buffer.concat(parts);
    },
    async transmit(id, data) {
      const qi = txq(id);
      for (let off = 0; off < data.length; off += PAGE) {
        const part = data.subarray(off, off + PAGE);
        const a = drv.alloc(part.length, 16);
        mem.write(a, part);
        const slot = q[qi]!.availIdx % 256;
        q[qi]!.publish(q[qi]!.chain(slot, [{ addr: a, len: part.length }]));
      }
      drv.notify(qi);
      await settle();
    },
    txUsed(id) {
      return q[txq(id)]!.takeUsed().length;
    },
  };
  await g.send(0xffff_ffff, VIRTIO_CONSOLE_DEVICE_READY, 1);
  return g;
}

test('port options: empty, too long, duplicate, slash, not an array', () => {
  assert.deepEqual(validatePorts(undefined), []);
  const bad: Array<[unknown, string]> = [
    [[{ name: '' }], 'ERR_INVALID_PORT'],
    [[{}], 'ERR_INVALID_PORT'],
    [[{ name: 'x'.repeat(256) }], 'ERR_INVALID_PORT'],
    [[{ name: 'a/b' }], 'ERR_INVALID_PORT'],
    [[{ name: 'a\nb' }], 'ERR_INVALID_PORT'],
    [[{ name: 'a' }, { name: 'a' }], 'ERR_DUPLICATE_PORT'],
    ['a', 'ERR_INVALID_PORT'],
    [Array.from({ length: 32 }, (_, i) => ({ name: `p${i}` })), 'ERR_INVALID_PORT'],
  ];
  for (const [ports, code] of bad) assert.throws(() => validatePorts(ports), { code }, JSON.stringify(ports).slice(0, 60));
  assert.equal(validatePorts([{ name: 'x'.repeat(255) }]).length, 1);
});

test('multiport handshake: DEVICE_ADD per port, then name and host-open on PORT_READY', async () => {
  const g = await boot();
  await settle();
  assert.deepEqual(g.control(), [
    { id: 1, event: VIRTIO_CONSOLE_DEVICE_ADD, value: 1, extra: '' },
    { id: 2, event: VIRTIO_CONSOLE_DEVICE_ADD, value: 1, extra: '' },
  ]);
  await g.send(1, VIRTIO_CONSOLE_PORT_READY, 1);
  await g.send(2, VIRTIO_CONSOLE_PORT_READY, 1);
  await settle();
  assert.deepEqual(g.control(), [
    { id: 1, event: VIRTIO_CONSOLE_PORT_NAME, value: 1, extra: 'org.nodekvm.agent.0' },
    { id: 1, event: VIRTIO_CONSOLE_PORT_OPEN, value: 1, extra: '' },
    { id: 2, event: VIRTIO_CONSOLE_PORT_NAME, value: 1, extra: 'second' },
    { id: 2, event: VIRTIO_CONSOLE_PORT_OPEN, value: 1, extra: '' },
  ]);
  // The control transmit buffers came back.
  assert.equal(g.q[3]!.takeUsed().length, 3);
  assert.equal(g.con.counters.badControl, 0);
});

test('bad control messages are counted, never thrown: unknown port, unknown event, short message', async () => {
  const g = await boot();
  await g.send(7, VIRTIO_CONSOLE_PORT_READY, 1);
  await g.send(1, 99, 0);
  const a = g.drv.alloc(4, 4);
  g.q[3]!.publish(g.q[3]!.chain(10, [{ addr: a, len: 4 }]));
  g.drv.notify(3);
  await settle();
  assert.equal(g.con.counters.badControl, 3);
  assert.equal(g.fn.counters.needsReset, 0);
});

async function openPort(g: Guest, id: number): Promise<void> {
  await g.send(id, VIRTIO_CONSOLE_PORT_READY, 1);
  await g.send(id, VIRTIO_CONSOLE_PORT_OPEN, 1);
  g.control();
}

test('host → guest: writes wait for guest buffers and complete when the bytes are in them', async () => {
  const g = await boot();
  await openPort(g, 1);
  const s = (await import('../../lib/devices/virtio/console-port.js')) && g.con.port('org.nodekvm.agent.0')!.open();
  const data = Buffer.alloc(10 * PAGE + 123);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
  let done = false;
  s.write(data, () => { done = true; });
  await settle();
  assert.equal(done, false, 'no guest buffers yet');
  g.rxBuffers(1, 4);
  await settle();
  assert.equal(done, false, 'only 4 pages so far');
  let got = g.received(1);
  assert.equal(got.length, 4 * PAGE);
  g.rxBuffers(1, 20);
  await settle();
  assert.equal(done, true);
  got = Buffer.concat([got, g.received(1)]);
  assert.deepEqual(got, data);
  // end(): after the data, the guest is told the host closed (its reads then see EOF).
  s.end();
  await once(s, 'finish');
  await settle();
  assert.deepEqual(g.control(), [{ id: 1, event: VIRTIO_CONSOLE_PORT_OPEN, value: 0, extra: '' }]);
});

test('host → guest: several host writes share one guest buffer (a frame header does not take a buffer of its own)', async () => {
  const g = await boot();
  await openPort(g, 1);
  const s = g.con.port('org.nodekvm.agent.0')!.open();
  const parts = [Buffer.from('header:12by'), Buffer.alloc(PAGE + 100, 0x5a), Buffer.from('tail')];
  for (const p of parts) s.write(p);
  await settle();
  g.rxBuffers(1, 4);
  await settle();
  const used = g.q[rxq(1)]!.takeUsed();
  assert.deepEqual(used.map((u) => u.len), [PAGE, 11 + 100 + 4], 'two full-as-possible buffers, not one per write');
  assert.equal(g.con.port('org.nodekvm.agent.0')!.pendingToGuest, 0);
});

test('receive notifications: none asked for while no host data waits; one per batch of re-posted buffers while it does', async () => {
  const g = await boot();
  await openPort(g, 1);
  const q = g.q[rxq(1)]!;
  const s = g.con.port('org.nodekvm.agent.0')!.open();
  g.rxBuffers(1, 256);
  await settle();
  // Nothing to send: no notification wanted until the driver has added 255 buffers past the
  // device's position (0: it took none), which the 256 already there never reach.
  assert.equal(q.availEvent, 255);
  // More data than buffers: all 256 filled, 1 MiB + 1 page waits; the guest holds 256 full
  // buffers and is asked to notify after re-posting 64 (a quarter, at most 64).
  s.write(Buffer.alloc(257 * PAGE, 1));
  await settle();
  assert.equal(g.received(1).length, 256 * PAGE);
  assert.equal(q.availEvent, 256 + 63);
  // A driver honouring avail_event does not notify for fewer than 64; the fallback poll
  // (100 ms) delivers the rest anyway, for a driver that never posts enough.
  g.rxBuffers(1, 2, false);
  await settle();
  assert.equal(g.received(1).length, 0);
  await new Promise((r) => setTimeout(r, 150));
  await settle();
  assert.equal(g.received(1).length, PAGE);
  assert.equal(q.availEvent, 257 + 255, 'all sent (one of the two buffers taken): no notifications wanted again');
});

test('guest → host: data in order; a host that does not read holds the guest back (bounded); EOF on guest close', async () => {
  const g = await boot();
  await openPort(g, 2);
  const port = g.con.port('second')!;
  const s = port.open();
  // 2 MiB from the guest while nobody reads: the device takes at most the stream's buffer.
  const data = Buffer.alloc(512 * PAGE);
  for (let i = 0; i < data.length; i++) data[i] = (i * 13 + (i >> 12)) & 0xff;
  // The queue holds 256 chains: send in two halves.
  await g.transmit(2, data.subarray(0, 256 * PAGE));
  await settle(5);
  const taken = port.counters.fromGuest;
  assert.ok(taken > 0 && taken <= 320 * 1024, `took ${taken} bytes with no reader`);
  assert.ok(port.counters.guestHeld > 0);
  const returned = g.txUsed(2);
  assert.ok(returned < 256, 'the rest of the guest buffers stay unconsumed');
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  await settle(10);
  assert.equal(g.txUsed(2), 256 - returned);
  await g.transmit(2, data.subarray(256 * PAGE));
  await settle(10);
  assert.deepEqual(Buffer.concat(chunks), data);
  // Guest closes: the host stream ends.
  const ended = once(s, 'end');
  await g.send(2, VIRTIO_CONSOLE_PORT_OPEN, 0);
  await ended;
  // A host write after the guest closed: ERR_PORT_CLOSED (the write's callback and 'error').
  const errorEvent = once(s, 'error');
  const err = await new Promise<Error | null | undefined>((r) => s.write(Buffer.from('late'), r));
  assert.equal((err as { code?: string }).code, 'ERR_PORT_CLOSED');
  assert.equal(((await errorEvent)[0] as { code?: string }).code, 'ERR_PORT_CLOSED');
  // The port can be opened again (a new stream) once this one is done.
  port.open().destroy();
});

test('a port opened twice on the host is refused until the first stream is done', async () => {
  const g = await boot();
  const port = g.con.port('second')!;
  const s = port.open();
  assert.throws(() => port.open(), { code: 'ERR_PORT_BUSY' });
  s.destroy();
  await settle();
  const s2 = port.open();
  s2.destroy();
});

test('reset mid-transfer: pending host writes fail with ERR_PORT_CLOSED, the device comes back after re-init', async () => {
  const g = await boot();
  await openPort(g, 1);
  const s = g.con.port('org.nodekvm.agent.0')!.open();
  s.on('error', () => {});
  const pending = new Promise<Error | null | undefined>((r) => s.write(Buffer.alloc(64 * 1024), r));
  g.rxBuffers(1, 2);
  await settle();
  assert.equal(g.received(1).length, 2 * PAGE);
  g.drv.w(C.VIRTIO_PCI_COMMON_STATUS, 1, 0);
  const err = await pending;
  assert.equal((err as { code?: string }).code, 'ERR_PORT_CLOSED');
  assert.equal(g.fn.queues.every((q) => !q.ready), true);
  // The driver comes back (module reloaded): the handshake works again.
  const g2q: TestDriver[] = [];
  assert.equal(g.drv.negotiate(FEATURES), true);
  for (let i = 0; i < g.fn.queues.length; i++) g2q[i] = g.drv.setupQueue(i, i === 2 || i === 3 ? 64 : 256);
  g.drv.driverOk();
  const a = g.drv.alloc(PAGE, PAGE);
  g2q[2]!.publish(g2q[2]!.chain(0, [{ addr: a, len: PAGE, write: true }]));
  const m = g.drv.alloc(8, 8);
  const msg = Buffer.alloc(8);
  msg.writeUInt32LE(0xffff_ffff, 0);
  msg.writeUInt16LE(VIRTIO_CONSOLE_DEVICE_READY, 4);
  msg.writeUInt16LE(1, 6);
  g.mem.write(m, msg);
  g2q[3]!.publish(g2q[3]!.chain(0, [{ addr: m, len: 8 }]));
  g.drv.notify(3);
  await settle();
  const u = g2q[2]!.takeUsed();
  assert.equal(u.length, 1);
  assert.equal(Buffer.from(g.mem.read(a, 8)).readUInt16LE(4), VIRTIO_CONSOLE_DEVICE_ADD);
});

test('receive buffers the device may not write are dropped and counted', async () => {
  const g = await boot();
  await openPort(g, 1);
  const s = g.con.port('org.nodekvm.agent.0')!.open();
  s.write(Buffer.from('hello'));
  const a = g.drv.alloc(16, 16);
  g.q[4]!.publish(g.q[4]!.chain(0, [{ addr: a, len: 16 }])); // readable: wrong direction
  g.drv.notify(4);
  await settle();
  assert.equal(g.con.counters.wrongDirection, 1);
  assert.deepEqual(g.q[4]!.takeUsed(), [{ id: 0, len: 0 }]);
  g.rxBuffers(1, 1);
  await settle();
  assert.equal(g.received(1).toString(), 'hello');
  s.destroy();
});

test('control messages from the driver are used inside the notify exit (Linux spins on them)', async () => {
  const g = await boot();
  g.q[3]!.takeUsed();
  const a = g.drv.alloc(8, 8);
  const m = Buffer.alloc(8);
  m.writeUInt32LE(1, 0);
  m.writeUInt16LE(VIRTIO_CONSOLE_PORT_READY, 4);
  m.writeUInt16LE(1, 6);
  g.mem.write(a, m);
  g.q[3]!.publish(g.q[3]!.chain(20, [{ addr: a, len: 8 }]));
  g.drv.notify(3);
  // No event-loop turn in between: the buffer is back already.
  assert.deepEqual(g.q[3]!.takeUsed(), [{ id: 20, len: 0 }]);
  assert.deepEqual(g.con.synchronousQueues, [3]);
});
