// The 32-bit boot protocol on this host's KVM: a bzImage without XLF_KERNEL_64, whose
// protected-mode part is test/guests/bz32-entry.S, linked at 1 MiB. The guest checks the entry
// state boot.rst promises (flat __BOOT_CS/__BOOT_DS, PE on and paging off, IF clear, EBP/EDI/EBX
// zero, ESI = the zero page with the copied header) and reports on COM1; the test compares the
// report with the loader's choices. The file ends inside its last syssize paragraph, as
// memtest86+ 6.10's does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { requireKvm } from '../helpers/kvm.js';
import { buildGuestFile } from '../guests/build.js';
import { Machine } from '../../lib/machine/index.js';
import { ZERO_PAGE_START } from '../../lib/platform/layout.js';

/** A protocol-2.12 bzImage header (2 setup sectors) in front of `kernel`, linked at 1 MiB, not relocatable. */
function wrapBzImage32(kernel: Uint8Array): Uint8Array {
  const setupSize = 3 * 512;
  const img = new Uint8Array(setupSize + kernel.length);
  const dv = new DataView(img.buffer);
  dv.setUint8(0x1f1, 2); // setup_sects
  dv.setUint32(0x1f4, Math.ceil(kernel.length / 16), true); // syssize, rounded up
  dv.setUint16(0x1fe, 0xaa55, true);
  dv.setUint8(0x200, 0xeb);
  dv.setUint8(0x201, 0x268 - 0x202); // header through handover_offset (2.12)
  dv.setUint32(0x202, 0x53726448, true); // "HdrS"
  dv.setUint16(0x206, 0x020c, true);
  dv.setUint8(0x211, 0x01); // LOADED_HIGH
  dv.setUint32(0x214, 0x100000, true); // code32_start
  dv.setUint32(0x22c, 0xffffffff, true); // initrd_addr_max
  dv.setUint32(0x230, 0x1000, true); // kernel_alignment
  dv.setUint8(0x234, 0); // not relocatable
  dv.setUint16(0x236, 0, true); // xloadflags: no 64-bit entry
  dv.setUint32(0x238, 255, true); // cmdline_size
  dv.setBigUint64(0x258, 0x100000n, true); // pref_address
  dv.setUint32(0x260, kernel.length + 0x10000, true); // init_size
  img.set(kernel, setupSize);
  return img;
}

function fields(output: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of output.split('\n')) {
    const x = /^([a-z0-9]+)=(?:\[(.*)\]|([0-9a-f]{8}))$/.exec(line);
    if (x) m.set(x[1]!, x[2] ?? x[3]!);
  }
  return m;
}

test('a bzImage without XLF_KERNEL_64 is entered through the 32-bit boot protocol at code32_start', async (t) => {
  if (!requireKvm(t)) return;
  const flat = new Uint8Array(readFileSync(buildGuestFile('bz32-entry.S', { linkAddress: 0x100000, format: 'flat' })));
  // End the file 8 bytes into its last paragraph (the bytes cut are the zeroed stack's).
  const cut = flat.length % 16 === 0 ? flat.length - 8 : flat.length;
  const kernel = wrapBzImage32(flat.subarray(0, cut));
  const cmdline = 'console=ttyS0,115200 bz32=yes';
  await using m = await Machine.create({ kernel, cmdline, memory: '32M' });
  assert.equal(m.boot.format, 'bzimage');
  assert.equal(m.boot.entry, 0x100000);
  m.start();
  await m.console.waitFor('bz32 done\n', { timeout: 30_000 });
  const result = await m.wait();
  const f = fields(m.console.output);
  assert.equal(f.get('esi'), ZERO_PAGE_START.toString(16).padStart(8, '0'));
  assert.equal(f.get('cs'), '00000010');
  assert.equal(f.get('ds'), '00000018');
  assert.equal(parseInt(f.get('cr0')!, 16) & 0x80000001, 1, 'PE set, PG clear');
  assert.equal(parseInt(f.get('eflags')!, 16) & 0x200, 0, 'IF clear');
  assert.equal(f.get('bootflag'), '0000aa55');
  assert.equal(f.get('cmdline'), cmdline);
  assert.deepEqual({ reason: result.reason, code: result.code }, { reason: 'debug-exit', code: 1 }, m.console.output);
});
