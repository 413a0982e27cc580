// The real-mode, protected-mode and long-mode test guests, run through vcpu.run() with the
// PIO and MMIO buses: every step of each guest's I/O contract (test/guests/*.S) is checked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requireKvm } from '../helpers/kvm.js';
import { PORT } from '../guests/build.js';
import { attach, createGuestVm, Recorder, runSync } from '../guests/run.js';

test('real-mode guest: out, in/out of every width, rep outsb, rep insb, MMIO in the VGA hole', (t) => {
  if (!requireKvm(t)) return;
  using g = createGuestVm({ guest: 'real' });
  const con = new Recorder();
  const param = new Recorder().feed(0x5a, 0xbeef, 0xdeadbeef);
  const echo = new Recorder();
  const outs = new Recorder();
  const insBytes = Array.from({ length: 16 }, (_, i) => (i * 17 + 3) & 0xff);
  const ins = new Recorder().feed(...insBytes);
  const csum = new Recorder();
  const report = new Recorder();
  attach(g, 'CONSOLE', con);
  attach(g, 'PARAM', param);
  attach(g, 'ECHO', echo);
  attach(g, 'OUTS', outs);
  attach(g, 'INS', ins);
  attach(g, 'CSUM', csum);
  attach(g, 'REPORT', report);
  const vga = new Recorder().feed(0x1234_5677);
  g.mmio.register(0xa0000, 0x10, vga, 'vga');

  const last = runSync(g);
  assert.equal(last.reason, 'hlt');
  assert.equal(con.text(), 'Hello from real mode\n');
  assert.ok(con.writes.every((w) => w.size === 1));
  assert.deepEqual(param.reads.map((r) => r.size), [1, 2, 4]);
  assert.deepEqual(echo.writes.map((w) => [w.size, w.value]), [[1, 0x5a], [2, 0xbeef], [4, 0xdeadbeef]]);
  assert.equal(outs.text(), 'rep outsb works');
  assert.equal(ins.reads.length, 16);
  assert.deepEqual(csum.writes, [{ offset: 0, size: 2, value: insBytes.reduce((a, b) => a + b, 0) }]);
  // The bytes rep insb stored landed in guest RAM (the guest's buffer is the image's tail).
  const tail = g.ram.subarray(0x8000, 0x8000 + 0x200);
  const at = Buffer.from(tail).indexOf(Buffer.from(insBytes));
  assert.ok(at > 0, 'rep insb data found in guest RAM');
  assert.deepEqual(vga.reads, [{ offset: 0, size: 4 }]);
  assert.deepEqual(vga.writes, [{ offset: 4, size: 4, value: 0x1234_5678 }, { offset: 8, size: 1, value: 0x5a }]);
  assert.deepEqual(report.values(), [0x600dc0de]);
  assert.equal(g.pio.readMisses + g.pio.writeMisses + g.mmio.readMisses + g.mmio.writeMisses, 0);
});

test('protected-mode guest: own GDT, rep outsb, CR0.PE, PIO echo, MMIO at 0xd0000000 read-modify-write', (t) => {
  if (!requireKvm(t)) return;
  using g = createGuestVm({ guest: 'pm32' });
  const con = new Recorder();
  const creg = new Recorder();
  const param = new Recorder().feed(0xcafe_f00d);
  const echo = new Recorder();
  const report = new Recorder();
  const dev = new Recorder().feed(41);
  attach(g, 'CONSOLE', con);
  attach(g, 'CREG', creg);
  attach(g, 'PARAM', param);
  attach(g, 'ECHO', echo);
  attach(g, 'REPORT', report);
  g.mmio.register(0xd000_0000, 0x1000, dev, 'dev');

  assert.equal(runSync(g).reason, 'hlt');
  assert.equal(con.text(), 'Hello from protected mode\n');
  assert.equal(creg.values().length, 1);
  assert.equal(creg.values()[0]! & 1, 1, 'CR0.PE set');
  assert.deepEqual(echo.values(), [0xcafe_f00d]);
  assert.deepEqual(dev.reads, [{ offset: 0, size: 4 }]);
  assert.deepEqual(dev.writes, [{ offset: 0, size: 4, value: 42 }]);
  assert.deepEqual(report.values(), [42]);
  const s = g.vcpu.getSregs();
  assert.equal(s.cr0 & 1n, 1n);
  // The device window is not RAM from the host's side either.
  assert.throws(() => g.vm.memory.readU32(0xd000_0000), { code: 'ERR_GUEST_ADDRESS' });
  assert.equal(g.vm.memory.readU8(0x8000), g.ram[0x8000]);
  assert.equal(s.cs.selector, 0x08);
  assert.equal(s.cs.db, 1);
});

test('long-mode guest: own page tables, EFER.LMA, rep outsb, 8-byte MMIO above 4 GiB', (t) => {
  if (!requireKvm(t)) return;
  using g = createGuestVm({ guest: 'long64' });
  const con = new Recorder();
  const creg = new Recorder();
  const param = new Recorder().feed(0x1357_9bdf);
  const echo = new Recorder();
  const report = new Recorder();
  // The bus splits 8-byte accesses into two dwords: low at +0, high at +4.
  const dev = new Recorder().feed(0xffff_ffff, 0x0000_0007);
  attach(g, 'CONSOLE', con);
  attach(g, 'CREG', creg);
  attach(g, 'PARAM', param);
  attach(g, 'ECHO', echo);
  attach(g, 'REPORT', report);
  g.mmio.register(0x1_0000_0000, 0x1000, dev, 'dev');

  assert.equal(runSync(g).reason, 'hlt');
  assert.equal(con.text(), 'Hello from long mode\n');
  const efer = creg.values()[0]!;
  assert.equal(efer & 0x500, 0x500, 'EFER.LME and EFER.LMA set');
  assert.deepEqual(echo.values(), [0x1357_9bdf]);
  assert.deepEqual(dev.reads, [{ offset: 0, size: 4 }, { offset: 4, size: 4 }]);
  // 0x7_ffffffff + 1 = 0x8_00000000, written at 0x1_0000_0008.
  assert.deepEqual(dev.writes, [{ offset: 8, size: 4, value: 0 }, { offset: 12, size: 4, value: 8 }]);
  assert.deepEqual(report.values(), [0, 8]);
  const s = g.vcpu.getSregs();
  assert.equal(s.efer & 0x400n, 0x400n);
  assert.equal(s.cs.l, 1);
});
