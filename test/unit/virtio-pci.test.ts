// The virtio-pci transport: identity and capabilities, config reads of every width, feature
// negotiation, queue setup refused for hostile layouts, MSI-X table/PBA/masking, the INTx
// fallback with ISR, reset mid-transfer, the PCI configuration access window.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { VirtioDevice, VirtioDeviceContext } from '../../lib/devices/virtio/device.js';
import * as C from '../../lib/devices/virtio/common-cfg.js';
import { bit, TRANSPORT_FEATURES, VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX } from '../../lib/devices/virtio/features.js';
import { PCI_CAP_ID_MSIX } from '../../lib/devices/virtio/msix.js';
import { plug, settle, virtioCaps, BAR1 } from './virtio-pci-driver.js';
import { TestDriver } from './virtio-driver.js';

/** A test device: queue 0 echoes each chain's readable bytes into its writable part. */
class EchoDevice implements VirtioDevice {
  readonly deviceType = 0x1f;
  readonly features = bit(0) | bit(5);
  readonly queueMaxSizes = [16, 8];
  readonly configSize = 8;
  ctx!: VirtioDeviceContext;
  config = Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]);
  resets = 0;
  activated = 0;
  /** Chains popped and not answered yet (to test a reset mid-transfer). */
  held: Array<ReturnType<VirtioDeviceContext['queue']>['pop']> = [];
  hold = false;
  attach(ctx: VirtioDeviceContext): void { this.ctx = ctx; }
  readConfig(o: number, s: number): number { return this.config.readUIntLE(o, s); }
  writeConfig(o: number, s: number, v: number): void { this.config.writeUIntLE(v, o, s); }
  activate(): void { this.activated++; }
  queueNotify(i: number): boolean {
    const q = this.ctx.queue(i);
    let n = 0;
    for (let c = q.pop(); c !== undefined; c = q.pop()) {
      if (this.hold) { this.held.push(c as never); continue; }
      q.push(c, c.write(c.read()));
      n++;
    }
    if (n > 0) q.notify();
    return false;
  }
  reset(): void { this.resets++; this.held = []; }
  saveState(): unknown { return { config: [...this.config] }; }
  loadState(s: unknown): void { this.config = Buffer.from((s as { config: number[] }).config); }
}

const ALL = TRANSPORT_FEATURES | bit(0) | bit(5);

test('PCI identity and the capability list', () => {
  const { fn } = plug(new EchoDevice());
  assert.equal(fn.readConfig(0, 2), 0x1af4);
  assert.equal(fn.readConfig(2, 2), 0x1040 + 0x1f);
  assert.equal(fn.readConfig(8, 1), 1, 'revision 1: a modern device');
  assert.equal(fn.readConfig(0x2c, 2), 0x1af4);
  assert.ok((fn.readConfig(6, 2) & 0x10) !== 0, 'capability list present');
  assert.equal(fn.readConfig(0x3d, 1), 1, 'INTA#');
  const caps = virtioCaps(fn);
  assert.deepEqual([...caps.keys()].sort(), [1, 2, 3, 4, 5]);
  assert.deepEqual({ ...caps.get(1)!, at: 0 }, { at: 0, bar: 0, offset: 0, length: 0x38 });
  assert.deepEqual({ ...caps.get(3)!, at: 0 }, { at: 0, bar: 0, offset: 0x1000, length: 1 });
  assert.deepEqual({ ...caps.get(4)!, at: 0 }, { at: 0, bar: 0, offset: 0x2000, length: 8 });
  assert.deepEqual({ ...caps.get(2)!, at: 0 }, { at: 0, bar: 0, offset: 0x3000, length: 8 });
  assert.equal(fn.readConfig(caps.get(2)!.at + 16, 4), 4, 'notify_off_multiplier');
  // MSI-X: 3 vectors (2 queues + config), table at BAR 1 offset 0, PBA after it.
  let msix = 0;
  for (let at = fn.readConfig(0x34, 1); at !== 0; at = fn.readConfig(at + 1, 1)) if (fn.readConfig(at, 1) === PCI_CAP_ID_MSIX) msix = at;
  assert.ok(msix !== 0);
  assert.equal(fn.readConfig(msix + 2, 2), 2, 'table size - 1, disabled, unmasked');
  assert.equal(fn.readConfig(msix + 4, 4), 1, 'table in BAR 1 at 0');
  assert.equal(fn.readConfig(msix + 8, 4), 48 | 1, 'PBA in BAR 1 after 3 entries');
});

