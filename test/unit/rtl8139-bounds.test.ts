// The RTL8139C+ under hostile rings and floods: what one register write, or one backend batch,
// may cost the main thread. LargeSend with an MSS below 8 is refused; transmit and receive work
// in per-turn budgets of segments (descriptors, frames) and bytes, the rest on later turns
// (driven here by hand through an injected defer).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecordingIrqLine } from '../../lib/bus/irq.js';
import { fakeGuestMemory, type GuestMemory } from '../../lib/kvm/memory.js';
import { MemoryBackend, type TcpSegmentation } from '../../lib/net/backend.js';
import { segmentTcp, TcpSegmenter } from '../../lib/net/tcp-segmentation.js';
import { Rtl8139, regs as R } from '../../lib/devices/rtl8139/index.js';
import { CP_MIN_MSS } from '../../lib/devices/rtl8139/cplus.js';
import { TurnBudget, WorkBudget, type DeferWork, type WorkLimits } from '../../lib/devices/work-budget.js';

const RAM = 0x400000;
const TX_RING = 0x2000;
const HI_RING = 0x6000;
const FRAMES = 0x100000;

/** A hand-driven event loop: deferred turns run when the test says so. */
class Turns {
  private queue: Array<{ cb: () => void; live: boolean }> = [];
  cancelled = 0;
  readonly defer: DeferWork = (cb) => {
    const e = { cb, live: true };
    this.queue.push(e);
    return () => {
      if (e.live) { e.live = false; this.cancelled++; }
    };
  };
  get pending(): number {
    return this.queue.filter((e) => e.live).length;
  }
  /** Run one pending turn; false if none. */
  step(): boolean {
    for (;;) {
      const e = this.queue.shift();
      if (e === undefined) return false;
      if (!e.live) continue;
      e.live = false;
      e.cb();
      return true;
    }
  }
}

const TIMELESS: WorkLimits = { segments: 16, bytes: 4096, ms: 1e9 };

function makeNic(limits: WorkLimits = TIMELESS, mem: GuestMemory = fakeGuestMemory([{ guestPhysAddr: 0, size: RAM }])) {
  const turns = new Turns();
  const nic = new Rtl8139({ mem, clock: { nowNs: () => 0n }, timers: { schedule: () => () => {} }, defer: turns.defer, workLimits: limits });
  const irq = new RecordingIrqLine();
  nic.attach({ map: () => {}, unmap: () => {} }, irq);
  const backend = new MemoryBackend();
  nic.attachBackend(backend);
  const r = (o: number, s: number) => nic.mmioBar.read(o, s);
  const w = (o: number, s: number, v: number) => nic.mmioBar.write(o, s, v);
  w(R.ChipCmd, 1, R.CmdReset);
  w(R.CpCmd, 2, R.CpRxOn | R.CpTxOn);
  w(R.TxRingAddr, 4, TX_RING);
  w(R.TxRingAddr + 4, 4, 0);
  w(R.HiTxRingAddr, 4, HI_RING);
  w(R.HiTxRingAddr + 4, 4, 0);
  w(R.ChipCmd, 1, R.CmdRxEnb | R.CmdTxEnb);
  w(R.IntrMask, 2, 0xffff);
  return { mem, nic, irq, backend, r, w, turns };
}

function txDesc(mem: GuestMemory, ring: number, i: number, buf: number, len: number, flags: number, opts2 = 0): void {
  mem.writeU32(ring + 16 * i + 4, opts2 >>> 0);
  mem.writeU32(ring + 16 * i + 8, buf);
  mem.writeU32(ring + 16 * i + 12, 0);
  mem.writeU32(ring + 16 * i, (R.DescOwn | flags | len) >>> 0);
}

/** Ethernet + IPv4 + TCP frame with `payload` bytes. */
function tcpFrame(payload: number): Uint8Array {
  const f = new Uint8Array(54 + payload);
  f.set([0x52, 0x54, 0, 0x12, 0x34, 0x57, 0x02, 0, 0, 0, 0, 9, 0x08, 0x00]);
  f[14] = 0x45;
  f[16] = (40 + payload) >> 8; f[17] = (40 + payload) & 0xff;
  f[22] = 64; f[23] = 6;
  f.set([10, 0, 0, 1, 10, 0, 0, 2], 26);
  f[34 + 12] = 0x50;
  f[34 + 13] = 0x18;
  for (let i = 0; i < payload; i++) f[54 + i] = (i * 13) & 0xff;
  return f;
}

