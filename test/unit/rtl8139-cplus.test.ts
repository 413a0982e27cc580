// RTL8139C+ mode (what 8139cp drives): descriptor rings, offloads, hostile descriptors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecordingIrqLine } from '../../lib/bus/irq.js';
import { fakeGuestMemory, type GuestMemory } from '../../lib/kvm/memory.js';
import { crc32, internetChecksum, sum16, foldChecksum, ipv4PseudoHeaderSum } from '../../lib/net/checksum.js';
import { MemoryBackend, type TcpSegmentation } from '../../lib/net/backend.js';
import { RX_CHECKSUMS_VALID } from '../../lib/net/receive-offload.js';
import { Rtl8139, padFrame, regs as R, segmentTcp, insertChecksums } from '../../lib/devices/rtl8139/index.js';
import { DEFAULT_WORK_LIMITS } from '../../lib/devices/work-budget.js';

const RAM = 0x100000;
const RX_RING = 0x1000;
const TX_RING = 0x2000;
const MAC = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

function makeNic() {
  const mem = fakeGuestMemory([{ guestPhysAddr: 0, size: RAM }]);
  // The default per-turn limits without their clock: how much one synchronous test step may
  // do must not depend on how fast this machine runs it (see rtl8139-bounds.test.ts).
  const nic = new Rtl8139({ mem, clock: { nowNs: () => 0n }, timers: { schedule: () => () => {} }, workLimits: { ...DEFAULT_WORK_LIMITS, ms: 1e9 } });
  const irq = new RecordingIrqLine();
  nic.attach({ map: () => {}, unmap: () => {} }, irq);
  const backend = new MemoryBackend();
  nic.attachBackend(backend);
  const r = (o: number, s: number) => nic.mmioBar.read(o, s);
  const w = (o: number, s: number, v: number) => nic.mmioBar.write(o, s, v);
  // cp_init_hw order: reset, unlock, CpCmd, ring addresses, Cmd, RxConfig, lock.
  w(R.ChipCmd, 1, R.CmdReset);
  w(R.Cfg9346, 1, R.Cfg9346_Unlock);
  w(R.CpCmd, 2, R.PCIMulRW | R.RxChkSum | R.CpRxOn | R.CpTxOn);
  w(R.RxRingAddr, 4, RX_RING);
  w(R.RxRingAddr + 4, 4, 0);
  w(R.TxRingAddr, 4, TX_RING);
  w(R.TxRingAddr + 4, 4, 0);
  w(R.ChipCmd, 1, R.CmdRxEnb | R.CmdTxEnb);
  w(R.RxConfig, 4, R.AcceptBroadcast | R.AcceptMyPhys);
  w(R.Cfg9346, 1, R.Cfg9346_Lock);
  w(R.IntrMask, 2, 0xffff);
  return { mem, nic, irq, backend, r, w };
}

function rxDesc(mem: GuestMemory, i: number, buf: number, size: number, eor = false): void {
  mem.writeU32(RX_RING + 16 * i + 4, 0);
  mem.writeU32(RX_RING + 16 * i + 8, buf);
  mem.writeU32(RX_RING + 16 * i + 12, 0);
  mem.writeU32(RX_RING + 16 * i, (R.DescOwn | (eor ? R.RingEnd : 0) | size) >>> 0);
}

function txDesc(mem: GuestMemory, i: number, buf: number, len: number, flags: number, opts2 = 0): void {
  mem.writeU32(TX_RING + 16 * i + 4, opts2 >>> 0);
  mem.writeU32(TX_RING + 16 * i + 8, buf);
  mem.writeU32(TX_RING + 16 * i + 12, 0);
  mem.writeU32(TX_RING + 16 * i, (R.DescOwn | flags | len) >>> 0);
}

