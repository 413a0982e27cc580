// The fuzzers cover every device the Machine puts on its buses (a new device needs a fuzz
// target), and a fuzz failure names its seed and operation and replays from them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Platform } from '../../lib/machine/platform.js';
import { RecordingIrqLine } from '../../lib/bus/irq.js';
import { NullBackend } from '../../lib/net/backend.js';
import { fakeGuestMemory } from '../../lib/kvm/memory.js';
import { COVERAGE, FUZZ_TARGETS } from '../fuzz/targets.js';
import { FuzzFailure, runFuzz, type FuzzTarget } from '../fuzz/harness.js';

test('every device on the machine\'s buses (4 COM ports, 2 NICs) has a fuzz target', () => {
  const backends = [new NullBackend(), new NullBackend()];
  const p = new Platform({
    memory: fakeGuestMemory([{ guestPhysAddr: 0, size: 0x10000 }]), memoryBelow4g: 0x10000, memoryAbove4g: 0, cpus: 1, comPorts: 4,
    net: [{ backend: backends[0]!, revision: 0x20 }, { backend: backends[1]!, revision: 0x10 }],
  }, { irq: () => new RecordingIrqLine(), end: () => {}, consoleByte: () => {}, consoleRxSpace: () => {} });
  try {
    const names = [...p.pio.devices, ...p.mmio.devices].map((r) =>
      p.nics.some((n) => n.ioBar === r.device || n.mmioBar === r.device) ? 'rtl8139' : r.name);
    assert.ok(names.includes('rtl8139') && names.includes('pci') && names.includes('com4'));
    for (const name of names) {
      const targets = COVERAGE[name];
      assert.ok(targets !== undefined && targets.length > 0, `no fuzz target covers ${name}`);
      for (const t of targets) assert.ok(FUZZ_TARGETS.includes(t));
    }
  } finally {
    p.close();
    for (const b of backends) b.close();
  }
});

/** A device with a bug at a seed-dependent operation: its IRQ invariant breaks on a rare draw. */
const buggy: FuzzTarget = {
  name: 'buggy', file: 'coverage',
  create: (rng) => {
    let broken = false;
    return {
      op: 'none',
      step() {
        const v = rng.u32();
        this.op = `write 0x${v.toString(16)}`;
        if (v % 997 === 0) broken = true;
      },
      check() {
        if (broken) throw new Error('IRQ line up, registers say no interrupt');
      },
      close() {},
    };
  },
};

test('a fuzz failure names the seed and the operation, and the seed replays it', () => {
  const failAt = (seed: number): FuzzFailure => {
    try {
      runFuzz(buggy, { seed, ops: 1e6, opBudgetMs: 1000, totalBudgetMs: 60_000 });
    } catch (e) {
      assert.ok(e instanceof FuzzFailure);
      return e;
    }
    assert.fail('the bug was not found');
  };
  const a = failAt(12345);
  assert.match(a.message, /seed 12345, operation \d+: Error: IRQ line up/);
  assert.match(a.message, /NODE_KVM_FUZZ_SEED=12345 NODE_KVM_FUZZ_OPS=\d+ /);
  const b = failAt(12345);
  assert.equal(b.opIndex, a.opIndex, 'same seed, same operation');
  assert.notEqual(failAt(54321).opIndex, a.opIndex);
  // Fewer operations than the failing one: the run passes.
  assert.doesNotThrow(() => runFuzz(buggy, { seed: 12345, ops: a.opIndex, opBudgetMs: 1000, totalBudgetMs: 60_000 }));
});

test('an operation slower than the bound fails, confirmed by replaying the seed', () => {
  const slow: FuzzTarget = {
    name: 'slow', file: 'coverage',
    create: (rng) => ({
      op: 'none',
      step() {
        const n = rng.int(1000);
        this.op = `op ${n}`;
        if (n === 7) {
          // 30 ms of CPU (not wall) time, so a loaded host cannot make it look cheaper.
          const c0 = process.cpuUsage();
          for (;;) {
            const c = process.cpuUsage(c0);
            if (c.user + c.system >= 30_000) break;
          }
        }
      },
      check() {},
      close() {},
    }),
  };
  assert.throws(() => runFuzz(slow, { seed: 1, ops: 100_000, opBudgetMs: 10, totalBudgetMs: 600_000 }), (e: unknown) =>
    e instanceof FuzzFailure && /took [\d.]+ ms, then [\d.]+ ms and [\d.]+ ms of CPU replayed \(bound 10 ms\)/.test(e.message) && /operation \d+: op 7/.test(e.message));
});
