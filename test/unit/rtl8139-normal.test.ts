// RTL8139 normal mode (what 8139too drives), through the register window with fake RAM/clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecordingIrqLine } from '../../lib/bus/irq.js';
import { fakeGuestMemory } from '../../lib/kvm/memory.js';
import { multicastHashBit, crc32 } from '../../lib/net/checksum.js';
import { MemoryBackend } from '../../lib/net/backend.js';
import { Rtl8139, regs as R } from '../../lib/devices/rtl8139/index.js';

const RAM = 0x40000;
const RING = 0x10000;

function makeNic(opts: { revision?: number; mac?: string } = {}) {
  let now = 0n;
  const clock = { nowNs: () => now };
  const pending: Array<{ at: bigint; cb: () => void; live: boolean }> = [];
  const timers = {
    schedule(delayNs: number, cb: () => void) {
      const e = { at: now + BigInt(Math.ceil(delayNs)), cb, live: true };
      pending.push(e);
      return () => { e.live = false; };
    },
  };
  const advance = (ns: bigint) => {
    now += ns;
    for (const e of pending.splice(0)) if (e.live && e.at <= now) e.cb(); else if (e.live) pending.push(e);
  };
  const mem = fakeGuestMemory([{ guestPhysAddr: 0, size: RAM }]);
  const nic = new Rtl8139({ mem, clock, timers, revision: opts.revision ?? 0x10, mac: opts.mac });
  const irq = new RecordingIrqLine();
  nic.attach({ map: () => {}, unmap: () => {} }, irq);
  nic.enableCommand(0x7);
  const backend = new MemoryBackend();
  nic.attachBackend(backend);
  const r = (o: number, s: number) => nic.ioBar.read(o, s);
  const w = (o: number, s: number, v: number) => nic.ioBar.write(o, s, v);
  return { nic, mem, irq, backend, r, w, advance };
}

/** Linux's read_eeprom(), bit-banged through Cfg9346. */
function readEeprom(w: (o: number, s: number, v: number) => void, r: (o: number, s: number) => number, loc: number, addrLen: number): number {
  const EE_CS = 0x08, EE_SK = 0x04, EE_DI = 0x02, EE_ENB = 0x80 | EE_CS;
  const cmd = loc | (6 << addrLen);
  w(R.Cfg9346, 1, EE_ENB & ~EE_CS);
  w(R.Cfg9346, 1, EE_ENB);
  for (let i = 3 + addrLen - 1; i >= 0; i--) {
    const d = (cmd & (1 << i)) ? EE_DI : 0;
    w(R.Cfg9346, 1, EE_ENB | d);
    w(R.Cfg9346, 1, EE_ENB | d | EE_SK);
  }
  w(R.Cfg9346, 1, EE_ENB);
  let v = 0;
  for (let i = 16; i > 0; i--) {
    w(R.Cfg9346, 1, EE_ENB | EE_SK);
    v = (v << 1) | (r(R.Cfg9346, 1) & 1);
    w(R.Cfg9346, 1, EE_ENB);
  }
  w(R.Cfg9346, 1, 0);
  return v;
}

function frame(dst: number[], len = 100, fill = 0xab): Uint8Array {
  const f = new Uint8Array(len).fill(fill);
  f.set(dst, 0);
  f.set([0x02, 0, 0, 0, 0, 9], 6);
  f[12] = 0x08; f[13] = 0x00;
  return f;
}
const MAC = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

function startRx(w: (o: number, s: number, v: number) => void, rxConfig: number) {
  w(R.ChipCmd, 1, R.CmdReset);
  w(R.RxBuf, 4, RING);
  w(R.ChipCmd, 1, R.CmdRxEnb | R.CmdTxEnb);
  w(R.RxConfig, 4, rxConfig);
}

test('EEPROM: 93C46 read of ID word, ids and MAC as 8139too does it; 8-bit probe misreads', () => {
  const { r, w } = makeNic({ mac: '02:11:22:33:44:55' });
  assert.notEqual(readEeprom(w, r, 0, 8), 0x8129, 'the 93C56 probe must fail on a 93C46');
  assert.equal(readEeprom(w, r, 0, 6), 0x8129);
  assert.equal(readEeprom(w, r, 1, 6), 0x10ec);
  assert.equal(readEeprom(w, r, 2, 6), 0x8139);
  const words = [7, 8, 9].map((i) => readEeprom(w, r, i, 6));
  assert.deepEqual(words, [0x1102, 0x3322, 0x5544]);
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((i) => r(R.IDR0 + i, 1)), [0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);
});

