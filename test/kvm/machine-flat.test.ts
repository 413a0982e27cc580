// Flat binaries through the Machine API: a real-mode, a 32-bit protected-mode and a 64-bit
// long-mode guest (test/guests/plat-{real,pm32,long}.S) each print what they see of their CPU
// mode and a value they computed on COM1, then end through debug-exit. The debug-exit status is
// checked for every access width: the guest writes v, the machine reports (v << 1) | 1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { requireKvm } from '../helpers/kvm.js';
import { buildGuestFile } from '../guests/build.js';
import { Machine, type MachineResult } from '../../lib/machine/index.js';

type Mode = 'real' | 'protected' | 'long';

const GUEST: Record<Mode, { file: string; linkAddress: number }> = {
  // Real mode runs at CS = 0x1000 (base 0x10000), so its offsets start at 0.
  real: { file: 'plat-real.S', linkAddress: 0 },
  protected: { file: 'plat-pm32.S', linkAddress: 0x10000 },
  long: { file: 'plat-long.S', linkAddress: 0x10000 },
};

/** The guest image with its parameter block (after the "PRM0" marker) set to value/width. */
function image(mode: Mode, exit?: { value: number; width: 1 | 2 | 4 }): Uint8Array {
  const g = GUEST[mode];
  const bytes = new Uint8Array(readFileSync(buildGuestFile(g.file, { linkAddress: g.linkAddress, format: 'flat' })));
  if (exit !== undefined) {
    const at = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).indexOf('PRM0');
    assert.ok(at >= 0, `${g.file} has a PRM0 parameter block`);
    const dv = new DataView(bytes.buffer, bytes.byteOffset + at + 4, 8);
    dv.setUint32(0, exit.value >>> 0, true);
    dv.setUint32(4, exit.width, true);
  }
  return bytes;
}

/** Boot `kernel`, wait for `pattern` on the console, then for the end of the machine. */
async function run(mode: Mode, kernel: Uint8Array, pattern: RegExp): Promise<{ line: RegExpExecArray; result: MachineResult }> {
  await using m = await Machine.create({ kernel, memory: '32M', flat: { mode } });
  m.start();
  const text = await m.console.waitFor(pattern, { timeout: 30_000 });
  const result = await m.wait();
  const line = pattern.exec(text);
  assert.ok(line !== null);
  assert.equal(m.counters.pioMisses, 0, 'the guest touched only ports the machine decodes');
  return { line, result };
}

test('real-mode flat guest prints on COM1 and ends with debug-exit', async (t) => {
  if (!requireKvm(t)) return;
  const { line, result } = await run('real', image('real'), /Hello from real mode, cs=([0-9a-f]{4}) cr0=([0-9a-f]{4})\nsum=([0-9a-f]{4})\n/);
  assert.equal(parseInt(line[1]!, 16), 0x1000, 'CS is the load address in paragraphs');
  assert.equal(parseInt(line[2]!, 16) & 1, 0, 'CR0.PE clear');
  assert.equal(parseInt(line[3]!, 16), (100 * 101) / 2);
  assert.deepEqual(result, { reason: 'debug-exit', code: (0x15 << 1) | 1, detail: undefined });
});

test('32-bit protected-mode flat guest prints on COM1 and ends with debug-exit', async (t) => {
  if (!requireKvm(t)) return;
  const { line, result } = await run('protected', image('protected'), /Hello from protected mode, cr0=([0-9a-f]{8})\nsum=([0-9a-f]{8})\n/);
  const cr0 = parseInt(line[1]!, 16);
  assert.equal(cr0 & 1, 1, 'CR0.PE set');
  assert.equal(cr0 >>> 31, 0, 'CR0.PG clear');
  assert.equal(parseInt(line[2]!, 16), (1000 * 1001) / 2);
  assert.equal(result.reason, 'debug-exit');
  assert.equal(result.code, (0x2a << 1) | 1);
});

test('64-bit long-mode flat guest prints on COM1 and ends with debug-exit', async (t) => {
  if (!requireKvm(t)) return;
  const { line, result } = await run('long', image('long'), /Hello from long mode, efer=([0-9a-f]{16})\nproduct=([0-9a-f]{16})\n/);
  const efer = BigInt('0x' + line[1]!);
  assert.equal(efer & 0x500n, 0x500n, 'EFER.LME and EFER.LMA set');
  assert.equal(BigInt('0x' + line[2]!), 0x1_2345_6789n * 0x1_0001n);
  assert.equal(result.reason, 'debug-exit');
  assert.equal(result.code, (0x40 << 1) | 1);
});

test('debug-exit reports (v << 1) | 1 for byte, word and dword writes', async (t) => {
  if (!requireKvm(t)) return;
  const cases: Array<{ mode: Mode; value: number; width: 1 | 2 | 4 }> = [
    { mode: 'protected', value: 0, width: 1 },
    { mode: 'protected', value: 0x7f, width: 1 },
    { mode: 'protected', value: 0xff, width: 1 },
    { mode: 'protected', value: 0x1234, width: 2 },
    { mode: 'protected', value: 0xffff, width: 2 },
    { mode: 'protected', value: 0x7fff_ffff, width: 4 },
    { mode: 'protected', value: 0xdead_beef, width: 4 },
    { mode: 'real', value: 0xffff_ffff, width: 4 },
    { mode: 'long', value: 0x8000_0001, width: 4 },
  ];
  const hello: Record<Mode, RegExp> = { real: /Hello from real mode/, protected: /Hello from protected mode/, long: /Hello from long mode/ };
  for (const c of cases) {
    const { result } = await run(c.mode, image(c.mode, c), hello[c.mode]);
    assert.equal(result.reason, 'debug-exit', `${c.mode} ${c.width}-byte ${c.value.toString(16)}`);
    assert.equal(result.code, c.value * 2 + 1, `${c.mode} ${c.width}-byte write of 0x${c.value.toString(16)}`);
  }
});