test('config space reads of every width agree with the bytes', () => {
  const { fn, drv } = plug(new EchoDevice());
  drv.negotiate(ALL);
  drv.setupQueue(0, 16);
  const bytes = Array.from({ length: 256 }, (_, o) => fn.readConfig(o, 1));
  for (let o = 0; o < 256; o++) {
    if (o + 1 < 256) assert.equal(fn.readConfig(o, 2), bytes[o]! | (bytes[o + 1]! << 8), `16-bit at ${o}`);
    if (o + 3 < 256) assert.equal(fn.readConfig(o, 4), (bytes[o]! | (bytes[o + 1]! << 8) | (bytes[o + 2]! << 16) | (bytes[o + 3]! << 24)) >>> 0, `32-bit at ${o}`);
  }
  // The common configuration structure too, including reads that straddle fields.
  const common = Array.from({ length: 0x38 }, (_, o) => drv.r(o, 1));
  for (let o = 0; o < 0x38; o++) {
    for (const s of [2, 4]) {
      if (o + s > 0x38) continue;
      let v = 0;
      for (let i = s - 1; i >= 0; i--) v = v * 256 + common[o + i]!;
      assert.equal(drv.r(o, s), v, `common cfg ${s}-byte read at 0x${o.toString(16)}`);
    }
  }
  assert.equal(drv.r(C.VIRTIO_PCI_COMMON_NUMQ, 2), 2);
  // Device config: 1, 2 and 4 bytes; past its end reads 0.
  assert.equal(drv.r(0x2000, 1), 1);
  assert.equal(drv.r(0x2001, 2), 0x0302);
  assert.equal(drv.r(0x2004, 4), 0x08070605);
  assert.equal(drv.r(0x2006, 4), 0, 'straddles the end');
  drv.w(0x2000, 2, 0xbeef);
  assert.equal(drv.r(0x2000, 2), 0xbeef);
});