const large = (mss: number) => R.FirstFrag | R.LastFrag | R.LargeSend | (mss << R.MSSShift);
const owned = (mem: GuestMemory, ring: number, i: number) => (mem.readU32(ring + 16 * i) & R.DescOwn) !== 0;

test('LargeSend with an MSS below 8 completes with TxError and txBadMss, nothing sent; MSS 8 is cut', () => {
  assert.equal(CP_MIN_MSS, 8);
  const { mem, nic, backend, irq, r, w, turns } = makeNic({ segments: 1e6, bytes: 1e9, ms: 1e9 });
  const f = tcpFrame(800);
  mem.write(FRAMES, f);
  for (let mss = 0; mss < 8; mss++) txDesc(mem, TX_RING, mss, FRAMES, f.length, large(mss));
  txDesc(mem, TX_RING, 8, FRAMES, f.length, large(8) | R.RingEnd);
  w(R.TxPoll, 1, R.NormalTxPoll);
  for (let i = 0; i < 8; i++) {
    const st = mem.readU32(TX_RING + 16 * i);
    assert.equal(st & R.DescOwn, 0, `descriptor ${i} returned`);
    assert.equal(st & R.TxStatusBits, R.TxError, `MSS ${i}: TxError`);
  }
  assert.equal(mem.readU32(TX_RING + 16 * 8) & (R.DescOwn | R.TxStatusBits), 0, 'MSS 8: sent');
  assert.equal(nic.stats.txBadMss, 8);
  assert.equal(nic.stats.txErrors, 8);
  assert.equal(backend.sent.length, 100, '800 bytes at MSS 8');
  assert.ok(backend.sent.every((s) => s.length === 62));
  assert.equal(r(R.IntrStatus, 2) & (R.TxOK | R.TxErr), R.TxOK | R.TxErr);
  assert.ok(irq.level);
  assert.equal(turns.pending, 0);
  assert.equal(r(R.TxPoll, 1), 0, 'nothing left to transmit');
});

test('TcpSegmenter: cut in pieces gives what segmentTcp gives at once', () => {
  const f = tcpFrame(1000);
  const whole = segmentTcp(f, 9)!;
  const s = TcpSegmenter.of(f, 9)!;
  assert.equal(s.total, 112);
  const pieces: Uint8Array[] = [];
  for (const k of [1, 5, 50, 100]) {
    const bytes = s.bytesOf(k);
    const got = s.cut(k);
    assert.equal(got.reduce((n, g) => n + g.length, 0), bytes);
    pieces.push(...got);
  }
  assert.ok(s.done);
  assert.equal(s.cut(5).length, 0);
  assert.deepEqual(pieces, whole);
  const one = TcpSegmenter.of(tcpFrame(8), 8)!;
  assert.equal(one.total, 1);
  assert.equal(one.bytesOf(4), 62);
  assert.equal(one.cut(3).length, 1);
});