/** Ethernet + IPv4 + TCP (or UDP) frame with `payload` bytes and zeroed checksums. */
function ipFrame(proto: 6 | 17, payload: number, dst = MAC): Uint8Array {
  const l4h = proto === 6 ? 20 : 8;
  const f = new Uint8Array(14 + 20 + l4h + payload);
  f.set(dst, 0);
  f.set([0x02, 0, 0, 0, 0, 9], 6);
  f[12] = 0x08;
  const ip = 14;
  f[ip] = 0x45;
  const tot = 20 + l4h + payload;
  f[ip + 2] = tot >> 8; f[ip + 3] = tot & 0xff;
  f[ip + 4] = 0x12; f[ip + 5] = 0x34;
  f[ip + 6] = 0x40; // DF
  f[ip + 8] = 64; f[ip + 9] = proto;
  f.set([10, 0, 0, 1, 10, 0, 0, 2], ip + 12);
  const l4 = ip + 20;
  f[l4] = 0x30; f[l4 + 1] = 0x39; f[l4 + 2] = 0x00; f[l4 + 3] = 0x50;
  if (proto === 6) {
    f.set([0x10, 0x00, 0x00, 0x00], l4 + 4); // seq 0x10000000
    f[l4 + 12] = 0x50;
    f[l4 + 13] = 0x18 | 0x01 | 0x80; // ACK PSH FIN CWR
    f[l4 + 14] = 0xff;
  } else {
    f[l4 + 4] = (8 + payload) >> 8; f[l4 + 5] = (8 + payload) & 0xff;
  }
  for (let i = 0; i < payload; i++) f[l4 + l4h + i] = (i * 7) & 0xff;
  return f;
}

function l4Ok(f: Uint8Array, ipOff = 14): boolean {
  const ihl = (f[ipOff]! & 0xf) * 4;
  const tot = (f[ipOff + 2]! << 8) | f[ipOff + 3]!;
  const s = sum16(f, ipOff + ihl, ipOff + tot, ipv4PseudoHeaderSum(f, ipOff, f[ipOff + 9]!, tot - ihl));
  return foldChecksum(s) === 0;
}

test('C+ RX: descriptors filled in order, length incl. CRC, EOR wraps, RxOK', () => {
  const { mem, nic, r } = makeNic();
  rxDesc(mem, 0, 0x10000, 1536);
  rxDesc(mem, 1, 0x11000, 1536, true);
  const f = ipFrame(17, 100);
  for (let i = 0; i < 3; i++) {
    if (i === 2) rxDesc(mem, 0, 0x10000, 1536); // driver refilled slot 0
    assert.equal(nic.receive(f), true);
  }
  const o1 = mem.readU32(RX_RING);
  assert.equal(o1 & R.DescOwn, 0);
  assert.equal(o1 & (R.FirstFrag | R.LastFrag), R.FirstFrag | R.LastFrag);
  assert.equal((o1 & 0x1fff) - 4, f.length);
  assert.equal(mem.readU32(RX_RING + 16) & R.RingEnd, R.RingEnd, 'EOR preserved');
  assert.deepEqual(mem.read(0x10000, f.length), f);
  assert.equal(r(R.IntrStatus, 2) & R.RxOK, R.RxOK);
});

test('C+ RX: no free descriptor drops, counts MPC and raises RxEmpty', () => {
  const { mem, nic, r } = makeNic();
  rxDesc(mem, 0, 0x10000, 1536, true);
  assert.equal(nic.receive(ipFrame(17, 10)), true);
  assert.equal(nic.receive(ipFrame(17, 10)), false);
  assert.equal(r(R.RxMissed, 4), 1);
  assert.equal(r(R.IntrStatus, 2) & R.RxOverflow, R.RxOverflow);
});

test('C+ RX: a frame held back for want of a descriptor raises RxEmpty only; RxFIFOOvr when one is dropped', () => {
  const { mem, nic, backend, r, w } = makeNic();
  rxDesc(mem, 0, 0x10000, 1536, true);
  backend.inject(ipFrame(17, 10));
  w(R.IntrStatus, 2, 0xffff);
  backend.inject(ipFrame(17, 11)); // no descriptor: held back
  assert.equal(nic.stats.rxQueued, 1);
  assert.equal(r(R.IntrStatus, 2) & (R.RxOverflow | R.RxFIFOOver), R.RxOverflow);
  assert.equal(r(R.RxMissed, 4), 0);
  assert.equal(nic.receive(ipFrame(17, 12)), false); // the direct path drops while the ring is full
  assert.equal(r(R.RxMissed, 4), 1);
  assert.equal(r(R.IntrStatus, 2) & R.RxFIFOOver, R.RxFIFOOver);
  // Retried at every register write while the ring stays full (the FCS is computed only once
  // a descriptor takes the frame), then stored whole, with its FCS, once one is free.
  for (let i = 0; i < 3; i++) w(R.IntrMask, 2, 0);
  assert.equal(nic.stats.rxFrames, 1);
  rxDesc(mem, 0, 0x11000, 1536, true); // the driver refills the one-descriptor ring
  w(R.IntrMask, 2, 0);
  assert.equal(nic.stats.rxFrames, 2);
  const held = padFrame(ipFrame(17, 11));
  assert.deepEqual(mem.read(0x11000, held.length), held);
  assert.equal(mem.readU32(0x11000 + held.length), crc32(held));
  assert.equal((mem.readU32(RX_RING) & 0x1fff) - 4, held.length);
});

