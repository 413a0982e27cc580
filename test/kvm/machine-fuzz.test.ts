// The guest side of the fuzzers: test/guests/plat-fuzz.S makes seeded random port and MMIO
// accesses (reads, writes, rep ins/outs) to every device of a real Machine through the real run
// loop on /dev/kvm, while frames arrive on both NICs (8139cp and 8139too revisions). The
// machine must end by the guest's own choice (its debug-exit after the last access; a reboot
// or poweroff the guest asked for would also be one), never by an error, and leave no fd or
// thread behind.
//
// NODE_KVM_FUZZ_SEED=N replays the guest's accesses (and the frames' contents; when frames
// arrive depends on the host's timing); NODE_KVM_FUZZ_GUEST_OPS=N sets the number of accesses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { requireKvm } from '../helpers/kvm.js';
import { buildGuestFile } from '../guests/build.js';
import { Machine, type MachineResult } from '../../lib/machine/index.js';
import { MemoryBackend } from '../../lib/net/backend.js';
import { regs as R } from '../../lib/devices/rtl8139/index.js';
import type { GuestMemory } from '../../lib/kvm/memory.js';
import { Rng } from '../fuzz/rng.js';
import { wireFrame } from '../fuzz/frames.js';

// The guest's memory map (test/guests/plat-fuzz.S).
const PARAMS = 0x9000;
const DONE_CODE = (0x5a << 1) | 1;
const BUF_AREA = 0x200000;
const TX_RINGS = [0x300000, 0x304000];
const RX_RINGS = [0x308000, 0x30c000];
const RX_BUFFERS = 0x280000;
const TEMPLATES = 0x310000;

const fdCount = (): number => readdirSync('/proc/self/fd').length;
const threadCount = (): number => readdirSync('/proc/self/task').length;

function envInt(name: string, dflt: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const v = Number(raw);
  if (!Number.isSafeInteger(v) || v < 0 || v > 0xffff_ffff) throw new Error(`${name} must be an integer in [0, 2^32), got ${JSON.stringify(raw)}`);
  return v;
}

/** C+ rings for both NICs (address fields the NIC never writes) and opts1 templates the guest re-arms. */
function prepareDma(mem: GuestMemory, rng: Rng): void {
  mem.write(BUF_AREA, rng.junk(0x100000));
  TX_RINGS.forEach((ring, r) => {
    for (let i = 0; i < 64; i++) {
      let opts1 = (i === 63 ? R.RingEnd : 0) | (rng.chance(0.8) ? R.FirstFrag : 0) | (rng.chance(0.8) ? R.LastFrag : 0);
      if (rng.chance(0.2)) opts1 |= R.LargeSend | (rng.range(1, R.MSSMask) << R.MSSShift) | rng.int(0x10000);
      else opts1 |= (rng.chance(0.3) ? R.IPCS | R.TCPCS : 0) | rng.int(0x800);
      mem.writeU32(TEMPLATES + 0x100 * r + 4 * i, opts1 >>> 0);
      mem.writeU32(ring + 16 * i, (opts1 | (rng.chance(0.5) ? R.DescOwn : 0)) >>> 0);
      mem.writeU32(ring + 16 * i + 4, rng.chance(0.2) ? (R.TxVlanTag | rng.u16()) >>> 0 : 0);
      mem.writeU32(ring + 16 * i + 8, BUF_AREA + rng.int(0xe0000));
      mem.writeU32(ring + 16 * i + 12, 0);
    }
  });
  RX_RINGS.forEach((ring, r) => {
    for (let i = 0; i < 64; i++) {
      const opts1 = (i === 63 ? R.RingEnd : 0) | rng.range(1536, 0x1fff);
      mem.writeU32(TEMPLATES + 0x100 * (2 + r) + 4 * i, opts1 >>> 0);
      mem.writeU32(ring + 16 * i, (opts1 | R.DescOwn) >>> 0);
      mem.writeU32(ring + 16 * i + 4, 0);
      mem.writeU32(ring + 16 * i + 8, RX_BUFFERS + 0x2000 * i);
      mem.writeU32(ring + 16 * i + 12, 0);
    }
  });
}

interface GuestRun {
  result: MachineResult;
  accesses: number;
  nics: number;
  ms: number;
  exits: { io: number; mmio: number; coalesced: number; pioMisses: number; mmioMisses: number };
  framesIn: number;
  framesOut: number;
  /** Frames the NICs stored in guest RAM. */
  framesStored: number;
  maxGapMs: number;
}

