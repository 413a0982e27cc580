// `npm run bench -- rtl8139-model`: the RTL8139 model's own cost, with no KVM and no guest, for
// the work one TCP segment pair costs 8139cp in C+ mode: a TxPoll that sends a 2-MSS TSO frame
// (segmented, checksums filled in), one 66-byte ACK received into the RX ring, and the eight
// register accesses of the driver's interrupt and NAPI path (IntrMask/IntrStatus reads, acks,
// mask and unmask). Reference in the same run: copying the same bytes (2 segments out, the ACK
// in) with Uint8Array.set, the least any device model must do. Tells the model's share apart
// from exit and guest costs when the net bench is slow (e.g. in the nested lab).
import { RecordingIrqLine } from '../lib/bus/irq.js';
import { fakeGuestMemory } from '../lib/kvm/memory.js';
import { MemoryBackend } from '../lib/net/backend.js';
import { fillIpv4HeaderChecksum, fillL4Checksum } from '../lib/net/checksum.js';
import { Rtl8139, regs as R } from '../lib/devices/rtl8139/index.js';
import { median } from './exit-roundtrip.js';

export interface ModelBenchOptions {
  runs?: number;
  iterations?: number;
  log?: (line: string) => void;
}

const RX_RING = 0x1000;
const TX_RING = 0x2000;
const FRAME_AT = 0x100000;
const RX_BUFFERS = 0x200000;
const MSS = 1448;
const RING = 64;

/** Ethernet + IPv4 + TCP, `payload` bytes, from the guest to 10.0.2.2. */
function tcpFrame(payload: number, dst: number[], src: number[]): Uint8Array {
  const f = new Uint8Array(14 + 20 + 20 + payload);
  f.set([...dst, ...src, 0x08, 0x00], 0);
  const tot = 40 + payload;
  f.set([0x45, 0, tot >> 8, tot & 0xff, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 2, 15, 10, 0, 2, 2], 14);
  f.set([0x30, 0x39, 0x14, 0x51, 0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0], 34);
  return f;
}