test('one TxPoll over a ring of LargeSend descriptors at MSS 8: bounded segments and bytes per turn, the rest on later turns', () => {
  const limits = { segments: 64, bytes: 8192, ms: 1e9 };
  const { mem, nic, backend, irq, r, w, turns } = makeNic(limits);
  const f = tcpFrame(2000); // 250 segments of 62 bytes each
  mem.write(FRAMES, f);
  const N = 16;
  for (let i = 0; i < N; i++) txDesc(mem, TX_RING, i, FRAMES, f.length, large(8) | (i === N - 1 ? R.RingEnd : 0));
  w(R.TxPoll, 1, R.NormalTxPoll);
  const firstTurn = backend.sent.length;
  assert.ok(firstTurn > 0 && firstTurn <= limits.segments, `first turn sent ${firstTurn}`);
  assert.equal(r(R.TxPoll, 1), R.NormalTxPoll, 'TxPoll reads NPQ while the queue is served');
  assert.ok(owned(mem, TX_RING, 0), 'the descriptor being cut stays the chip\'s');
  assert.equal(r(R.IntrStatus, 2) & R.TxOK, R.TxOK, 'TxOK for what went out');
  // The driver acknowledges; more TxPoll writes (a rep outsb) start no work of their own.
  w(R.IntrStatus, 2, 0xffff);
  assert.equal(irq.level, false);
  for (let i = 0; i < 100; i++) w(R.TxPoll, 1, R.NormalTxPoll);
  assert.equal(backend.sent.length, firstTurn);
  assert.equal(turns.pending, 1, 'one deferred turn, however many polls');
  let steps = 0;
  let prev = firstTurn;
  while (turns.step()) {
    steps++;
    const n = backend.sent.length - prev;
    const bytes = backend.sent.slice(prev).reduce((a, s) => a + s.length, 0);
    assert.ok(n <= limits.segments, `turn ${steps}: ${n} segments`);
    assert.ok(bytes <= limits.bytes + 62, `turn ${steps}: ${bytes} bytes`);
    prev = backend.sent.length;
    assert.ok(steps < 1000);
  }
  assert.equal(backend.sent.length, N * 250);
  assert.ok(steps >= (N * 250) / limits.segments - 1, `${steps} turns`);
  for (let i = 0; i < N; i++) assert.equal(mem.readU32(TX_RING + 16 * i) & (R.DescOwn | R.TxStatusBits), 0, `descriptor ${i}`);
  assert.equal(r(R.TxPoll, 1), 0);
  assert.ok(irq.level, 'TxOK raised again by the later turns');
  assert.equal(nic.stats.txFrames, N * 250);
  assert.ok(nic.stats.txDeferred >= steps - 1);
  // Segments in order: sequence numbers advance by 8 across the turns.
  const seq = (s: Uint8Array) => new DataView(s.buffer, s.byteOffset).getUint32(38);
  for (let i = 1; i < 250; i++) assert.equal(seq(backend.sent[i]!) - seq(backend.sent[i - 1]!), 8);
});

test('plain frames are bounded by bytes too: a full ring of 1514-byte frames takes several turns', () => {
  const { mem, backend, w, turns } = makeNic({ segments: 1024, bytes: 16 * 1024, ms: 1e9 });
  const f = tcpFrame(1460);
  mem.write(FRAMES, f);
  for (let i = 0; i < 1024; i++) txDesc(mem, TX_RING, i, FRAMES, f.length, R.FirstFrag | R.LastFrag | (i === 1023 ? R.RingEnd : 0));
  w(R.TxPoll, 1, R.NormalTxPoll);
  assert.ok(backend.sent.length <= 11, `first turn: ${backend.sent.length} frames`);
  let steps = 1;
  while (turns.step()) steps++;
  assert.equal(backend.sent.length, 1024);
  assert.ok(steps >= 90, `${steps} turns`);
  assert.equal(owned(mem, TX_RING, 1023), false);
});

test('the high-priority queue goes first, and both TxPoll bits read back until their queue is done', () => {
  const { mem, backend, r, w, turns } = makeNic({ segments: 4, bytes: 1e6, ms: 1e9 });
  const lo = tcpFrame(10);
  const hi = tcpFrame(20);
  mem.write(FRAMES, lo);
  mem.write(FRAMES + 0x1000, hi);
  for (let i = 0; i < 6; i++) txDesc(mem, TX_RING, i, FRAMES, lo.length, R.FirstFrag | R.LastFrag);
  for (let i = 0; i < 6; i++) txDesc(mem, HI_RING, i, FRAMES + 0x1000, hi.length, R.FirstFrag | R.LastFrag);
  w(R.TxPoll, 1, R.NormalTxPoll | R.HighTxPoll);
  assert.equal(r(R.TxPoll, 1), R.NormalTxPoll | R.HighTxPoll);
  const seen = [r(R.TxPoll, 1)];
  while (turns.step()) seen.push(r(R.TxPoll, 1));
  // Each turn: a descriptor and its frame are two of the four units, so two frames a turn.
  assert.ok(seen.length >= 6, `${seen.length} turns`);
  const hpqGone = seen.findIndex((v) => (v & R.HighTxPoll) === 0);
  const npqGone = seen.findIndex((v) => (v & R.NormalTxPoll) === 0);
  assert.ok(hpqGone > 0 && hpqGone < npqGone, `TxPoll read ${seen.map((v) => v.toString(16)).join(' ')}`);
  assert.deepEqual(backend.sent.map((s) => s.length), [...Array(6).fill(74), ...Array(6).fill(64)]);
  assert.equal(r(R.TxPoll, 1), 0);
});