test('identity: TxConfig HWVERID for 8139C and C+, revision register, reset self-clears', () => {
  assert.equal(makeNic().r(R.TxConfig, 4) & R.TxHwVerMask, 0x7400_0000);
  assert.equal(makeNic({ revision: 0x20 }).r(R.TxConfig, 4) & R.TxHwVerMask, 0x7480_0000);
  const { r, w } = makeNic();
  w(R.TxConfig, 4, 0xffff_ffff);
  assert.equal(r(R.TxConfig, 4) & R.TxHwVerMask, 0x7400_0000, 'HWVERID is read-only');
  w(R.ChipCmd, 1, R.CmdReset);
  assert.equal(r(R.ChipCmd, 1) & R.CmdReset, 0);
  assert.equal(r(R.ChipCmd, 1) & R.RxBufEmpty, R.RxBufEmpty);
  assert.equal(r(R.TxStatus0, 4) & R.TxHostOwns, R.TxHostOwns);
});

test('RX ring: header, CRC, dword alignment, CBR/CAPR arithmetic and BUFE', () => {
  const { r, w, mem, nic } = makeNic();
  startRx(w, R.AcceptMyPhys | R.AcceptBroadcast | R.RxCfgWrap);
  assert.equal(r(R.RxBufPtr, 2), 0xfff0);
  const f = frame(MAC, 101);
  assert.equal(nic.receive(f), true);
  assert.equal(mem.readU16(RING) & (R.RxStatusOK | R.RxPhysical), R.RxStatusOK | R.RxPhysical);
  assert.equal(mem.readU16(RING + 2), 105);
  assert.deepEqual(mem.read(RING + 4, 101), f);
  assert.equal(mem.readU32(RING + 4 + 101), crc32(f));
  const cbr = r(R.RxBufAddr, 2);
  assert.equal(cbr, (4 + 105 + 3) & ~3);
  assert.equal(r(R.ChipCmd, 1) & R.RxBufEmpty, 0);
  assert.equal(r(R.IntrStatus, 2) & R.RxOK, R.RxOK);
  // The driver consumes: cur_rx = cbr; CAPR = cur_rx - 16.
  w(R.RxBufPtr, 2, (cbr - 16) & 0xffff);
  assert.equal(r(R.RxBufPtr, 2), cbr - 16);
  assert.equal(r(R.ChipCmd, 1) & R.RxBufEmpty, R.RxBufEmpty);
  // Short frames are padded to 60 bytes before the CRC.
  nic.receive(frame(MAC, 42));
  assert.equal(mem.readU16(RING + cbr + 2), 64);
  // Broadcast status bit.
  nic.receive(frame([255, 255, 255, 255, 255, 255]));
  assert.equal(nic.stats.rxBroadcast, 1);
});

function fillRingTo(nic: Rtl8139, r: (o: number, s: number) => number, target: number): void {
  // 1500-byte frames take 1508 bytes of ring each.
  while (r(R.RxBufAddr, 2) + 1508 <= target) assert.equal(nic.receive(frame(MAC, 1500)), true);
}

test('RX ring end with WRAP: the packet runs past the ring end, next offset wraps', () => {
  const { r, w, mem, nic } = makeNic();
  startRx(w, R.AcceptMyPhys | R.RxCfgWrap); // 8K ring
  fillRingTo(nic, r, 8192);
  const at = r(R.RxBufAddr, 2);
  w(R.RxBufPtr, 2, (at - 16) & 0xffff); // driver caught up
  const f = frame(MAC, 1500, 0x5a);
  assert.equal(nic.receive(f), true);
  assert.deepEqual(mem.read(RING + at + 4, 1500), f, 'contiguous past the ring end');
  assert.equal(r(R.RxBufAddr, 2), (at + 1508) % 8192);
});

test('RX ring end without WRAP: the packet wraps to the ring start', () => {
  const { r, w, mem, nic } = makeNic();
  startRx(w, R.AcceptMyPhys); // 8K ring, wrap-around mode
  fillRingTo(nic, r, 8192);
  const at = r(R.RxBufAddr, 2);
  w(R.RxBufPtr, 2, (at - 16) & 0xffff);
  const f = frame(MAC, 1500, 0x5a);
  assert.equal(nic.receive(f), true);
  const first = 8192 - (at + 4);
  assert.deepEqual(mem.read(RING + at + 4, first), f.subarray(0, first));
  assert.deepEqual(mem.read(RING, 1500 - first), f.subarray(first));
  assert.equal(mem.readU8(RING + 8192 + 16), 0, 'nothing written past the ring');
});