test('C+ RX: frames piling up for a full ring pause the backend; it resumes once they are all in the ring', () => {
  const { mem, nic, backend, w } = makeNic();
  const calls: string[] = [];
  Object.assign(backend, { pauseReceive: () => calls.push('pause'), resumeReceive: () => calls.push('resume') });
  rxDesc(mem, 0, 0x10000, 1536, true);
  for (let i = 0; i < 20; i++) backend.inject(ipFrame(17, 10 + i));
  assert.deepEqual(calls, ['pause'], 'paused once 16 wait');
  assert.equal(nic.stats.rxPauses, 1);
  assert.equal(nic.stats.rxMissed, 0, 'nothing lost: the queue holds 64');
  for (let i = 0; i < 32; i++) rxDesc(mem, i, 0x10000 + i * 0x800, 1536, i === 31);
  w(R.IntrMask, 2, 0xffff);
  assert.deepEqual(calls, ['pause', 'resume']);
  assert.equal(nic.stats.rxFrames, 20);
});

test('diagnosis: cplusRxRing() shows who owns each descriptor up to EOR, rxWaiting and interruptMask what the NIC holds', () => {
  const { mem, nic, backend, w } = makeNic();
  for (let i = 0; i < 4; i++) rxDesc(mem, i, 0x10000 + i * 0x800, 1536, i === 3);
  assert.deepEqual(nic.cplusRxRing(), { index: 0, owners: 'NNNN' });
  for (let i = 0; i < 6; i++) backend.inject(ipFrame(17, 10 + i));
  assert.deepEqual(nic.cplusRxRing(), { index: 0, owners: 'DDDD' }, 'four stored, the ring wrapped');
  assert.equal(nic.rxWaiting, 2, 'two wait for a descriptor');
  w(R.IntrMask, 2, 0x80ac);
  assert.equal(nic.interruptMask, 0x80ac);
});

test('C+ RX checksum status: good TCP/UDP pass, corrupted ones flag Fail', () => {
  const { mem, nic } = makeNic();
  for (let i = 0; i < 4; i++) rxDesc(mem, i, 0x10000 + i * 0x800, 1536, i === 3);
  const tcp = ipFrame(6, 50);
  insertChecksums(tcp, true, true, false);
  const udp = ipFrame(17, 50);
  insertChecksums(udp, true, false, true);
  const badUdp = udp.slice(); badUdp[50] ^= 0xff;
  const badIp = tcp.slice(); badIp[14 + 8] = 1; // TTL change without checksum fix
  for (const f of [tcp, udp, badUdp, badIp]) nic.receive(f);
  const st = [0, 1, 2, 3].map((i) => mem.readU32(RX_RING + 16 * i));
  assert.equal((st[0]! >>> 16) & 3, R.RxProtoTCP);
  assert.equal(st[0]! & (R.TCPFail | R.IPFail), 0);
  assert.equal((st[1]! >>> 16) & 3, R.RxProtoUDP);
  assert.equal(st[1]! & R.UDPFail, 0);
  assert.equal(st[2]! & R.UDPFail, R.UDPFail);
  assert.equal(st[3]! & R.IPFail, R.IPFail);
});

test('C+ RX checksum status: a frame whose backend vouched for it (RX_CHECKSUMS_VALID) is not summed again', () => {
  const { mem, nic } = makeNic();
  for (let i = 0; i < 2; i++) rxDesc(mem, i, 0x10000 + i * 0x800, 1536, i === 1);
  const tcp = ipFrame(6, 50);
  insertChecksums(tcp, true, true, false);
  tcp[60] ^= 0xff; // a wrong checksum would be caught if it were summed
  assert.equal(nic.tryReceive(tcp, RX_CHECKSUMS_VALID), 'ok');
  assert.equal(nic.tryReceive(tcp, 0), 'ok');
  const st = [0, 1].map((i) => mem.readU32(RX_RING + 16 * i));
  assert.equal((st[0]! >>> 16) & 3, R.RxProtoTCP);
  assert.equal(st[0]! & (R.TCPFail | R.IPFail), 0);
  assert.equal(st[1]! & R.TCPFail, R.TCPFail);
});

