// Friendly numbers and checked options: sizes as '256M' or bytes wherever a size is taken, and
// an option object with a key the function does not know is refused with a message naming it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSize } from '../../lib/size.js';
import { resolveOptions } from '../../lib/machine/options.js';
import { L2Switch, LinkShaper, MemoryBackend, PcapWriter, TapBackend, type PcapSink } from '../../lib/net/index.js';
import { bootVm } from '../../lib/testing/index.js';
import { runInLab } from '../../lib/lab/index.js';
import { buildImage } from '../../lib/images/index.js';

test('parseSize: units, bytes, and errors that name the option', () => {
  assert.equal(parseSize('256M'), 256 * 2 ** 20);
  assert.equal(parseSize('1G'), 2 ** 30);
  assert.equal(parseSize('512k'), 512 * 1024);
  assert.equal(parseSize('64KiB', 'snaplen'), 65536);
  assert.equal(parseSize(4096, 'size'), 4096);
  assert.equal(parseSize(0, 'burstBytes', { allowZero: true }), 0);
  assert.throws(() => parseSize('lots'), { code: 'ERR_INVALID_MEMORY', message: /memory "lots"/ });
  assert.throws(() => parseSize('12Q', 'writeQueueBytes'), { code: 'ERR_INVALID_ARG', message: /writeQueueBytes/ });
  assert.throws(() => parseSize(1.5, 'size'), { code: 'ERR_INVALID_ARG', message: /size must be a positive integer/ });
  assert.throws(() => parseSize(0, 'size'), { code: 'ERR_INVALID_ARG' });
  assert.throws(() => parseSize('99999999999999T', 'size'), { code: 'ERR_INVALID_ARG' }, 'beyond 2^53 is refused, not rounded');
  assert.throws(() => parseSize(null as unknown as string, 'size'), { code: 'ERR_INVALID_ARG', message: /got object/ });
});