test('RX ring full: drop, MPC counts, RxOverflow/RxFIFOOver; MPC clears on write', () => {
  const { r, w, nic } = makeNic();
  startRx(w, R.AcceptMyPhys);
  let accepted = 0;
  while (nic.receive(frame(MAC, 1500))) accepted++;
  assert.equal(accepted, 5); // 5 * 1508 < 8192 - 1508
  assert.equal(r(R.RxMissed, 4), 1);
  assert.equal(r(R.IntrStatus, 2) & (R.RxOverflow | R.RxFIFOOver), R.RxOverflow | R.RxFIFOOver);
  w(R.RxMissed, 4, 0);
  assert.equal(r(R.RxMissed, 4), 0);
  assert.equal(nic.stats.rxMissed, 1);
});

test('backend frames wait in a bounded queue while the ring is full, flushed on CAPR', () => {
  const { r, w, nic, backend } = makeNic();
  startRx(w, R.AcceptMyPhys);
  for (let i = 0; i < 7; i++) backend.inject(frame(MAC, 1500, i));
  assert.equal(nic.stats.rxFrames, 5);
  assert.equal(nic.stats.rxQueued, 2);
  assert.equal(r(R.RxMissed, 4), 0);
  // Held back is not lost: no RxOverflow/RxFIFOOver, which 8139too would count as rx_errors,
  // but RxOK stays up after an ack, so the driver comes back for the unread frames.
  assert.equal(r(R.IntrStatus, 2) & (R.RxOverflow | R.RxFIFOOver), 0);
  w(R.IntrStatus, 2, 0xffff);
  assert.equal(r(R.IntrStatus, 2) & R.RxOK, R.RxOK);
  const cbr = r(R.RxBufAddr, 2);
  w(R.RxBufPtr, 2, (cbr - 16) & 0xffff);
  assert.equal(nic.stats.rxFrames, 7);
});

test('RxConfig filters: AAP, APM, AB, and the multicast hash in MAR0-7', () => {
  const { w, nic } = makeNic();
  startRx(w, R.AcceptMyPhys);
  assert.equal(nic.receive(frame([2, 0, 0, 0, 0, 1])), false);
  assert.equal(nic.receive(frame([255, 255, 255, 255, 255, 255])), false);
  const mc = [0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb];
  assert.equal(nic.receive(frame(mc)), false);
  w(R.RxConfig, 4, R.AcceptMyPhys | R.AcceptMulticast);
  assert.equal(nic.receive(frame(mc)), false, 'hash bit not set');
  const bit = multicastHashBit(Uint8Array.from(mc));
  // As 8139too does: mc_filter[bit >> 5] |= 1 << (bit & 31), written as two dwords.
  const filter = [0, 0];
  filter[bit >> 5] = (1 << (bit & 31)) >>> 0;
  w(R.MAR0, 4, filter[0]!);
  w(R.MAR0 + 4, 4, filter[1]!);
  assert.equal(nic.receive(frame(mc)), true);
  assert.equal(nic.receive(frame([0x01, 0x00, 0x5e, 0x00, 0x00, 0x01])), bit === multicastHashBit(Uint8Array.from([1, 0, 0x5e, 0, 0, 1])));
  w(R.RxConfig, 4, R.AcceptAllPhys);
  assert.equal(nic.receive(frame([2, 0, 0, 0, 0, 1])), true);
  assert.equal(nic.stats.rxMulticast, 1);
});

test('TX descriptors: OWN then TOK, TxOK interrupt, round robin, TxSummary', () => {
  const { r, w, mem, backend, irq } = makeNic();
  w(R.ChipCmd, 1, R.CmdTxEnb);
  w(R.IntrMask, 2, R.TxOK | R.TxErr);
  for (let i = 0; i < 4; i++) {
    const buf = 0x1000 + i * 0x800;
    const f = frame([2, 0, 0, 0, 0, i], 64 + i);
    mem.write(buf, f);
    w(R.TxAddr0 + 4 * i, 4, buf);
    w(R.TxStatus0 + 4 * i, 4, (64 + i) | (8 << 16)); // early-TX threshold bits accepted
    const tsd = r(R.TxStatus0 + 4 * i, 4);
    assert.equal(tsd & (R.TxHostOwns | R.TxStatOK), R.TxHostOwns | R.TxStatOK);
    assert.equal(tsd & R.TxSizeMask, 64 + i);
    assert.deepEqual(backend.sent[i], f);
  }
  assert.equal(r(R.TxSummary, 2), 0xf00f);
  assert.equal(irq.level, true);
  w(R.IntrStatus, 2, R.TxOK);
  assert.equal(irq.level, false);
});