test('C+ TX: multi-descriptor frame (FS..LS), OWN cleared, EOR wraps, TxOK', () => {
  const { mem, backend, r, w } = makeNic();
  const f = ipFrame(17, 300);
  mem.write(0x20000, f.subarray(0, 14));
  mem.write(0x21000, f.subarray(14, 100));
  mem.write(0x22000, f.subarray(100));
  txDesc(mem, 0, 0x20000, 14, R.FirstFrag);
  txDesc(mem, 1, 0x21000, 86, 0);
  txDesc(mem, 2, 0x22000, f.length - 100, R.LastFrag | R.RingEnd);
  w(R.TxPoll, 1, R.NormalTxPoll);
  assert.equal(backend.sent.length, 1);
  assert.deepEqual(backend.sent[0], f);
  for (let i = 0; i < 3; i++) assert.equal(mem.readU32(TX_RING + 16 * i) & R.DescOwn, 0);
  assert.equal(r(R.IntrStatus, 2) & R.TxOK, R.TxOK);
  // After EOR the ring restarts at descriptor 0.
  txDesc(mem, 0, 0x22000, 60, R.FirstFrag | R.LastFrag);
  w(R.TxPoll, 1, R.NormalTxPoll);
  assert.equal(backend.sent.length, 2);
});

test('C+ TX checksum offload: IPCS+TCPCS and IPCS+UDPCS verified by recomputation', () => {
  const { mem, backend, w } = makeNic();
  const t = ipFrame(6, 333);
  const u = ipFrame(17, 77);
  mem.write(0x20000, t);
  mem.write(0x21000, u);
  txDesc(mem, 0, 0x20000, t.length, R.FirstFrag | R.LastFrag | R.IPCS | R.TCPCS);
  txDesc(mem, 1, 0x21000, u.length, R.FirstFrag | R.LastFrag | R.IPCS | R.UDPCS);
  w(R.TxPoll, 1, R.NormalTxPoll);
  assert.equal(backend.sent.length, 2);
  for (const s of backend.sent) {
    assert.equal(internetChecksum(s, 14, 34), 0);
    assert.ok(l4Ok(s));
  }
});

test('C+ TX completion status: the command bits (MSS, IPCS/UDPCS/TCPCS) do not come back as TxColCnt or error bits', () => {
  // 8139cp's cp_tx reads bits 16-25 of a completed descriptor as status: TxColCnt (19:16) is
  // added to the collision counter, TxFIFOUnder (25) counts a TX error. Those bits share their
  // places with the command's MSS and checksum flags, which the chip must not echo back.
  const { mem, w } = makeNic();
  const t = ipFrame(6, 2000);
  const c = ipFrame(6, 100);
  mem.write(0x20000, t);
  mem.write(0x24000, c);
  const mss = 536; // Linux's default MSS; bit 9 of it sits on TxFIFOUnder
  txDesc(mem, 0, 0x20000, t.length, R.FirstFrag | R.LastFrag | R.LargeSend | (mss << R.MSSShift));
  txDesc(mem, 1, 0x24000, c.length, R.FirstFrag | R.LastFrag | R.IPCS | R.TCPCS | R.UDPCS);
  w(R.TxPoll, 1, R.NormalTxPoll);
  for (const [i, len] of [[0, t.length], [1, c.length]] as const) {
    const st = mem.readU32(TX_RING + 16 * i);
    assert.equal(st & R.DescOwn, 0, `descriptor ${i} returned to the driver`);
    assert.equal(st & R.TxStatusBits, 0, `descriptor ${i}: no collision count or error bits (status ${st.toString(16)})`);
    assert.equal(st & (R.FirstFrag | R.LastFrag), R.FirstFrag | R.LastFrag);
    assert.equal(st & R.CpTxLenMask, len);
  }
  // An error still reports TxError (and only that).
  txDesc(mem, 2, 0xfff000, 0x2000, R.FirstFrag | R.LastFrag | R.LargeSend | (mss << R.MSSShift));
  w(R.TxPoll, 1, R.NormalTxPoll);
  assert.equal(mem.readU32(TX_RING + 32) & R.TxStatusBits, R.TxError);
});