test('Machine.create: an unknown option, or one of the wrong type, is named', () => {
  assert.throws(() => resolveOptions({ kernel: new Uint8Array(16), memroy: '1G' } as never, 1),
    { code: 'ERR_INVALID_ARG', message: /Machine\.create: unknown option "memroy" \(known: kernel, initrd/ });
  assert.throws(() => resolveOptions({ kernel: new Uint8Array(16), flat: { mode: 'real', entyr: 0 } } as never, 1),
    { code: 'ERR_INVALID_ARG', message: /flat: unknown option "entyr"/ });
  assert.throws(() => resolveOptions({ kernel: new Uint8Array(16), cmdline: 42 } as never, 1), { code: 'ERR_INVALID_ARG', message: /cmdline must be a string/ });
  assert.throws(() => resolveOptions({ kernel: new Uint8Array(16), net: {} } as never, 1), { code: 'ERR_INVALID_NET' });
  assert.throws(() => resolveOptions({ kernel: new Uint8Array(16), net: [{ backend: new MemoryBackend(), revison: 0x10 }] } as never, 1),
    { code: 'ERR_INVALID_ARG', message: /net entry: unknown option "revison"/ });
});

test('network backends take sizes as strings and refuse unknown options', () => {
  const shaper = new LinkShaper(new MemoryBackend(), { rateBytesPerSec: '1M', burstBytes: '16K', queueLimitBytes: '1M', seed: 1 });
  shaper.set({ rateBytesPerSec: 1_000_000 });
  assert.throws(() => shaper.set({ rateBytesPerSec: 'fast' }), { code: 'ERR_INVALID_ARG', message: /rateBytesPerSec/ });
  assert.throws(() => shaper.set({ lossPercnt: 5 } as never), { code: 'ERR_INVALID_ARG', message: /unknown option "lossPercnt"/ });
  assert.throws(() => new LinkShaper(new MemoryBackend(), { delay: 5 } as never), { code: 'ERR_INVALID_ARG', message: /LinkShaper: unknown option "delay"/ });
  shaper.close();
  const chunks: Uint8Array[] = [];
  const sink: PcapSink = { write: (c) => chunks.push(c) };
  const pcap = new PcapWriter(sink, { snaplen: '64K' });
  pcap.write(new Uint8Array(100), 0n);
  assert.equal(pcap.packets, 1);
  assert.throws(() => new PcapWriter(sink, { snaplen: '8' }), { code: 'ERR_INVALID_ARG', message: /snaplen/ });
  assert.throws(() => new PcapWriter(sink, { snapLen: 100 } as never), { code: 'ERR_INVALID_ARG', message: /PcapWriter: unknown option "snapLen"/ });
  assert.throws(() => new L2Switch({ ageing: 5 } as never), { code: 'ERR_INVALID_ARG', message: /L2Switch: unknown option "ageing"/ });
  assert.throws(() => TapBackend.open({ nmae: 'tap0' } as never), { code: 'ERR_INVALID_ARG', message: /TapBackend\.open: unknown option "nmae"/ });
  assert.throws(() => TapBackend.open({ writeQueueBytes: '1K' }), { code: 'ERR_INVALID_ARG', message: /writeQueueBytes must be at least/ });
});

test('bootVm, runInLab and buildImage refuse unknown options before doing anything', async () => {
  await assert.rejects(bootVm({ memroy: '1G' } as never), { code: 'ERR_INVALID_ARG', message: /bootVm: unknown option "memroy"/ });
  await assert.rejects(runInLab({ command: ['true'], timeout: 5 } as never), { code: 'ERR_INVALID_ARG', message: /runInLab: unknown option "timeout"/ });
  await assert.rejects(runInLab({ command: ['true'], memory: '64M' }), { code: 'ERR_LAB_MEMORY', message: /at least 256M/ });
  await assert.rejects(buildImage({ kernl: '/boot/vmlinuz' } as never), { code: 'ERR_INVALID_ARG', message: /buildImage: unknown option "kernl"/ });
  await assert.rejects(bootVm('big' as never), { code: 'ERR_INVALID_ARG', message: /options must be an object/ });
});

test('64-bit values: a number that is a safe integer is taken where a bigint is', async () => {
  const { toBigInt } = await import('../../lib/kvm/u64.js');
  const { fakeGuestMemory } = await import('../../lib/kvm/memory.js');
  assert.equal(toBigInt(0x1000, 'rip'), 0x1000n);
  assert.equal(toBigInt(0xffff_ffff_ffff_ffffn, 'rax'), 0xffff_ffff_ffff_ffffn);
  assert.throws(() => toBigInt(2 ** 60, 'rip'), { code: 'ERR_INVALID_ARG', message: /rip must be a bigint or a safe integer/ });
  assert.throws(() => toBigInt(1.5, 'cr3'), { code: 'ERR_INVALID_ARG', message: /cr3/ });
  assert.throws(() => toBigInt('1' as never, 'cr3'), { code: 'ERR_INVALID_ARG', message: /got string/ });
  const mem = fakeGuestMemory([{ guestPhysAddr: 0, size: 4096 }]);
  mem.writeU64(8, 0x1234);
  assert.equal(mem.readU64(8), 0x1234n);
});

test('topology, vmTest, loadSnapshot and getImage name an unknown option', async () => {
  const { topology } = await import('../../lib/testing/index.js');
  const { loadSnapshot } = await import('../../lib/index.js');
  const { getImage } = await import('../../lib/images/index.js');
  await assert.rejects(topology({ vms: { a: {} }, links: [], dri: '/tmp' } as never), { code: 'ERR_INVALID_ARG', message: /topology: unknown option "dri"/ });
  await assert.rejects(topology({ vms: { a: {}, b: {} }, links: [{ between: ['a', 'b'], shap: {} }] } as never),
    { code: 'ERR_INVALID_ARG', message: /topology: link 0: unknown option "shap"/ });
  assert.throws(() => loadSnapshot('/nonexistent', { verfy: 'full' } as never), { code: 'ERR_INVALID_ARG', message: /loadSnapshot: unknown option "verfy"/ });
  await assert.rejects(getImage('default', { bild: true } as never), { code: 'ERR_INVALID_ARG', message: /getImage: unknown option "bild"/ });
});