async function fuzzGuest(seed: number, accesses: number): Promise<GuestRun> {
  const rng = Rng.forDevice(seed, 'guest');
  const kernel = new Uint8Array(readFileSync(buildGuestFile('plat-fuzz.S', { linkAddress: 0x10000, format: 'flat' })));
  const backends = [new MemoryBackend(), new MemoryBackend()];
  const m = await Machine.create({
    // All four COM ports: COM1/COM3 and COM2/COM4 share their IRQs.
    kernel, memory: '32M', flat: { mode: 'protected' }, devices: ['com2', 'com3', 'com4'],
    net: [{ backend: backends[0]!, revision: 0x20 }, { backend: backends[1]!, revision: 0x10 }],
  });
  let feed: NodeJS.Timeout | undefined;
  let tick: NodeJS.Timeout | undefined;
  let deadline: NodeJS.Timeout | undefined;
  try {
    prepareDma(m.vm.memory, rng);
    // The NICs' DMA address registers start at 0 (power-on), where this guest's stack, GDT and
    // code are: point them into the DMA area before the guest may turn RX on.
    m.platform.nics.forEach((nic, i) => {
      nic.mmioBar.write(R.RxBuf, 4, BUF_AREA + 0x20000 * i);
      nic.mmioBar.write(R.TxRingAddr, 4, TX_RINGS[0]!);
      nic.mmioBar.write(R.HiTxRingAddr, 4, TX_RINGS[1]!);
      nic.mmioBar.write(R.RxRingAddr, 4, RX_RINGS[i % 2]!);
    });
    m.vm.memory.writeU32(PARAMS, seed);
    m.vm.memory.writeU32(PARAMS + 4, accesses);
    let framesIn = 0;
    // Frames from the wire while the guest pokes the NICs.
    feed = setInterval(() => {
      backends.forEach((b, i) => {
        const n = rng.int(4);
        for (let k = 0; k < n; k++) b.inject(wireFrame(rng, m.platform.nics[i]!.mac));
        framesIn += n;
        b.sent.length = 0;
      });
    }, 2);
    let last = performance.now();
    let maxGapMs = 0;
    tick = setInterval(() => {
      const now = performance.now();
      maxGapMs = Math.max(maxGapMs, now - last);
      last = now;
    }, 10);
    // ~0.3 ms per access here, ~10x that inside the nested lab: a generous bound either way.
    const limitMs = Math.max(240_000, accesses * 10);
    const t0 = performance.now();
    m.start();
    const result = await Promise.race([
      m.wait(),
      new Promise<never>((_, reject) => {
        deadline = setTimeout(() => reject(new Error(`seed ${seed}: the guest did not end within ${limitMs / 1000} s (${m.vm.memory.readU32(PARAMS + 8)} of ${accesses} accesses made)`)), limitMs);
      }),
    ]);
    const ms = performance.now() - t0;
    // Each NIC's INTx as its registers say, after everything the guest did.
    m.platform.nics.forEach((nic, i) => {
      const want = (nic.interruptStatus & nic.mmioBar.read(R.IntrMask, 2)) !== 0 && (nic.command & 0x400) === 0;
      assert.equal(nic.intxAsserted, want, `seed ${seed}: NIC ${i} INTx ${nic.intxAsserted}, registers say ${want}`);
    });
    const c = m.counters;
    return {
      result, ms, accesses: m.vm.memory.readU32(PARAMS + 8), nics: m.vm.memory.readU32(PARAMS + 12),
      exits: { io: c.io, mmio: c.mmio, coalesced: c.coalesced, pioMisses: c.pioMisses, mmioMisses: c.mmioMisses },
      framesIn, framesOut: m.platform.nics.reduce((n, nic) => n + nic.stats.txFrames, 0),
      framesStored: m.platform.nics.reduce((n, nic) => n + nic.stats.rxFrames, 0), maxGapMs,
    };
  } finally {
    clearInterval(feed);
    clearInterval(tick);
    clearTimeout(deadline);
    await m.close();
    for (const b of backends) b.close();
  }
}

/** The guest's own endings: its debug-exit after the last access, or a reboot/poweroff it asked for. */
function assertCleanEnd(run: GuestRun, seed: number, accesses: number): void {
  const { result } = run;
  const why = `seed ${seed} (replay: NODE_KVM_FUZZ_SEED=${seed} NODE_KVM_FUZZ_GUEST_OPS=${accesses}): ended ${JSON.stringify(result)} after ${run.accesses} accesses`;
  assert.ok(['debug-exit', 'reboot', 'poweroff'].includes(result.reason), why);
  if (result.reason === 'debug-exit') {
    assert.equal(result.code, DONE_CODE, why);
    assert.equal(run.accesses, accesses, why);
  }
  assert.equal(run.nics, 2, `${why}: the guest found ${run.nics} NICs`);
}

const seed = envInt('NODE_KVM_FUZZ_SEED', randomInt(0, 0xffff_ffff));
// Inside the nested lab every exit is emulated (~10x slower): fewer accesses there.
const accesses = envInt('NODE_KVM_FUZZ_GUEST_OPS', process.env.NODE_KVM_LAB === '1' ? 5_000 : 20_000);

test('guest fuzzer: seeded random port/MMIO accesses through the run loop end by the guest\'s choice and leak nothing', { timeout: Math.max(600_000, accesses * 20) }, async (t) => {
  if (!requireKvm(t)) return;
  // A short warm-up run: lazy one-time set-up (the addon, the kicker thread) is not a leak.
  const warmSeed = (seed ^ 1) >>> 0;
  const warm = await fuzzGuest(warmSeed, 200);
  assertCleanEnd(warm, warmSeed, 200);
  const fds0 = fdCount();
  const threads0 = threadCount();
  const run = await fuzzGuest(seed, accesses);
  t.diagnostic(`seed ${seed}: ${run.accesses} accesses in ${(run.ms / 1000).toFixed(2)} s, ended ${run.result.reason}` +
    ` (code ${run.result.code}); exits io=${run.exits.io} mmio=${run.exits.mmio} coalesced=${run.exits.coalesced}` +
    ` misses pio=${run.exits.pioMisses} mmio=${run.exits.mmioMisses}; frames in ${run.framesIn} (${run.framesStored} stored), out ${run.framesOut};` +
    ` largest event-loop gap ${run.maxGapMs.toFixed(0)} ms`);
  assertCleanEnd(run, seed, accesses);
  assert.ok(run.exits.io > 0 && run.exits.mmio > 0, `seed ${seed}: the guest reached the devices (${JSON.stringify(run.exits)})`);
  assert.equal(fdCount(), fds0, `seed ${seed}: fds after the run`);
  assert.equal(threadCount(), threads0, `seed ${seed}: threads after the run`);
});