test('TSO (LargeSend): MSS-sized segments, ids, seq, flags and checksums', () => {
  const { mem, backend, w } = makeNic();
  const payload = 4000;
  const mss = 1448;
  const f = ipFrame(6, payload);
  mem.write(0x20000, f.subarray(0, 54));
  mem.write(0x30000, f.subarray(54));
  txDesc(mem, 0, 0x20000, 54, R.FirstFrag | R.LargeSend | (mss << R.MSSShift));
  txDesc(mem, 1, 0x30000, payload, R.LastFrag | R.LargeSend | (mss << R.MSSShift));
  w(R.TxPoll, 1, R.NormalTxPoll);
  const segs = backend.sent;
  assert.deepEqual(segs.map((s) => s.length - 54), [1448, 1448, 1104]);
  let seq = 0x10000000;
  const rebuilt: number[] = [];
  segs.forEach((s, i) => {
    assert.equal((s[16]! << 8) | s[17]!, s.length - 14, 'IP total length');
    assert.equal((s[18]! << 8) | s[19]!, 0x1234 + i, 'IP id');
    assert.equal(internetChecksum(s, 14, 34), 0, 'IP checksum');
    assert.ok(l4Ok(s), 'TCP checksum');
    const sq = ((s[38]! << 24) | (s[39]! << 16) | (s[40]! << 8) | s[41]!) >>> 0;
    assert.equal(sq, seq);
    seq += s.length - 54;
    const flags = s[47]!;
    const last = i === segs.length - 1;
    assert.equal((flags & 0x09) !== 0, last, 'PSH/FIN only on the last');
    assert.equal((flags & 0x80) !== 0, i === 0, 'CWR only on the first');
    assert.equal(flags & 0x10, 0x10);
    rebuilt.push(...s.subarray(54));
  });
  assert.deepEqual(Uint8Array.from(rebuilt), f.subarray(54));
  assert.equal(segmentTcp(ipFrame(17, 100), 100), undefined);
});

/** A MemoryBackend that takes TSO frames whole (as a TAP with a virtio-net header does), or refuses them. */
class SegmentingBackend extends MemoryBackend {
  readonly whole: Array<{ frame: Uint8Array; tso: TcpSegmentation }> = [];
  constructor(private readonly accept: boolean) {
    super();
  }
  sendSegmented(frame: Uint8Array, tso: TcpSegmentation): boolean {
    if (!this.accept) return false;
    this.whole.push({ frame: frame.slice(), tso });
    return true;
  }
}

test('TSO to a backend that segments: one frame, IP checksum complete, TCP field = pseudo-header sum, counted as segments', () => {
  const { mem, nic, irq, w } = makeNic();
  const backend = new SegmentingBackend(true);
  nic.attachBackend(backend);
  const payload = 4000;
  const mss = 1448;
  const f = ipFrame(6, payload);
  // Ethernet padding after the IP datagram must not reach the backend as payload.
  mem.write(0x20000, f.subarray(0, 54));
  mem.write(0x30000, Uint8Array.from([...f.subarray(54), 0xee, 0xee]));
  txDesc(mem, 0, 0x20000, 54, R.FirstFrag | R.LargeSend | (mss << R.MSSShift));
  txDesc(mem, 1, 0x30000, payload + 2, R.LastFrag | R.LargeSend | (mss << R.MSSShift));
  const before = nic.stats.txFrames;
  w(R.TxPoll, 1, R.NormalTxPoll);
  assert.equal(backend.sent.length, 0, 'nothing cut by the NIC');
  assert.equal(backend.whole.length, 1);
  const { frame, tso } = backend.whole[0]!;
  assert.deepEqual(tso, { mss, l4Offset: 34, headerLength: 54, segments: 3 });
  assert.equal(frame.length, f.length);
  assert.deepEqual(frame.subarray(54), f.subarray(54), 'payload untouched');
  assert.equal(internetChecksum(frame, 14, 34), 0, 'IP header checksum filled');
  const partial = (frame[50]! << 8) | frame[51]!;
  assert.equal(partial, ~foldChecksum(ipv4PseudoHeaderSum(frame, 14, 6, 20 + payload)) & 0xffff, 'CHECKSUM_PARTIAL form');
  assert.equal(nic.stats.txFrames - before, 3, 'TX counters count wire segments');
  assert.equal((nic.interruptStatus & R.TxOK) !== 0, true);
  assert.ok(irq.level);
  assert.equal(mem.readU32(TX_RING) & R.DescOwn, 0, 'descriptors returned');
});

