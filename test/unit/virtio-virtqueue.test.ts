// The split-virtqueue walker against well-formed and hostile rings and chains.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fakeGuestMemory } from '../../lib/kvm/memory.js';
import { Virtqueue, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../../lib/devices/virtio/virtqueue.js';
import { TestDriver } from './virtio-driver.js';

const RAM = 0x10_0000;
const DESC = 0x1000;
const AVAIL = 0x2000;
const USED = 0x3000;
const DATA = 0x8000;

function setup(size = 8, opts: { eventIdx?: boolean; indirect?: boolean } = {}) {
  const mem = fakeGuestMemory([{ guestPhysAddr: 0, size: RAM }]);
  const broken: string[] = [];
  let irqs = 0;
  const q = new Virtqueue(mem, 0, 256, () => { irqs++; }, (_q, why) => { broken.push(why); });
  const drv = new TestDriver(mem, size, DESC, AVAIL, USED);
  assert.equal(drv.install(q, opts), undefined);
  return { mem, q, drv, broken, irqs: () => irqs };
}

test('a readable + writable chain: bytes in, bytes out, used element', () => {
  const { mem, q, drv } = setup();
  mem.write(DATA, Buffer.from('hello, '));
  mem.write(DATA + 0x100, Buffer.from('world'));
  drv.publish(drv.chain(0, [{ addr: DATA, len: 7 }, { addr: DATA + 0x100, len: 5 }, { addr: DATA + 0x200, len: 16, write: true }]));
  const c = q.pop()!;
  assert.equal(c.head, 0);
  assert.equal(c.readableLength, 12);
  assert.equal(c.writableLength, 16);
  assert.equal(c.read().toString(), 'hello, world');
  assert.equal(c.read(5, 4).toString(), ', wo');
  assert.equal(c.write(Buffer.from('0123456789abcdefXYZ')), 16, 'clipped to the writable space');
  assert.equal(Buffer.from(mem.read(DATA + 0x200, 16)).toString(), '0123456789abcdef');
  assert.equal(q.pop(), undefined);
  q.push(c, 10);
  assert.deepEqual(drv.takeUsed(), [{ id: 0, len: 10 }]);
  q.push(c, 1000);
  assert.deepEqual(drv.takeUsed(), [{ id: 0, len: 16 }], 'written length never exceeds the writable space');
});

test('indirect descriptors', () => {
  const { mem, q, drv } = setup(8, { indirect: true });
  const table = 0x5000;
  drv.chain(0, [{ addr: DATA, len: 3 }, { addr: DATA + 0x10, len: 4, write: true }], table);
  mem.write(DATA, Buffer.from('abc'));
  drv.publish(drv.indirect(3, table, 2));
  const c = q.pop()!;
  assert.equal(c.head, 3);
  assert.equal(c.read().toString(), 'abc');
  assert.equal(c.writableLength, 4);
  assert.equal(q.broken, undefined);
});

test('available index wrap-around at 65535', () => {
  const { q, drv } = setup(4);
  // Start both sides just below the wrap.
  q.loadState({ ...q.saveState(), lastAvailIdx: 0xfffe, usedIdx: 0xfffe });
  drv.setAvailIdx(0xfffe);
  drv.usedSeen = 0xfffe;
  for (let i = 0; i < 4; i++) {
    drv.publish(drv.chain(i, [{ addr: DATA, len: 1, write: true }]));
    const c = q.pop()!;
    assert.equal(c.head, i);
    q.push(c, 1);
  }
  assert.equal(drv.availIdx, 2);
  assert.deepEqual(drv.takeUsed().map((u) => u.id), [0, 1, 2, 3]);
});

const hostile: Array<[string, (t: ReturnType<typeof setup>) => void, RegExp, { indirect?: boolean }?]> = [
  ['a loop', ({ drv }) => {
    drv.writeDesc(DESC, 0, { addr: DATA, len: 1, flags: VIRTQ_DESC_F_NEXT, next: 1 });
    drv.writeDesc(DESC, 1, { addr: DATA, len: 1, flags: VIRTQ_DESC_F_NEXT, next: 0 });
    drv.publish(0);
  }, /longer than the queue size/],
  ['a self loop', ({ drv }) => {
    drv.writeDesc(DESC, 2, { addr: DATA, len: 1, flags: VIRTQ_DESC_F_NEXT, next: 2 });
    drv.publish(2);
  }, /longer than the queue size/],
  ['a head past the queue size', ({ drv }) => { drv.publish(8); }, /head 8 is past the table/],
  ['a next past the queue size', ({ drv }) => {
    drv.writeDesc(DESC, 0, { addr: DATA, len: 1, flags: VIRTQ_DESC_F_NEXT, next: 200 });
    drv.publish(0);
  }, /next 200 is past the table/],
  ['an available index far ahead', ({ drv }) => { drv.setAvailIdx(9); }, /9 ahead of 0/],
  ['an available index behind ours', ({ drv }) => { drv.setAvailIdx(0xffff); }, /65535 ahead/],
  ['a buffer outside RAM', ({ drv }) => { drv.publish(drv.chain(0, [{ addr: RAM - 4, len: 8 }])); }, /outside guest RAM/],
  ['a buffer at a 64-bit address', ({ drv }) => {
    drv.writeDesc(DESC, 0, { addr: 0xffff_ffff_ffff_f000n, len: 0x2000 });
    drv.publish(0);
  }, /outside guest RAM/],
  ['a length that overflows past 2^53', ({ drv }) => {
    drv.writeDesc(DESC, 0, { addr: 0x1f_ffff_ffff_ffffn, len: 0xffff_ffff });
    drv.publish(0);
  }, /outside guest RAM/],
  ['a readable buffer after a writable one', ({ drv }) => {
    drv.writeDesc(DESC, 0, { addr: DATA, len: 1, flags: VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, next: 1 });
    drv.writeDesc(DESC, 1, { addr: DATA, len: 1 });
    drv.publish(0);
  }, /readable descriptor 1 after a device-writable/],
  ['an indirect descriptor without the feature', ({ drv }) => { drv.publish(drv.indirect(0, 0x5000, 1)); }, /without VIRTIO_RING_F_INDIRECT_DESC/],
  ['an indirect table inside an indirect table', ({ drv }) => {
    drv.writeDesc(0x5000, 0, { addr: 0x6000, len: 16, flags: VIRTQ_DESC_F_INDIRECT });
    drv.publish(drv.indirect(0, 0x5000, 1));
  }, /inside an indirect table/, { indirect: true }],
  ['an indirect descriptor with NEXT', ({ drv }) => {
    drv.writeDesc(DESC, 0, { addr: 0x5000, len: 16, flags: VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, next: 1 });
    drv.publish(0);
  }, /also has NEXT/, { indirect: true }],
  ['an indirect table of odd length', ({ drv }) => {
    drv.writeDesc(DESC, 0, { addr: 0x5000, len: 24, flags: VIRTQ_DESC_F_INDIRECT });
    drv.publish(0);
  }, /not a non-zero multiple of 16/, { indirect: true }],
  ['an empty indirect table', ({ drv }) => {
    drv.writeDesc(DESC, 0, { addr: 0x5000, len: 0, flags: VIRTQ_DESC_F_INDIRECT });
    drv.publish(0);
  }, /not a non-zero multiple of 16/, { indirect: true }],
  ['an indirect table larger than the queue', ({ drv }) => { drv.publish(drv.indirect(0, 0x5000, 9)); }, /exceeds the queue size/, { indirect: true }],
  ['an indirect table outside RAM', ({ drv }) => { drv.publish(drv.indirect(0, RAM - 16, 2)); }, /indirect table .* outside guest RAM/, { indirect: true }],
  ['a loop inside an indirect table', ({ drv }) => {
    drv.writeDesc(0x5000, 0, { addr: DATA, len: 1, flags: VIRTQ_DESC_F_NEXT, next: 1 });
    drv.writeDesc(0x5000, 1, { addr: DATA, len: 1, flags: VIRTQ_DESC_F_NEXT, next: 0 });
    drv.publish(drv.indirect(0, 0x5000, 2));
  }, /longer than the queue size/, { indirect: true }],
  ['an indirect next past its table', ({ drv }) => {
    drv.writeDesc(0x5000, 0, { addr: DATA, len: 1, flags: VIRTQ_DESC_F_NEXT, next: 2 });
    drv.publish(drv.indirect(0, 0x5000, 2));
  }, /next 2 is past the table \(size 2\)/, { indirect: true }],
];

for (const [name, make, why, opts] of hostile) {
  test(`hostile: ${name} breaks the queue without throwing`, () => {
    const t = setup(8, opts);
    make(t);
    assert.equal(t.q.pop(), undefined);
    assert.equal(t.broken.length, 1);
    assert.match(t.broken[0]!, why);
    assert.match(t.q.broken!, why);
    // Broken stays broken, reported once, until reset.
    assert.equal(t.q.pop(), undefined);
    assert.equal(t.broken.length, 1);
    assert.equal(t.q.pending(), 0);
    t.q.reset();
    assert.equal(t.q.broken, undefined);
    assert.equal(t.q.ready, false);
  });
}

test('hostile: a chain longer than 4 GiB in total', () => {
  // 2 GiB of fake RAM is too much for a unit test; a 1 MiB region named by many descriptors
  // counts each time it is named, as a device would copy it each time.
  const mem = fakeGuestMemory([{ guestPhysAddr: 0, size: RAM }, { guestPhysAddr: 0x1_0000_0000, size: 0x100_0000 }]);
  const broken: string[] = [];
  const q = new Virtqueue(mem, 0, 512, () => {}, (_q, why) => broken.push(why));
  const drv = new TestDriver(mem, 512, DESC, 0x4000, 0x6000);
  drv.install(q);
  // 300 descriptors × 16 MiB = 4.7 GiB.
  for (let i = 0; i < 300; i++) drv.writeDesc(DESC, i, { addr: 0x1_0000_0000, len: 0x100_0000, flags: VIRTQ_DESC_F_NEXT, next: i + 1 });
  drv.writeDesc(DESC, 300, { addr: 0x1_0000_0000, len: 1 });
  drv.publish(0);
  assert.equal(q.pop(), undefined);
  assert.match(broken[0]!, /longer than 4 GiB/);
});

test('queue layout refused at enable: size not a power of two, misaligned or outside RAM', () => {
  const mem = fakeGuestMemory([{ guestPhysAddr: 0, size: RAM }]);
  const cases: Array<[Partial<{ size: number; descAddr: number; driverAddr: number; deviceAddr: number }>, RegExp]> = [
    [{ size: 6 }, /not a power of two/],
    [{ size: 0 }, /not a power of two/],
    [{ size: 512 }, /not a power of two in 1..256/],
    [{ descAddr: 0x1008 }, /descriptor table .* not 16-byte aligned/],
    [{ driverAddr: 0x2001 }, /driver ring .* not 2-byte aligned/],
    [{ deviceAddr: 0x3002 }, /device ring .* not 4-byte aligned/],
    [{ deviceAddr: RAM - 8 }, /device ring .* outside guest RAM/],
    [{ descAddr: 2 ** 60 }, /outside guest RAM/],
  ];
  for (const [layout, why] of cases) {
    const broken: string[] = [];
    const q = new Virtqueue(mem, 1, 256, () => {}, (_q, w) => broken.push(w));
    Object.assign(q, { size: 8, descAddr: DESC, driverAddr: AVAIL, deviceAddr: USED }, layout);
    assert.match(q.enable() ?? '', why);
    assert.equal(q.ready, false);
    assert.match(broken[0]!, why);
  }
});

test('EVENT_IDX: avail_event published, interrupts only when used_event is crossed', () => {
  const { q, drv, irqs } = setup(8, { eventIdx: true });
  for (let i = 0; i < 4; i++) drv.publish(drv.chain(i, [{ addr: DATA, len: 1, write: true }]));
  const chains = [q.pop()!, q.pop()!];
  assert.equal(drv.availEvent, 2, 'driver told to kick after what we consumed');
  drv.usedEvent = 2; // the driver wants an interrupt once used idx passes 2 (i.e. reaches 3)
  q.push(chains[0]!, 1);
  q.notify(); // the first decision always signals (no history)
  assert.equal(irqs(), 1);
  q.push(chains[1]!, 1);
  q.notify();
  assert.equal(irqs(), 1, 'used idx 2 has not passed used_event 2');
  q.push(q.pop()!, 1);
  q.notify();
  assert.equal(irqs(), 2, 'used idx 3 crossed used_event 2');
  q.push(q.pop()!, 1);
  q.notify();
  assert.equal(irqs(), 2);
  assert.equal(q.counters.suppressed, 2);
  assert.equal(q.pop(), undefined);
  assert.equal(drv.availEvent, 4);
});

test('without EVENT_IDX: VIRTQ_AVAIL_F_NO_INTERRUPT suppresses', () => {
  const { q, drv, irqs } = setup(8);
  drv.publish(drv.chain(0, [{ addr: DATA, len: 1, write: true }]));
  drv.availFlags = 1;
  q.push(q.pop()!, 1);
  q.notify();
  assert.equal(irqs(), 0);
  drv.availFlags = 0;
  q.notify();
  assert.equal(irqs(), 1);
});

test('drop() returns a chain with length 0 and counts it; unpop() gives chains back', () => {
  const { q, drv } = setup();
  drv.publish(drv.chain(0, [{ addr: DATA, len: 4 }]));
  drv.publish(drv.chain(1, [{ addr: DATA, len: 4 }]));
  const a = q.pop()!;
  q.pop();
  q.unpop(1);
  assert.equal(q.pop()!.head, 1);
  q.drop(a);
  assert.equal(q.counters.dropped, 1);
  assert.deepEqual(drv.takeUsed(), [{ id: 0, len: 0 }]);
});

test('state round trip keeps indices', () => {
  const { mem, q, drv } = setup();
  drv.publish(drv.chain(0, [{ addr: DATA, len: 4, write: true }]));
  q.push(q.pop()!, 2);
  const s = JSON.parse(JSON.stringify(q.saveState()));
  const q2 = new Virtqueue(mem, 0, 256);
  q2.loadState(s);
  drv.publish(drv.chain(1, [{ addr: DATA, len: 4, write: true }]));
  const c = q2.pop()!;
  assert.equal(c.head, 1);
  q2.push(c, 3);
  assert.deepEqual(drv.takeUsed(), [{ id: 0, len: 2 }, { id: 1, len: 3 }]);
});
