// The work one I/O exit may start, whatever count the guest gives a string instruction: KVM
// hands at most a page of data per exit and the bus never goes past it; each access to the
// UART, fw_cfg or the RTL8139 costs a bounded amount, and a burst of TxPoll writes starts one
// turn's transmit, not one per write.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PioBus } from '../../lib/bus/bus.js';
import { RecordingIrqLine } from '../../lib/bus/irq.js';
import type { IoExit } from '../../lib/kvm/exit.js';
import { fakeGuestMemory } from '../../lib/kvm/memory.js';
import { NullBackend } from '../../lib/net/backend.js';
import { Uart16550, UART_IO_SIZE, UART_THR } from '../../lib/devices/uart16550.js';
import { FwCfg, FW_CFG_DATA, FW_CFG_ID, FW_CFG_IO_SIZE, FW_CFG_SELECTOR, FW_CFG_VERSION_DMA } from '../../lib/devices/fw-cfg.js';
import { Rtl8139, regs as R } from '../../lib/devices/rtl8139/index.js';
import type { DeferWork } from '../../lib/devices/work-budget.js';

const PAGE = 4096;

function rep(direction: 'in' | 'out', port: number, count: number, fill = 0): IoExit {
  return { reason: 'io', direction, port, size: 1, count, data: new Uint8Array(PAGE).fill(fill) };
}

test('rep outsb to the UART: one byte transmitted per access, never more than the exit\'s page', () => {
  const bus = new PioBus();
  let sent = 0;
  const uart = new Uart16550({ irq: new RecordingIrqLine(), onTransmit: () => { sent++; } });
  bus.register(0x3f8, UART_IO_SIZE, uart, 'com1');
  bus.handleIo(rep('out', 0x3f8 + UART_THR, 2 ** 31, 0x41));
  assert.equal(sent, PAGE);
});

test('fw_cfg: a byte per data access, a count past the page clamped, and no DMA interface to start', () => {
  const bus = new PioBus();
  const fw = new FwCfg({ cpus: 1 });
  fw.addFile('etc/big', new Uint8Array(1 << 20).fill(7));
  bus.register(0x510, FW_CFG_IO_SIZE, fw, 'fw-cfg');
  bus.write(0x510 + FW_CFG_SELECTOR, 2, FW_CFG_ID);
  assert.equal(bus.read(0x510 + FW_CFG_DATA, 1) & FW_CFG_VERSION_DMA, 0, 'DMA not advertised');
  bus.write(0x510 + FW_CFG_SELECTOR, 2, 0x0020);
  const e = rep('in', 0x510 + FW_CFG_DATA, 2 ** 31);
  bus.handleIo(e);
  assert.ok(e.data.every((b) => b === 7));
  assert.equal(fw.saveState().offset, PAGE, 'exactly one page read');
  // The DMA address registers (0x514-0x51b on QEMU) are not there: writes miss, nothing runs.
  const misses = bus.missCount;
  bus.write(0x514, 4, 0x1000);
  bus.write(0x518, 4, 0);
  assert.equal(bus.missCount, misses + 2);
});

test('4,096 TxPoll writes in one rep outsb start one turn of transmit work', () => {
  const mem = fakeGuestMemory([{ guestPhysAddr: 0, size: 0x400000 }]);
  const deferred: Array<() => void> = [];
  const defer: DeferWork = (cb) => { deferred.push(cb); return () => {}; };
  const nic = new Rtl8139({ mem, clock: { nowNs: () => 0n }, timers: { schedule: () => () => {} }, defer, workLimits: { segments: 32, bytes: 1e9, ms: 1e9 } });
  nic.attach({ map: () => {}, unmap: () => {} }, new RecordingIrqLine());
  nic.attachBackend(new NullBackend());
  const bus = new PioBus();
  bus.register(0xc000, 0x100, nic.ioBar, 'rtl8139');
  bus.write(0xc000 + R.CpCmd, 2, R.CpTxOn);
  bus.write(0xc000 + R.TxRingAddr, 4, 0x2000);
  bus.write(0xc000 + R.ChipCmd, 1, R.CmdTxEnb);
  const f = new Uint8Array(60);
  mem.write(0x100000, f);
  for (let i = 0; i < 256; i++) {
    mem.writeU32(0x2000 + 16 * i + 8, 0x100000);
    mem.writeU32(0x2000 + 16 * i, (R.DescOwn | R.FirstFrag | R.LastFrag | (i === 255 ? R.RingEnd : 0) | 60) >>> 0);
  }
  bus.handleIo(rep('out', 0xc000 + R.TxPoll, PAGE, R.NormalTxPoll));
  assert.equal(nic.stats.txFrames, 16, 'one turn: 32 units, a descriptor and a frame each');
  assert.equal(deferred.length, 1);
  while (deferred.length > 0) deferred.shift()!();
  assert.equal(nic.stats.txFrames, 256);
});