test('TSO falls back to cutting in the NIC: backend refuses or the frame fits one MSS; a VLAN-tagged one goes whole', () => {
  const { mem, nic, w } = makeNic();
  const refuse = new SegmentingBackend(false);
  nic.attachBackend(refuse);
  const mss = 1000;
  const f = ipFrame(6, 2500);
  mem.write(0x20000, f);
  txDesc(mem, 0, 0x20000, f.length, R.FirstFrag | R.LastFrag | R.LargeSend | (mss << R.MSSShift));
  w(R.TxPoll, 1, R.NormalTxPoll);
  assert.deepEqual(refuse.sent.map((s) => s.length - 54), [1000, 1000, 500]);
  assert.ok(refuse.sent.every((s) => l4Ok(s) && internetChecksum(s, 14, 34) === 0), 'segments fully checksummed after a refused handover');

  const take = new SegmentingBackend(true);
  nic.attachBackend(take);
  const small = ipFrame(6, 800);
  mem.write(0x40000, small);
  txDesc(mem, 1, 0x40000, small.length, R.FirstFrag | R.LastFrag | R.LargeSend | (mss << R.MSSShift));
  mem.write(0x50000, f);
  txDesc(mem, 2, 0x50000, f.length, R.FirstFrag | R.LastFrag | R.LargeSend | (mss << R.MSSShift), R.TxVlanTag | 0x0500);
  w(R.TxPoll, 1, R.NormalTxPoll);
  assert.equal(take.sent.length, 1, 'the short frame, checksummed');
  assert.ok(l4Ok(take.sent[0]!));
  // The tag goes into the frame first, and the frame goes to the backend whole, its offsets
  // counting the tag; cutting it there gives the tagged segments the wire carries.
  assert.equal(take.whole.length, 1);
  const { frame: whole, tso } = take.whole[0]!;
  assert.deepEqual([...whole.subarray(12, 16)], [0x81, 0x00, 0x00, 0x05]);
  assert.deepEqual(tso, { mss, l4Offset: 38, headerLength: 58, segments: 3 });
  const segs = segmentTcp(whole, mss)!;
  assert.deepEqual(segs.map((s) => s.length - 58), [1000, 1000, 500]);
  assert.ok(segs.every((s) => s[12] === 0x81 && s[13] === 0x00 && l4Ok(s, 18)));
});

test('VLAN: TxVlanTag inserts the (byte-swapped) tag; RxVlanOn strips it into opts2', () => {
  const { mem, backend, nic, w } = makeNic();
  const f = ipFrame(17, 40);
  mem.write(0x20000, f);
  const tci = 0x2064; // prio 1, VID 100
  const swapped = ((tci & 0xff) << 8) | (tci >> 8);
  txDesc(mem, 0, 0x20000, f.length, R.FirstFrag | R.LastFrag, R.TxVlanTag | swapped);
  w(R.TxPoll, 1, R.NormalTxPoll);
  const s = backend.sent[0]!;
  assert.deepEqual([...s.subarray(12, 16)], [0x81, 0x00, 0x20, 0x64]);
  assert.deepEqual(s.subarray(16), f.subarray(12));
  w(R.CpCmd, 2, R.CpRxOn | R.CpTxOn | R.RxVlanOn | R.RxChkSum);
  rxDesc(mem, 0, 0x10000, 1536, true);
  assert.equal(nic.receive(s), true);
  assert.equal(mem.readU32(RX_RING + 4), (R.RxVlanTagged | swapped) >>> 0);
  assert.equal((mem.readU32(RX_RING) & 0x1fff) - 4, f.length);
  assert.deepEqual(mem.read(0x10000, f.length), f);
});