export function runRtl8139ModelBench(opts: ModelBenchOptions = {}): void {
  const log = opts.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  const runs = opts.runs ?? 5;
  const n = opts.iterations ?? 50_000;
  const mem = fakeGuestMemory([{ guestPhysAddr: 0, size: 0x400000 }]);
  // Everything here runs in one turn of the event loop: lift the per-turn work limits (which
  // would defer all but the first few hundred frames) to time the model itself.
  const nic = new Rtl8139({ mem, clock: { nowNs: () => process.hrtime.bigint() }, timers: { schedule: () => () => {} },
    workLimits: { segments: Infinity, bytes: Infinity, ms: Infinity } });
  nic.attach({ map: () => {}, unmap: () => {} }, new RecordingIrqLine());
  const backend = new MemoryBackend();
  let sentBytes = 0;
  backend.send = (f) => { sentBytes += f.length; };
  nic.attachBackend(backend);
  const w = (o: number, s: number, v: number): void => nic.mmioBar.write(o, s, v);
  const r = (o: number, s: number): number => nic.mmioBar.read(o, s);
  // cp_init_hw's order.
  w(R.ChipCmd, 1, R.CmdReset);
  w(R.Cfg9346, 1, R.Cfg9346_Unlock);
  w(R.CpCmd, 2, R.PCIMulRW | R.RxChkSum | R.CpRxOn | R.CpTxOn);
  w(R.RxRingAddr, 4, RX_RING); w(R.RxRingAddr + 4, 4, 0);
  w(R.TxRingAddr, 4, TX_RING); w(R.TxRingAddr + 4, 4, 0);
  w(R.ChipCmd, 1, R.CmdRxEnb | R.CmdTxEnb);
  w(R.RxConfig, 4, R.AcceptBroadcast | R.AcceptMyPhys);
  w(R.Cfg9346, 1, R.Cfg9346_Lock);
  w(R.IntrMask, 2, 0x80ff);
  const guestMac = [...nic.mac];
  const hostMac = [0x02, 0, 0, 0, 0, 9];
  const tso = tcpFrame(2 * MSS, hostMac, guestMac);
  mem.write(FRAME_AT, tso);
  const ack = tcpFrame(12, guestMac, hostMac).subarray(0, 66);
  let tx = 0;
  let rx = 0;
  const model = (): void => {
    const d = TX_RING + 16 * tx;
    mem.writeU32(d + 4, 0); mem.writeU32(d + 8, FRAME_AT); mem.writeU32(d + 12, 0);
    mem.writeU32(d, (R.DescOwn | R.FirstFrag | R.LastFrag | R.LargeSend | (MSS << R.MSSShift) | (tx === RING - 1 ? R.RingEnd : 0) | tso.length) >>> 0);
    tx = (tx + 1) % RING;
    w(R.TxPoll, 1, R.NormalTxPoll);
    const rd = RX_RING + 16 * rx;
    mem.writeU32(rd + 4, 0); mem.writeU32(rd + 8, RX_BUFFERS + rx * 2048); mem.writeU32(rd + 12, 0);
    mem.writeU32(rd, (R.DescOwn | (rx === RING - 1 ? R.RingEnd : 0) | 1536) >>> 0);
    rx = (rx + 1) % RING;
    backend.inject(ack);
    // cp_interrupt, then the NAPI poll: read mask and status, ack TX, mask RX, flush, ack RX, unmask, flush.
    r(R.IntrMask, 2); r(R.IntrStatus, 2); w(R.IntrStatus, 2, R.TxOK); w(R.IntrMask, 2, 0x80ac);
    r(R.IntrMask, 2); w(R.IntrStatus, 2, 0x53); w(R.IntrMask, 2, 0x80ff); r(R.IntrMask, 2);
  };
  const out = new Uint8Array(2 * (MSS + 54));
  const inRing = new Uint8Array(2048);
  const copy = (): void => {
    out.set(tso.subarray(0, MSS + 54), 0);
    out.set(tso.subarray(MSS + 54), MSS + 54);
    inRing.set(ack, 0);
  };
  const time = (fn: () => void): number => {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) fn();
    return ((performance.now() - t0) * 1000) / n;
  };
  for (let i = 0; i < 5000; i++) { model(); copy(); } // warm up the JIT
  const m: number[] = [];
  const c: number[] = [];
  for (let i = 0; i < runs; i++) { m.push(time(model)); c.push(time(copy)); }
  if (sentBytes === 0) throw new Error('the model sent nothing: the bench is broken');
  const mm = median(m);
  const cm = median(c);
  log(`rtl8139 model (${runs} runs x ${n}, medians): TSO TX of 2 segments + 1 ACK received + 8 register accesses`);
  log(`  model ${mm.toFixed(2)} µs   plain copy of the same bytes ${cm.toFixed(3)} µs   model/copy ${(mm / cm).toFixed(0)}x`);

  // Host->guest: full-size TCP frames from the backend into the C+ RX ring (FCS, checksum
  // verification, descriptor), 64 per refill as a TAP batch delivers them.
  const data = tcpFrame(MSS, guestMac, hostMac);
  fillIpv4HeaderChecksum(data, 14);
  fillL4Checksum(data, 14, 34, 20 + MSS, 6);
  const refill = (): void => {
    for (let i = 0; i < RING; i++) {
      const rd = RX_RING + 16 * i;
      mem.writeU32(rd + 4, 0); mem.writeU32(rd + 8, RX_BUFFERS + i * 2048); mem.writeU32(rd + 12, 0);
      mem.writeU32(rd, (R.DescOwn | (i === RING - 1 ? R.RingEnd : 0) | 1536) >>> 0);
    }
  };
  const rxBatch = (): void => {
    refill();
    for (let i = 0; i < RING; i++) backend.inject(data);
    w(R.IntrStatus, 2, 0xffff);
  };
  const copyBatch = (): void => {
    for (let i = 0; i < RING; i++) mem.write(RX_BUFFERS + i * 2048, data);
  };
  const batches = Math.max(1, Math.floor(n / RING));
  const timeBatch = (fn: () => void): number => {
    const t0 = performance.now();
    for (let i = 0; i < batches; i++) fn();
    return ((performance.now() - t0) * 1000) / (batches * RING);
  };
  for (let i = 0; i < 200; i++) { rxBatch(); copyBatch(); }
  const before = nic.stats.rxFrames;
  const rm: number[] = [];
  const rc: number[] = [];
  for (let i = 0; i < runs; i++) { rm.push(timeBatch(rxBatch)); rc.push(timeBatch(copyBatch)); }
  if (nic.stats.rxFrames - before !== runs * batches * RING) throw new Error('the model dropped frames: the bench is broken');
  const rmm = median(rm);
  const rcm = median(rc);
  log(`  RX of a ${data.length}-byte TCP frame into the C+ ring: model ${rmm.toFixed(2)} µs   plain copy ${rcm.toFixed(3)} µs   model/copy ${(rmm / rcm).toFixed(0)}x`);
}