test('TX while the transmitter is off waits for TE; link down completes with carrier lost', () => {
  const { r, w, mem, backend } = makeNic();
  mem.write(0x1000, frame(MAC, 60));
  w(R.TxAddr0, 4, 0x1000);
  w(R.TxStatus0, 4, 60);
  assert.equal(backend.sent.length, 0);
  assert.equal(r(R.TxStatus0, 4) & R.TxHostOwns, 0);
  w(R.ChipCmd, 1, R.CmdTxEnb);
  assert.equal(backend.sent.length, 1);
  backend.setLinkUp(false);
  w(R.TxStatus0 + 4, 4, 60);
  assert.equal(backend.sent.length, 1);
  assert.equal(r(R.TxStatus0 + 4, 4) >>> 31, 1, 'CRS');
});

test('bad guest values: TX size 0 or > 1792, TSAD and RBSTART outside RAM never throw', () => {
  const { r, w, nic, backend } = makeNic();
  w(R.ChipCmd, 1, R.CmdTxEnb | R.CmdRxEnb);
  w(R.TxAddr0, 4, 0x1000);
  w(R.TxStatus0, 4, 0);
  assert.equal(r(R.TxStatus0, 4) & R.TxAborted, R.TxAborted);
  w(R.TxStatus0 + 4, 4, 1793);
  assert.equal(r(R.TxStatus0 + 4, 4) & R.TxAborted, R.TxAborted);
  w(R.TxAddr0 + 8, 4, RAM - 10);
  w(R.TxStatus0 + 8, 4, 100);
  assert.equal(r(R.TxStatus0 + 8, 4) & R.TxAborted, R.TxAborted);
  w(R.TxAddr0 + 12, 4, 0xffff_fff0);
  w(R.TxStatus0 + 12, 4, 100);
  assert.equal(backend.sent.length, 0);
  assert.equal(nic.stats.txBadSize, 2);
  assert.equal(nic.stats.txDmaErrors, 2);
  assert.equal(r(R.IntrStatus, 2) & R.TxErr, R.TxErr);
  w(R.RxConfig, 4, R.AcceptMyPhys);
  w(R.RxBuf, 4, RAM - 0x1000); // ring runs off the end of RAM
  assert.equal(nic.receive(frame(MAC)), false);
  assert.equal(nic.stats.rxDmaErrors, 1);
  w(R.RxBuf, 4, 0xffff_ff00);
  assert.equal(nic.receive(frame(MAC)), false);
  assert.equal(r(R.IntrStatus, 2) & R.RxErr, R.RxErr);
});

test('ring size changed mid-stream keeps offsets inside the new ring', () => {
  const { r, w, nic, mem } = makeNic();
  startRx(w, R.AcceptMyPhys | (3 << 11)); // 64K
  for (let i = 0; i < 10; i++) nic.receive(frame(MAC, 1500));
  w(R.RxBufPtr, 2, (r(R.RxBufAddr, 2) - 16) & 0xffff);
  w(R.RxConfig, 4, R.AcceptMyPhys); // 8K now
  const beyond = mem.read(RING + 8192 + 16 + 1536, 0x8000);
  assert.equal(nic.receive(frame(MAC, 1500)), true);
  assert.ok(r(R.RxBufAddr, 2) < 8192);
  assert.deepEqual(mem.read(RING + 8192 + 16 + 1536, 0x8000), beyond, 'nothing written past the 8K ring');
});