test('reset, transmitter off, a new ring address and close cancel the deferred turn', () => {
  const f = tcpFrame(4000);
  const cases: Array<[string, (w: (o: number, s: number, v: number) => void, nic: Rtl8139) => void]> = [
    ['ChipCmd.RST', (w) => w(R.ChipCmd, 1, R.CmdReset)],
    ['ChipCmd TE off', (w) => w(R.ChipCmd, 1, R.CmdRxEnb)],
    ['CpCmd TxOn off', (w) => w(R.CpCmd, 2, R.CpRxOn)],
    ['TxRingAddr', (w) => w(R.TxRingAddr, 4, TX_RING + 0x100)],
    ['power-on reset', (_w, nic) => nic.reset()],
    ['close', (_w, nic) => nic.close()],
  ];
  for (const [what, stop] of cases) {
    const { mem, nic, backend, r, w, turns } = makeNic();
    mem.write(FRAMES, f);
    txDesc(mem, TX_RING, 0, FRAMES, f.length, large(8) | R.RingEnd);
    w(R.TxPoll, 1, R.NormalTxPoll);
    assert.equal(turns.pending, 1, what);
    stop(w, nic);
    assert.equal(turns.pending, 0, `${what}: deferred turn cancelled`);
    assert.equal(turns.cancelled, 1, what);
    assert.equal(r(R.TxPoll, 1), 0, `${what}: no queue polled`);
    const sent = backend.sent.length;
    assert.equal(turns.step(), false);
    assert.equal(backend.sent.length, sent, what);
  }
});

test('a snapshot taken part-way through a LargeSend frame goes on after restore with the same segments', () => {
  const f = tcpFrame(3000);
  const tag = R.TxVlanTag | 0x6400;
  const reference = makeNic({ segments: 1e6, bytes: 1e9, ms: 1e9 });
  reference.mem.write(FRAMES, f);
  txDesc(reference.mem, TX_RING, 0, FRAMES, f.length, large(10) | R.RingEnd, tag);
  reference.w(R.TxPoll, 1, R.NormalTxPoll);
  assert.equal(reference.backend.sent.length, 300);

  const a = makeNic();
  a.mem.write(FRAMES, f);
  txDesc(a.mem, TX_RING, 0, FRAMES, f.length, large(10) | R.RingEnd, tag);
  a.w(R.TxPoll, 1, R.NormalTxPoll);
  a.turns.step();
  const state = JSON.parse(JSON.stringify(a.nic.saveState())) as ReturnType<Rtl8139['saveState']>;
  assert.equal(state.txPolling, R.NormalTxPoll);
  assert.ok(state.cpTx.emitting !== undefined);
  a.nic.close();
  const done = a.backend.sent.length;

  // The guest reused its buffer meanwhile: the chip's copy is what counts.
  const mem = fakeGuestMemory([{ guestPhysAddr: 0, size: RAM }]);
  mem.write(0, a.mem.read(0, RAM));
  mem.write(FRAMES, new Uint8Array(f.length));
  const b = makeNic(TIMELESS, mem);
  b.nic.loadState(state);
  assert.equal(b.turns.pending, 1, 'restore schedules the rest');
  assert.equal(b.r(R.TxPoll, 1), R.NormalTxPoll);
  while (b.turns.step());
  assert.deepEqual([...a.backend.sent, ...b.backend.sent].map((s) => [...s]), reference.backend.sent.map((s) => [...s]));
  assert.equal(b.backend.sent.length, 300 - done);
  assert.equal(mem.readU32(TX_RING) & R.DescOwn, 0);
});

