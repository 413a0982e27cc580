// The console UART from the guest's side (test/guests/plat-uart.S, 32-bit flat, polled I/O):
// MCR loopback (bytes written to THR come back in RBR, MSR mirrors MCR, nothing reaches the
// console), then host input: the host writes a line to m.console and the guest, polling
// LSR.DR, reads it and echoes it back out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { requireKvm } from '../helpers/kvm.js';
import { buildGuestFile } from '../guests/build.js';
import { Machine } from '../../lib/machine/index.js';
import { Kvm, constants } from '../../lib/index.js';

const LOOPBACK_PATTERN = 'LOOPBACK<0123456789abcdefghijklmnopqrstuvwxyz>';

function uartGuest(): Uint8Array {
  return new Uint8Array(readFileSync(buildGuestFile('plat-uart.S', { linkAddress: 0x10000, format: 'flat' })));
}

for (const line of ['hello from the host', `${'0123456789'.repeat(30)}!`]) {
  test(`UART loopback in the guest, then a ${line.length}-byte host line echoed back`, async (t) => {
    if (!requireKvm(t)) return;
    await using m = await Machine.create({ kernel: uartGuest(), memory: '32M', flat: { mode: 'protected' } });
    m.start();
    const loop = await m.console.waitFor(/loopback bytes=([0-9a-f]{8}) errors=([0-9a-f]{8})\n/, { timeout: 30_000 });
    const [, bytes, errors] = /bytes=([0-9a-f]{8}) errors=([0-9a-f]{8})/.exec(loop)!;
    assert.equal(parseInt(bytes!, 16), LOOPBACK_PATTERN.length, 'every loopback byte came back');
    assert.equal(parseInt(errors!, 16), 0, `loopback errors; output:\n${m.console.output}`);
    const msr = parseInt(/^msr=([0-9a-f]{8})$/m.exec(m.console.output)![1]!, 16);
    assert.equal(msr & 0xf0, 0xb0, 'MSR: DCD, DSR, CTS from OUT2, DTR, RTS in loopback');
    assert.ok(!m.console.output.includes('LOOPBACK'), 'loopback bytes never reach the console');

    await m.console.waitFor('ready>\n', { timeout: 30_000 });
    // The FIFO holds 16 bytes; longer lines wait in the UART's input queue and the console's
    // backlog until the guest reads.
    await new Promise<void>((resolve, reject) => m.console.write(`${line}\n`, (e) => (e ? reject(e) : resolve())));
    const echoed = await m.console.waitFor(/echo:.*\n/, { timeout: 60_000 });
    assert.equal(echoed, `echo:${line}\n`);
    await m.console.waitFor(/len=[0-9a-f]{8}\n/, { timeout: 30_000 });
    assert.equal(parseInt(/^len=([0-9a-f]{8})$/m.exec(m.console.output)![1]!, 16), line.length);
    const result = await m.wait();
    assert.deepEqual({ reason: result.reason, code: result.code }, { reason: 'debug-exit', code: 1 });
  });
}

test('THR writes are queued by KVM (coalesced PIO) and reach the console even when the guest then halts for good', async (t) => {
  if (!requireKvm(t)) return;
  // Real mode: mov dx,0x3f8; mov al,'h'; out dx,al; mov al,'i'; out dx,al; mov al,10; out dx,al;
  // cli; hlt; jmp back to hlt. No exit to userspace follows the three writes: only the run
  // loop's kick ('interrupted') applies them.
  const guest = Uint8Array.of(0xba, 0xf8, 0x03, 0xb0, 0x68, 0xee, 0xb0, 0x69, 0xee, 0xb0, 0x0a, 0xee, 0xfa, 0xf4, 0xeb, 0xfd);
  await using m = await Machine.create({ kernel: guest, memory: '16M', flat: { mode: 'real' } });
  m.start();
  await m.console.waitFor('hi\n', { timeout: 10_000 });
  using kvm = Kvm.open();
  const coalescing = kvm.checkExtension(constants.KVM_CAP_COALESCED_PIO!) > 0;
  t.diagnostic(`coalesced PIO ${coalescing ? 'supported' : 'not supported'}: ${m.counters.coalesced} queued writes, ${m.counters.io} PIO exits`);
  if (coalescing) assert.equal(m.counters.coalesced, 3);
  await m.stop();
});