test('ISR is write-1-to-clear per bit; INTx level tracks ISR & IMR', () => {
  const { r, w, nic, irq } = makeNic();
  startRx(w, R.AcceptMyPhys);
  nic.receive(frame(MAC));
  w(R.TxStatus0, 4, 0); // TxErr
  assert.equal(r(R.IntrStatus, 2), R.RxOK | R.TxErr);
  assert.equal(irq.level, false, 'masked');
  w(R.IntrMask, 2, R.RxOK);
  assert.equal(irq.level, true);
  w(R.IntrStatus, 2, R.TxErr);
  assert.equal(r(R.IntrStatus, 2), R.RxOK);
  assert.equal(irq.level, true);
  w(R.IntrStatus + 1, 1, 0xff); // high byte only: RxOK stays
  assert.equal(r(R.IntrStatus, 2), R.RxOK);
  w(R.IntrStatus, 2, 0xffff);
  assert.equal(r(R.IntrStatus, 2), 0);
  assert.equal(irq.level, false);
});

test('TCTR counts at 33 MHz; TimerInt raises TimeOut; writing TCTR restarts it', () => {
  const { r, w, irq, advance } = makeNic();
  advance(1_000_000n);
  assert.equal(r(R.Timer, 4), 33_000);
  w(R.Timer, 4, 0);
  assert.equal(r(R.Timer, 4), 0);
  w(R.IntrMask, 2, R.PCSTimeout);
  w(R.TimerInt, 4, 3300); // 100 us
  advance(99_000n);
  assert.equal(r(R.IntrStatus, 2) & R.PCSTimeout, 0);
  advance(1_000n);
  assert.equal(r(R.IntrStatus, 2) & R.PCSTimeout, R.PCSTimeout);
  assert.equal(irq.level, true);
  w(R.IntrStatus, 2, R.PCSTimeout);
  w(R.TimerInt, 4, 0);
  advance(10_000_000n);
  assert.equal(r(R.IntrStatus, 2) & R.PCSTimeout, 0);
});

test('link change: BMSR/MediaStatus/CSCR follow the backend and LinkChg is raised', () => {
  const { r, w, backend } = makeNic();
  assert.equal(r(R.BasicModeStatus, 2) & 0x4, 0x4);
  assert.equal(r(R.MediaStatus, 1) & R.MSRLinkFail, 0);
  backend.setLinkUp(false);
  assert.equal(r(R.MediaStatus, 1) & R.MSRLinkFail, R.MSRLinkFail);
  assert.equal(r(R.IntrStatus, 2) & R.RxUnderrun, R.RxUnderrun);
  assert.equal(r(R.CSCR, 2) & R.CSCR_LinkChangeBit, R.CSCR_LinkChangeBit);
  assert.equal(r(R.BasicModeStatus, 2) & 0x4, 0);
  backend.setLinkUp(true);
  assert.equal(r(R.BasicModeStatus, 2) & 0x4, 0x4);
  backend.setLinkUp(false);
  backend.setLinkUp(true);
  assert.equal(r(R.BasicModeStatus, 2) & 0x4, 0, 'a link loss stays latched until BMSR is read');
  assert.equal(r(R.BasicModeStatus, 2) & 0x4, 0x4);
  w(R.IntrStatus, 2, R.RxUnderrun);
  assert.equal(r(R.CSCR, 2) & R.CSCR_LinkChangeBit, 0);
});

test('Config registers and BMCR are writable only while Cfg9346 is unlocked', () => {
  const { r, w } = makeNic();
  w(R.Config1, 1, 0x20);
  assert.equal(r(R.Config1, 1), 0);
  w(R.BasicModeCtrl, 2, 0x0000);
  assert.equal(r(R.BasicModeCtrl, 2), 0x3100);
  w(R.Cfg9346, 1, R.Cfg9346_Unlock);
  w(R.Config1, 1, 0x20);
  w(R.BasicModeCtrl, 2, 0x2100 | 0x0200);
  w(R.Cfg9346, 1, R.Cfg9346_Lock);
  assert.equal(r(R.Config1, 1), 0x20);
  assert.equal(r(R.BasicModeCtrl, 2), 0x2100, 'restart-AN self-clears');
  w(R.Config0, 1, 0xff);
  assert.equal(r(R.Config0, 1), 0);
});

test('TX internal loopback delivers to our own RX ring', () => {
  const { w, mem, nic, backend } = makeNic();
  startRx(w, R.AcceptMyPhys);
  w(R.TxConfig, 4, R.TxLoopBack);
  const f = frame(MAC, 80, 0x77);
  mem.write(0x1000, f);
  w(R.TxAddr0, 4, 0x1000);
  w(R.TxStatus0, 4, 80);
  assert.equal(backend.sent.length, 0);
  assert.equal(nic.stats.rxFrames, 1);
  assert.deepEqual(mem.read(RING + 4, 80), f);
});