test('a backend that segments takes a LargeSend frame whole, charged as its segments, if they fit in a turn', () => {
  class Whole extends MemoryBackend {
    readonly whole: Array<{ frame: Uint8Array; tso: TcpSegmentation }> = [];
    sendSegmented(frame: Uint8Array, tso: TcpSegmentation): boolean {
      this.whole.push({ frame: frame.slice(), tso });
      return true;
    }
  }
  const { mem, nic, w, turns } = makeNic({ segments: 100, bytes: 1e9, ms: 1e9 });
  const b = new Whole();
  nic.attachBackend(b);
  const f = tcpFrame(800); // 100 segments at MSS 8
  mem.write(FRAMES, f);
  for (let i = 0; i < 3; i++) txDesc(mem, TX_RING, i, FRAMES, f.length, large(8) | (i === 2 ? R.RingEnd : 0));
  w(R.TxPoll, 1, R.NormalTxPoll);
  assert.equal(b.whole.length, 1, 'one frame per turn: it used the turn\'s 100 segments');
  while (turns.step());
  assert.equal(b.whole.length, 3);
  assert.equal(nic.stats.txFrames, 300);
  // More segments than a turn may make: cut here, a turn at a time, never handed on whole.
  const big = tcpFrame(808); // 101 segments
  mem.write(FRAMES, big);
  txDesc(mem, TX_RING, 0, FRAMES, big.length, large(8) | R.RingEnd);
  w(R.TxPoll, 1, R.NormalTxPoll);
  while (turns.step());
  assert.equal(b.whole.length, 3);
  assert.equal(b.sent.length, 101);
  assert.equal(nic.stats.txFrames, 401);
});

test('WorkBudget: limits checked, the clock counts only after a quarter of the segments', () => {
  assert.throws(() => new WorkBudget({ segments: 0, bytes: 1, ms: 1 }), { code: 'ERR_INVALID_ARG' });
  assert.throws(() => new WorkBudget({ segments: 1, bytes: Number.NaN, ms: 1 }), { code: 'ERR_INVALID_ARG' });
  let now = 0;
  const b = new WorkBudget({ segments: 8, bytes: 1000, ms: 2 }, () => now);
  b.refill();
  b.enter();
  now = 100;
  assert.equal(b.exhausted, false, 'late, but nothing done yet');
  b.spend(2, 10);
  assert.equal(b.exhausted, true, 'late after a quarter');
  b.refill();
  b.spend(1, 1000);
  assert.equal(b.exhausted, true, 'bytes');
  b.refill();
  assert.equal(b.fits(100), 8);
  b.spend(7, 0);
  assert.equal(b.fits(100), 1);
  now = 200;
  assert.equal(b.fits(100), 0, 'clock');
  // Only time between enter() and leave() counts: the guest's time between exits does not.
  b.refill();
  b.spend(2, 0);
  now = 201;
  b.leave();
  now = 1000;
  assert.equal(b.exhausted, false, 'outside the device');
  b.enter();
  now = 1001.5;
  assert.equal(b.exhausted, true, '1 + 1.5 ms inside');
});

/** A backend that honours pauseReceive like a TAP: what it cannot deliver waits for resume. */
class PausableBackend extends MemoryBackend {
  private held: Uint8Array[] = [];
  private paused = false;
  pauses = 0;
  flood(frames: Uint8Array[]): void {
    this.held.push(...frames);
    this.drain();
  }
  pauseReceive(): void {
    this.paused = true;
    this.pauses++;
  }
  resumeReceive(): void {
    this.paused = false;
    this.drain();
  }
  get waiting(): number {
    return this.held.length;
  }
  private drain(): void {
    while (!this.paused && this.held.length > 0) this.inject(this.held.shift()!);
  }
}

const RX_RING = 0xa000;

function rxRing(mem: GuestMemory, n: number): void {
  for (let i = 0; i < n; i++) {
    mem.writeU32(RX_RING + 16 * i + 4, 0);
    mem.writeU32(RX_RING + 16 * i + 8, 0x200000 + i * 2048);
    mem.writeU32(RX_RING + 16 * i + 12, 0);
    mem.writeU32(RX_RING + 16 * i, (R.DescOwn | (i === n - 1 ? R.RingEnd : 0) | 1536) >>> 0);
  }
}

