// The virtio-9p device over a real split virtqueue in fake guest RAM: requests in descriptor
// chains (split over several buffers), replies pushed to the used ring with their length and
// an interrupt, out of order when the host finishes out of order; chains the device cannot use
// dropped; a reset drops replies still under way.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fakeGuestMemory } from '../../lib/kvm/memory.js';
import { Virtqueue } from '../../lib/devices/virtio/virtqueue.js';
import type { VirtioDeviceContext } from '../../lib/devices/virtio/device.js';
import { Virtio9p } from '../../lib/devices/virtio/9p/device.js';
import { P9Server } from '../../lib/devices/virtio/9p/server.js';
import { decode, encode, isDecodeError, str } from '../../lib/devices/virtio/9p/codec.js';
import { NOFID, type Message } from '../../lib/devices/virtio/9p/protocol.js';
import { TestDriver } from './virtio-driver.js';

const RAM = 4 << 20;
const DESC = 0x1000;
const AVAIL = 0x3000;
const USED = 0x4000;
const BUF = 0x10000;

async function setup(): Promise<{
  dir: string; dev: Virtio9p; q: Virtqueue; drv: TestDriver; mem: ReturnType<typeof fakeGuestMemory>;
  irqs: () => number; send(msg: Message, room?: number, head?: number): number; reply(id: number): Message; done(): Promise<void>;
  waitUsed(n: number): Promise<Array<{ id: number; len: number }>>;
}> {
  const dir = mkdtempSync(join(tmpdir(), 'nkvm-9pdev-'));
  const server = await P9Server.open({ path: dir, tag: 'dev', readonly: false });
  const mem = fakeGuestMemory([{ guestPhysAddr: 0, size: RAM }]);
  let irqs = 0;
  const q = new Virtqueue(mem, 0, 128, () => { irqs++; }, () => {});
  const drv = new TestDriver(mem, 64, DESC, AVAIL, USED);
  drv.install(q);
  const dev = new Virtio9p(server);
  const ctx: VirtioDeviceContext = {
    queue: () => q, negotiatedFeatures: 1n, driverOk: true, configChanged() {}, needsReset() {}, schedule() {}, scheduleAfter() {},
  };
  dev.attach(ctx);
  dev.activate();
  let nextDesc = 0;
  const replyAt = new Map<number, number>();
  const used: Array<{ id: number; len: number }> = [];
  return {
    dir, dev, q, drv, mem, irqs: () => irqs,
    // the request split into two readable buffers, the reply room into two writable ones
    send(msg: Message, room = 8192): number {
      const bytes = encode(msg);
      const slot = nextDesc;
      nextDesc += 4;
      const base = BUF + slot * 0x4000;
      const cut = Math.min(5, bytes.length);
      mem.write(base, bytes.subarray(0, cut));
      mem.write(base + 0x100, bytes.subarray(cut));
      const head = drv.chain(slot, [
        { addr: base, len: cut }, { addr: base + 0x100, len: bytes.length - cut },
        { addr: base + 0x1000, len: 9, write: true }, { addr: base + 0x2000, len: room - 9, write: true },
      ]);
      replyAt.set(head, base);
      drv.publish(head);
      return head;
    },
    reply(id: number): Message {
      const base = replyAt.get(id)!;
      const first = mem.read(base + 0x1000, 9);
      const rest = mem.read(base + 0x2000, 8192);
      const m = decode(Buffer.concat([first, rest]));
      if (isDecodeError(m)) throw new Error(m.reason);
      return m;
    },
    async waitUsed(n: number) {
      for (let i = 0; i < 500 && used.length < n; i++) {
        used.push(...drv.takeUsed());
        if (used.length < n) await new Promise((r) => setTimeout(r, 5));
      }
      return used.splice(0, used.length);
    },
    async done() {
      await dev.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

test('requests in chains are answered through the used ring with their length and an interrupt', async () => {
  const s = await setup();
  try {
    writeFileSync(join(s.dir, 'f'), 'file contents');
    const v = s.send({ op: 'Tversion', tag: 0xffff, msize: 512 * 1024, version: str('9P2000.L') });
    s.dev.queueNotify(0);
    let u = await s.waitUsed(1);
    assert.equal(u[0]!.id, v);
    assert.equal(u[0]!.len, 7 + 4 + 2 + 8);
    assert.equal((s.reply(v) as Extract<Message, { op: 'Rversion' }>).msize, 512 * 1024);
    assert.ok(s.irqs() >= 1);
    const a = s.send({ op: 'Tattach', tag: 1, fid: 0, afid: NOFID, uname: str(''), aname: str(''), nUname: 0 });
    const w = s.send({ op: 'Twalk', tag: 2, fid: 0, newfid: 1, wnames: [] });
    s.dev.queueNotify(0);
    u = await s.waitUsed(2);
    assert.deepEqual(new Set(u.map((e) => e.id)), new Set([a, w]));
    s.send({ op: 'Twalk', tag: 3, fid: 0, newfid: 2, wnames: [str('f')] });
    s.dev.queueNotify(0);
    await s.waitUsed(1);
    const o = s.send({ op: 'Tlopen', tag: 4, fid: 2, flags: 0 });
    s.dev.queueNotify(0);
    await s.waitUsed(1);
    assert.equal(s.reply(o).op, 'Rlopen');
    // a read whose data lands across the two writable buffers
    const r = s.send({ op: 'Tread', tag: 5, fid: 2, offset: 0n, count: 100 });
    s.dev.queueNotify(0);
    u = await s.waitUsed(1);
    assert.equal(u[0]!.len, 11 + 13);
    const rr = s.reply(r) as Extract<Message, { op: 'Rread' }>;
    assert.equal(Buffer.from(rr.data).toString(), 'file contents');
    assert.equal(s.dev.pending, 0);
  } finally { await s.done(); }
});

test('a chain without a writable part is dropped; a reset drops replies under way', async () => {
  const s = await setup();
  try {
    const bytes = encode({ op: 'Tversion', tag: 0xffff, msize: 8192, version: str('9P2000.L') });
    s.mem.write(BUF, bytes);
    const head = s.drv.chain(60, [{ addr: BUF, len: bytes.length }]);
    s.drv.publish(head);
    s.dev.queueNotify(0);
    const u = await s.waitUsed(1);
    assert.deepEqual(u, [{ id: head, len: 0 }]);
    assert.equal(s.q.counters.dropped, 1);
    s.send({ op: 'Tversion', tag: 0xffff, msize: 8192, version: str('9P2000.L') });
    s.dev.queueNotify(0);
    s.dev.reset();
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(s.drv.takeUsed(), [], 'nothing pushed after the reset');
    assert.equal(s.dev.pending, 0);
  } finally { await s.done(); }
});
