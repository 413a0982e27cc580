// While the guest sits in an in-kernel HLT (irqchip, interrupts off), the Node event loop keeps
// running: timers fire, a TCP connection to a server in this process is accepted, and an
// AbortSignal ends the run loop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { requireKvm } from '../helpers/kvm.js';
import { PORT } from '../guests/build.js';
import { attach, createGuestVm, Recorder } from '../guests/run.js';

test('event loop stays live while the guest is halted in the kernel', { timeout: 30_000 }, async (t) => {
  if (!requireKvm(t)) return;
  using g = createGuestVm({ guest: 'idle', irqchip: true });
  const report = new Recorder();
  attach(g, 'REPORT', report);
  const ac = new AbortController();
  const exits: string[] = [];
  const loop = g.vcpu.runLoop((exit) => {
    exits.push(exit.reason);
    if (exit.reason === 'io') g.pio.handleIo(exit);
    return undefined;
  }, { signal: ac.signal });

  const server = createServer((sock) => sock.end('hi'));
  try {
    // Let the guest report and halt first (under nested emulation that takes a while). A
    // deadline, not a count of 10 ms sleeps: on a loaded host each sleep lasts far longer.
    const reportBy = performance.now() + 120_000;
    while (report.values().length === 0 && performance.now() < reportBy) await new Promise((r) => setTimeout(r, 10));
    // A timer: fires while the vCPU thread (the main thread) is inside KVM_RUN.
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, 20));
    const late = performance.now() - t0 - 20;
    t.diagnostic(`setTimeout(20) fired ${late.toFixed(2)} ms late`);
    // Without the kicker the timer would never fire (the thread sleeps in KVM_RUN for good);
    // the bound only has to tell "fired" from "never", also on a loaded nested lab.
    assert.ok(late < 10_000, `setTimeout(20) fired ${late.toFixed(1)} ms late`);
    assert.deepEqual(report.values(), [1], 'guest reported before halting');

    // A TCP accept + read, all in this process.
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    const rtts: number[] = [];
    for (let i = 0; i < 5; i++) {
      const c0 = performance.now();
      const sock = connect(port, '127.0.0.1');
      const chunks: Buffer[] = [];
      sock.on('data', (d: Buffer) => chunks.push(d));
      await once(sock, 'end');
      rtts.push(performance.now() - c0);
      assert.equal(Buffer.concat(chunks).toString(), 'hi');
    }
    rtts.sort((a, b) => a - b);
    t.diagnostic(`TCP connect+accept+read while the guest was halted: median ${rtts[2]!.toFixed(2)} ms ` +
      `(${rtts.map((r) => r.toFixed(2)).join(' ')})`);

    // Still halted: no exit other than the report reached userspace.
    assert.ok(exits.every((r) => r === 'io'), `exits: ${exits.join(',')}`);
  } finally {
    server.close();
    const a0 = performance.now();
    ac.abort();
    await loop;
    t.diagnostic(`runLoop resolved ${(performance.now() - a0).toFixed(2)} ms after abort`);
  }
});