test('a flood from the backend into a 1,024-descriptor RX ring is stored a turn\'s budget at a time, nothing lost', () => {
  const limits = { segments: 64, bytes: 1e9, ms: 1e9 };
  const { mem, nic, w, turns } = makeNic(limits);
  const b = new PausableBackend();
  nic.attachBackend(b);
  w(R.RxRingAddr, 4, RX_RING);
  w(R.RxRingAddr + 4, 4, 0);
  w(R.RxConfig, 4, R.AcceptBroadcast | R.AcceptMyPhys);
  rxRing(mem, 1024);
  const f = tcpFrame(1400);
  f.set(nic.mac, 0);
  b.flood(Array.from({ length: 1000 }, () => f));
  assert.equal(nic.stats.rxFrames, 64, 'one turn\'s worth stored');
  assert.ok(b.pauses >= 1 && b.waiting > 800, 'the rest waits in the backend, which was paused');
  // The driver acknowledging (an exit in the same turn) stores no more.
  w(R.IntrStatus, 2, 0xffff);
  assert.equal(nic.stats.rxFrames, 64);
  let steps = 0;
  let prev = 64;
  while (turns.step()) {
    steps++;
    assert.ok(nic.stats.rxFrames - prev <= 64, `turn ${steps} stored ${nic.stats.rxFrames - prev}`);
    prev = nic.stats.rxFrames;
    assert.ok(steps < 100);
  }
  assert.equal(nic.stats.rxFrames, 1000);
  assert.equal(nic.stats.rxMissed, 0);
  assert.ok(nic.stats.rxDeferred >= 15, `${nic.stats.rxDeferred} deferred flushes`);
  assert.equal(b.waiting, 0);
  assert.equal(mem.readU32(RX_RING + 16 * 999) & R.DescOwn, 0);
});

test('close cancels a deferred receive flush', () => {
  const { mem, nic, w, turns } = makeNic({ segments: 4, bytes: 1e9, ms: 1e9 });
  const b = new PausableBackend();
  nic.attachBackend(b);
  w(R.RxRingAddr, 4, RX_RING);
  w(R.RxRingAddr + 4, 4, 0);
  w(R.RxConfig, 4, R.AcceptBroadcast | R.AcceptMyPhys);
  rxRing(mem, 16);
  const f = tcpFrame(100);
  f.set(nic.mac, 0);
  b.flood(Array.from({ length: 10 }, () => f));
  assert.equal(nic.stats.rxFrames, 4);
  assert.equal(turns.pending, 1);
  nic.close();
  assert.equal(turns.pending, 0);
  assert.equal(turns.cancelled, 1);
});

test('TurnBudget: one budget for everything until the turn ends (a microtask), fresh for a deferred turn', async () => {
  const b = new TurnBudget({ segments: 10, bytes: 1e9, ms: 1e9 });
  b.begin();
  b.spend(6, 0);
  b.begin(); // another exit of the same pump slice
  b.spend(4, 0);
  assert.equal(b.exhausted, true);
  b.begin();
  assert.equal(b.exhausted, true, 'still the same turn');
  b.begin(true);
  assert.equal(b.exhausted, false, 'a deferred turn starts afresh');
  b.spend(10, 0);
  await Promise.resolve();
  b.begin();
  assert.equal(b.exhausted, false, 'the next turn refills');
});

test('with the default setImmediate, close() leaves no Immediate behind', () => {
  const immediates = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Immediate').length;
  const base = immediates();
  const mem = fakeGuestMemory([{ guestPhysAddr: 0, size: RAM }]);
  const nic = new Rtl8139({ mem, clock: { nowNs: () => 0n }, timers: { schedule: () => () => {} }, workLimits: TIMELESS });
  nic.attachBackend(new MemoryBackend());
  const w = (o: number, s: number, v: number) => nic.mmioBar.write(o, s, v);
  w(R.CpCmd, 2, R.CpTxOn);
  w(R.TxRingAddr, 4, TX_RING);
  w(R.ChipCmd, 1, R.CmdTxEnb);
  const f = tcpFrame(4000);
  mem.write(FRAMES, f);
  txDesc(mem, TX_RING, 0, FRAMES, f.length, large(8) | R.RingEnd);
  w(R.TxPoll, 1, R.NormalTxPoll);
  assert.equal(immediates(), base + 1, 'a deferred turn is pending');
  nic.close();
  assert.equal(immediates(), base);
});