test('hostile C+ descriptors: bad buffer, huge chains, unreachable ring, no FS; never throw', () => {
  const { mem, backend, nic, r, w } = makeNic();
  txDesc(mem, 0, RAM - 8, 100, R.FirstFrag | R.LastFrag); // buffer off the end of RAM
  txDesc(mem, 1, 0x20000, 0xffff, R.FirstFrag);
  for (let i = 2; i < 63; i++) txDesc(mem, i, 0x20000, 0xffff, 0); // > 64 KiB chain
  txDesc(mem, 63, 0x20000, 0xffff, R.LastFrag | R.RingEnd);
  w(R.TxPoll, 1, R.NormalTxPoll);
  assert.equal(backend.sent.length, 0);
  assert.equal(mem.readU32(TX_RING) & R.TxError, R.TxError);
  assert.equal(mem.readU32(TX_RING + 16 * 63) & R.TxError, R.TxError);
  assert.equal(r(R.IntrStatus, 2) & R.TxErr, R.TxErr);
  // A ring where every descriptor is owned and none has EOR: bounded work per TxPoll.
  const big = fakeGuestMemory([{ guestPhysAddr: 0, size: 0x8000 }]);
  const n2 = new Rtl8139({ mem: big, clock: { nowNs: () => 0n }, timers: { schedule: () => () => {} } });
  const b2 = new MemoryBackend();
  n2.attachBackend(b2);
  n2.mmioBar.write(R.CpCmd, 2, R.CpTxOn);
  n2.mmioBar.write(R.ChipCmd, 1, R.CmdTxEnb);
  n2.mmioBar.write(R.TxRingAddr, 4, 0);
  for (let i = 0; i < 0x8000 / 16; i++) big.writeU32(i * 16, (R.DescOwn | R.FirstFrag | R.LastFrag | 60) >>> 0);
  n2.mmioBar.write(R.TxPoll, 1, R.NormalTxPoll);
  assert.ok(b2.sent.length <= 1024);
  // Ring base outside RAM.
  w(R.TxRingAddr, 4, 0xffff_f000);
  w(R.TxRingAddr + 4, 4, 0xffff_ffff);
  w(R.TxPoll, 1, R.NormalTxPoll);
  assert.ok(nic.stats.txDmaErrors >= 1);
  // RX: ring and buffers outside RAM, and a buffer too small.
  w(R.RxRingAddr, 4, RAM - 8);
  assert.equal(nic.receive(ipFrame(17, 10)), false);
  w(R.RxRingAddr, 4, RX_RING);
  rxDesc(mem, 0, RAM - 16, 1536);
  rxDesc(mem, 1, 0x10000, 64, true);
  assert.equal(nic.receive(ipFrame(17, 10)), false);
  assert.equal(mem.readU32(RX_RING) & R.RxError, R.RxError);
  assert.equal(nic.receive(ipFrame(17, 200)), false);
  assert.equal(nic.stats.rxTooLong, 1);
  assert.equal(nic.stats.rxDmaErrors, 2);
});

test('C+ stats dump to StatsAddr clears DumpStats', () => {
  const { mem, nic, r, w } = makeNic();
  rxDesc(mem, 0, 0x10000, 1536, true);
  nic.receive(ipFrame(17, 10));
  w(R.StatsAddr + 4, 4, 0);
  w(R.StatsAddr, 4, 0x5000 | R.DumpStats);
  assert.equal(r(R.StatsAddr, 4) & R.DumpStats, 0);
  assert.equal(mem.readU64(0x5000 + 8), 1n);
});

test('C+ TX: after a TxPoll burst the NIC takes in the backend\'s waiting answer at once (pollReceive)', () => {
  const { mem, nic, backend, r, w } = makeNic();
  // A host stack that answers inside send(): the reply waits in the backend until polled.
  const waiting: Uint8Array[] = [];
  let polls = 0;
  const answering = Object.assign(backend, {
    pollReceive(): void {
      polls++;
      for (const f of waiting.splice(0)) backend.inject(f);
    },
  });
  nic.attachBackend(answering);
  rxDesc(mem, 0, 0x30000, 1536, true);
  const f = ipFrame(17, 64, [0x02, 0, 0, 0, 0, 9]);
  mem.write(0x20000, f);
  txDesc(mem, 0, 0x20000, f.length, R.FirstFrag | R.LastFrag | R.RingEnd);
  waiting.push(ipFrame(17, 32));
  w(R.TxPoll, 1, R.NormalTxPoll);
  assert.equal(polls, 1, 'one poll per TxPoll burst');
  assert.equal(backend.sent.length, 1);
  assert.equal(mem.readU32(RX_RING) & R.DescOwn, 0, 'the answer is in the RX ring before the guest runs again');
  assert.equal(r(R.IntrStatus, 2) & (R.TxOK | R.RxOK), R.TxOK | R.RxOK);
  // A TxPoll with nothing to send does not poll.
  w(R.TxPoll, 1, R.NormalTxPoll);
  assert.equal(polls, 1);
});