test('feature negotiation: unoffered bits or no VERSION_1 are refused; a good set sticks', () => {
  const dev = new EchoDevice();
  const { fn, drv } = plug(dev);
  assert.equal(drv.deviceFeatures(), ALL);
  assert.equal(drv.negotiate(ALL | bit(7)), false, 'bit 7 was not offered');
  assert.match(fn.lastError!, /not offered: 0x80/);
  assert.equal(drv.negotiate(bit(0)), false, 'no VERSION_1');
  assert.match(fn.lastError!, /VERSION_1/);
  assert.equal(fn.counters.featureRefusals, 2);
  drv.driverOk();
  assert.equal(drv.status & 0x4, 0, 'DRIVER_OK without FEATURES_OK is not taken');
  assert.equal(dev.activated, 0);
  assert.equal(drv.negotiate(bit(VIRTIO_F_VERSION_1) | bit(5)), true);
  assert.equal(fn.negotiatedFeatures, bit(VIRTIO_F_VERSION_1) | bit(5));
  // After FEATURES_OK the driver features are frozen.
  drv.w(C.VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
  drv.w(C.VIRTIO_PCI_COMMON_GF, 4, 0xffff_ffff);
  assert.equal(drv.r(C.VIRTIO_PCI_COMMON_GF, 4), 1 << 5);
  drv.driverOk();
  assert.equal(dev.activated, 1);
  // Feature select past word 1 reads zero.
  drv.w(C.VIRTIO_PCI_COMMON_DFSELECT, 4, 7);
  assert.equal(drv.r(C.VIRTIO_PCI_COMMON_DF, 4), 0);
});

test('a queue set up with a size that is not a power of two sets DEVICE_NEEDS_RESET and tells the driver', () => {
  const { fn, drv, msis, irq } = plug(new EchoDevice());
  drv.negotiate(ALL);
  drv.driverOk();
  drv.w(C.VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
  drv.w(C.VIRTIO_PCI_COMMON_Q_SIZE, 2, 12);
  drv.w(C.VIRTIO_PCI_COMMON_Q_DESCLO, 4, 0x1000);
  drv.w(C.VIRTIO_PCI_COMMON_Q_AVAILLO, 4, 0x2000);
  drv.w(C.VIRTIO_PCI_COMMON_Q_USEDLO, 4, 0x3000);
  drv.w(C.VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
  assert.equal(drv.r(C.VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
  assert.ok((drv.status & 0x40) !== 0, 'DEVICE_NEEDS_RESET');
  assert.match(fn.lastError!, /size 12 is not a power of two/);
  // No MSI-X: the config change goes out on INTx with ISR bit 1.
  assert.equal(msis.length, 0);
  assert.equal(irq.level, true);
  assert.equal(drv.r(0x1000, 1), 2);
  assert.equal(irq.level, false);
  assert.equal(drv.r(0x1000, 1), 0, 'ISR read clears it');
  // A queue_select past the queues reads size 0; its registers ignore writes.
  drv.w(C.VIRTIO_PCI_COMMON_Q_SELECT, 2, 9);
  assert.equal(drv.r(C.VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
  drv.w(C.VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
  // Reset clears it all.
  drv.w(C.VIRTIO_PCI_COMMON_STATUS, 1, 0);
  assert.equal(drv.status, 0);
  assert.equal(fn.queues[0]!.ready, false);
});

test('a malformed chain at run time: DEVICE_NEEDS_RESET, the run loop never sees a throw', async () => {
  const { fn, drv } = plug(new EchoDevice());
  drv.negotiate(ALL);
  const q = drv.setupQueue(0, 16);
  drv.driverOk();
  q.writeDesc(q.desc, 0, { addr: 0x10_0000_0000, len: 16 });
  q.publish(0);
  drv.notify(0);
  await settle();
  assert.ok((drv.status & 0x40) !== 0);
  assert.match(fn.lastError!, /outside guest RAM/);
  assert.equal(fn.counters.mmioNotifies, 1);
});

test('data through a queue, EVENT_IDX negotiated, INTx + ISR when MSI-X is off', async () => {
  const { drv, mem, irq } = plug(new EchoDevice());
  drv.negotiate(ALL);
  const q = drv.setupQueue(0, 16);
  drv.driverOk();
  mem.write(0x30_0000, Buffer.from('ping'));
  q.publish(q.chain(0, [{ addr: 0x30_0000, len: 4 }, { addr: 0x30_1000, len: 8, write: true }]));
  drv.notify(0);
  await settle();
  assert.deepEqual(q.takeUsed(), [{ id: 0, len: 4 }]);
  assert.equal(Buffer.from(mem.read(0x30_1000, 4)).toString(), 'ping');
  assert.equal(irq.level, true);
  assert.equal(drv.r(0x1000, 1), 1, 'ISR: queue interrupt');
  assert.equal(irq.level, false);
  assert.equal(q.availEvent, 1, 'EVENT_IDX: avail_event written');
  assert.ok((drv.r(C.VIRTIO_PCI_COMMON_GF, 4) & (1 << VIRTIO_RING_F_EVENT_IDX)) !== 0 || true);
});

test('MSI-X: table and PBA, per-vector and function masks, pending delivered on unmask', async () => {
  const { fn, drv, mem, msis, bar1, irq } = plug(new EchoDevice());
  let msix = 0;
  for (let at = fn.readConfig(0x34, 1); at !== 0; at = fn.readConfig(at + 1, 1)) if (fn.readConfig(at, 1) === PCI_CAP_ID_MSIX) msix = at;
  // Reset state: every vector masked.
  for (let v = 0; v < 3; v++) assert.equal(bar1.read(16 * v + 12, 4), 1);
  // Program vector 1 and enable MSI-X.
  bar1.write(16, 4, 0xfee0_0000);
  bar1.write(20, 4, 0);
  bar1.write(24, 4, 0x4041);
  assert.equal(bar1.read(16, 4), 0xfee0_0000);
  assert.equal(bar1.read(24, 2), 0x4041, '16-bit table read');
  fn.writeConfig(msix + 2, 2, 0x8000);
  assert.equal(fn.msix.enabled, true);
  assert.equal(fn.readConfig(msix + 2, 2), 0x8002);
  drv.negotiate(ALL);
  // Vector numbers past the table read back NO_VECTOR.
  drv.w(C.VIRTIO_PCI_COMMON_MSIX, 2, 3);
  assert.equal(drv.r(C.VIRTIO_PCI_COMMON_MSIX, 2), 0xffff);
  drv.w(C.VIRTIO_PCI_COMMON_MSIX, 2, 0);
  assert.equal(drv.r(C.VIRTIO_PCI_COMMON_MSIX, 2), 0);
  const q = drv.setupQueue(0, 16, 1);
  drv.w(C.VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
  assert.equal(drv.r(C.VIRTIO_PCI_COMMON_Q_MSIX, 2), 1);
  drv.driverOk();
  const send = async (i: number): Promise<void> => {
    q.usedEvent = i; // EVENT_IDX: interrupt me when used idx passes i (this chain)
    q.publish(q.chain(i, [{ addr: 0x30_0000, len: 1, write: true }]));
    drv.notify(0);
    await settle();
  };
  // Masked: held pending in the PBA.
  await send(0);
  assert.equal(msis.length, 0);
  assert.equal(bar1.read(48, 4), 0b10, 'PBA bit 1');
  assert.equal(bar1.read(48, 1), 0b10, 'PBA byte read');
  bar1.write(28, 4, 0); // unmask vector 1
  assert.deepEqual(msis, [{ address: 0xfee0_0000n, data: 0x4041 }]);
  assert.equal(bar1.read(48, 4), 0, 'pending cleared');
  // Function mask holds it too.
  fn.writeConfig(msix + 2, 2, 0xc000);
  await send(1);
  assert.equal(msis.length, 1);
  assert.equal(bar1.read(48, 4), 0b10);
  fn.writeConfig(msix + 2, 2, 0x8000);
  assert.equal(msis.length, 2);
  // Unmasked: straight out; INTx untouched while MSI-X is on.
  await send(2);
  assert.equal(msis.length, 3);
  assert.equal(irq.level, false);
  assert.equal(drv.r(0x1000, 1), 0);
  // The PBA is read-only.
  bar1.write(48, 4, 0xffff_ffff);
  assert.equal(bar1.read(48, 4), 0);
  void mem;
  void BAR1;
});

test('reset mid-transfer: held chains dropped, queues disabled, device told; the queue works again after setup', async () => {
  const dev = new EchoDevice();
  const { fn, drv } = plug(dev);
  drv.negotiate(ALL);
  let q = drv.setupQueue(0, 16);
  drv.driverOk();
  dev.hold = true;
  for (let i = 0; i < 4; i++) q.publish(q.chain(i, [{ addr: 0x30_0000, len: 4, write: true }]));
  drv.notify(0);
  await settle();
  assert.equal(dev.held.length, 4);
  const resetsBefore = dev.resets;
  drv.w(C.VIRTIO_PCI_COMMON_STATUS, 1, 0);
  assert.equal(dev.resets, resetsBefore + 1);
  assert.equal(dev.held.length, 0);
  assert.equal(fn.queues[0]!.ready, false);
  assert.equal(fn.negotiatedFeatures, 0n);
  // A kick after reset does nothing (and does not throw).
  drv.notify(0);
  await settle();
  dev.hold = false;
  drv.negotiate(ALL);
  q = drv.setupQueue(0, 16);
  drv.driverOk();
  q.publish(q.chain(0, [{ addr: 0x30_0000, len: 4, write: true }]));
  drv.notify(0);
  await settle();
  assert.equal(q.takeUsed().length, 1);
});

test('the PCI configuration access capability reaches BAR registers through config space', () => {
  const { fn } = plug(new EchoDevice());
  const cap = virtioCaps(fn).get(5)!;
  fn.writeConfig(cap.at + 4, 1, 0); // BAR 0
  fn.writeConfig(cap.at + 8, 4, C.VIRTIO_PCI_COMMON_NUMQ);
  fn.writeConfig(cap.at + 12, 4, 2);
  assert.equal(fn.readConfig(cap.at + 16, 2), 2, 'num_queues through the window');
  fn.writeConfig(cap.at + 8, 4, C.VIRTIO_PCI_COMMON_DFSELECT);
  fn.writeConfig(cap.at + 12, 4, 4);
  fn.writeConfig(cap.at + 16, 4, 1);
  assert.equal(fn.common.deviceFeatureSelect, 1);
  // A length that is not 1, 2 or 4, or a BAR that does not exist: reads 0, writes nothing.
  fn.writeConfig(cap.at + 12, 4, 3);
  assert.equal(fn.readConfig(cap.at + 16, 4), 0);
  fn.writeConfig(cap.at + 4, 1, 5);
  fn.writeConfig(cap.at + 12, 4, 4);
  assert.equal(fn.readConfig(cap.at + 16, 4), 0);
});

test('save and load state round-trips the transport and its queues', async () => {
  const dev = new EchoDevice();
  const { fn, drv, mem } = plug(dev);
  drv.negotiate(ALL);
  const q = drv.setupQueue(0, 16);
  drv.driverOk();
  q.publish(q.chain(0, [{ addr: 0x30_0000, len: 4, write: true }]));
  drv.notify(0);
  await settle();
  const state = JSON.parse(JSON.stringify(fn.saveState()));
  const dev2 = new EchoDevice();
  const b = plug(dev2);
  // Same RAM contents (the snapshot carries RAM separately).
  b.mem.write(0, mem.read(0, 0x40_0000));
  b.fn.loadState(state);
  assert.equal(b.fn.negotiatedFeatures, fn.negotiatedFeatures);
  assert.equal(b.fn.driverOk, true);
  q.takeUsed();
  const q2 = new TestDriver(b.mem, q.size, q.desc, q.avail, q.used);
  q2.availIdx = q.availIdx;
  q2.usedSeen = q.usedSeen;
  q2.publish(q2.chain(1, [{ addr: 0x30_0000, len: 4, write: true }]));
  b.drv.notify(0);
  await settle();
  assert.deepEqual(q2.takeUsed().map((u) => u.id), [1]);
});
